import { type ChildProcess, spawn } from 'node:child_process';
import { CLI_BIN } from './cli.js';

/**
 * `db-refresher serve` replicas for the leader-election tests: start one on a config file, ask who
 * leads (from /readyz), call the API with a token, wait for a condition, and stop them all.
 */

export interface Replica {
  name: string;
  base: string;
  child: ChildProcess;
  /** Its log lines (stderr), as they came. */
  lines: string[];
}

/**
 * A replica's config file: its own state directory and port, the shared Kubernetes history, and
 * leader election with short, client-go-shaped timings (renew deadline 3 s).
 */
export function replicaConfigYaml(input: {
  name: string;
  port: number;
  namespace: string;
  kubeconfig: string;
  leaseSeconds: number;
  retrySeconds: number;
  jobsYaml: string;
}): string {
  return `stateDir: state-${input.name}
server:
  host: 127.0.0.1
  port: ${input.port}
  tokens: [{ name: ci, token: { env: API_TOKEN } }]
  history: { kind: kubernetes, namespace: ${input.namespace}, kubeconfig: ${input.kubeconfig} }
  leaderElection:
    leaseName: db-refresher
    leaseDurationSeconds: ${input.leaseSeconds}
    renewDeadlineSeconds: 3
    retryPeriodSeconds: ${input.retrySeconds}
    advertiseUrl: http://127.0.0.1:${input.port}
jobs:${input.jobsYaml}`;
}

export async function startReplica(name: string, port: number, configFile: string, env: NodeJS.ProcessEnv): Promise<Replica> {
  const child = spawn(process.execPath, [CLI_BIN, 'serve', '--config', configFile], {
    env: { ...env, POD_NAME: name },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines: string[] = [];
  child.stderr?.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
  const replica = { name, base: `http://127.0.0.1:${port}`, child, lines };
  await until(`${name} to answer`, async () => ((await readyz(replica))?.status === 'ready' ? true : undefined), 60_000);
  return replica;
}

export async function readyz(r: Replica): Promise<{ status: string; checks: { leader: { message: string } } } | undefined> {
  try {
    return (await (await fetch(`${r.base}/readyz`)).json()) as { status: string; checks: { leader: { message: string } } };
  } catch {
    return undefined;
  }
}

/** The one replica of the list that says it leads, or undefined while none or several do. */
export async function leaderOf(list: Replica[]): Promise<Replica | undefined> {
  const states = await Promise.all(list.map(async (r) => ({ r, ready: await readyz(r) })));
  const leading = states.filter((s) => s.ready?.checks.leader.message.startsWith('leading'));
  return leading.length === 1 ? leading[0]?.r : undefined;
}

/** An API call with a bearer token; a replica that does not answer gives status 0. */
export async function call(
  r: Replica,
  token: string,
  method: string,
  url: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  try {
    const res = await fetch(`${r.base}${url}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  } catch (error) {
    return { status: 0, body: { error: String(error) } };
  }
}

export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGTERM to those still running, and waits until every one has exited (a SIGKILLed one already has). */
export async function stopReplicas(replicas: Replica[]): Promise<void> {
  const exited = (r: Replica) => r.child.exitCode !== null || r.child.signalCode !== null;
  for (const r of replicas) if (!exited(r)) r.child.kill('SIGTERM');
  await Promise.all(replicas.map((r) => new Promise((resolve) => (exited(r) ? resolve(null) : r.child.once('exit', resolve)))));
}

/** A replica's /metrics as `name{labels}` → value (lines as Prometheus writes them); empty when it does not answer. */
export async function metricsOf(r: Replica): Promise<Map<string, number>> {
  const values = new Map<string, number>();
  try {
    const text = await (await fetch(`${r.base}/metrics`)).text();
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const at = line.lastIndexOf(' ');
      values.set(line.slice(0, at), Number(line.slice(at + 1)));
    }
  } catch {
    // Not answering: no series.
  }
  return values;
}
