/**
 * A partitioned leader. Two `db-refresher serve` replicas with leader election refresh a CloudNativePG
 * Cluster (the test API server, the simulated operator, a real PostgreSQL source). All of the leader's
 * Kubernetes traffic (its Lease, the history store, the CNPG target) goes through the fault proxy; while
 * the operator is cloning (the run's `start` phase, which changes the target), the proxy stalls every one
 * of its requests. The old leader stops leading, says so in its log and in /readyz, and starts no phase
 * from then on, all before the other replica's lease begins (the Lease's acquireTime). The other replica
 * takes the same run up and finishes it: one run record, the Cluster created once, the refresh verified.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimulatedOperator } from '../cnpg-sim/index.js';
import { type FaultProxy, startFaultProxy } from '../envtest/fault-proxy.js';
import { type CnpgFixture, startCnpgFixture } from '../support/cnpg-fixture.js';
import type { CnpgHarness } from '../support/cnpg-harness.js';
import { freePort } from '../support/local-harness.js';
import { call, leaderOf, type Replica, readyz, replicaConfigYaml, startReplica, stopReplicas, until } from '../support/replicas.js';

const TOKEN = `t-${randomBytes(12).toString('hex')}`;
// Short, client-go-shaped timings: lease 4 s, renew deadline 3 s (replicaConfigYaml), retry 1 s.
const LEASE_S = 4;
const RETRY_S = 1;
const CLUSTER = 'partition-db';
/** Long enough to count as "never": a stalled request is dropped when the proxy closes, not forwarded. */
const STALL_MS = 30 * 60_000;

interface RunBody {
  id: string;
  status: string;
  phases: Array<{ name: string; status: string; startedAt?: string; detail?: Record<string, unknown> }>;
  resumed?: Array<{ fromPhase: string; at?: string }>;
  verification?: { ok: boolean };
  error?: unknown;
}

interface LogLine {
  time: number;
  msg: string;
  runId?: string;
  phase?: string;
  reason?: string;
  notLeadingSince?: string;
}

let h: CnpgHarness;
let sim: SimulatedOperator;
let fixture: CnpgFixture;
let proxy: FaultProxy;
const replicas: Replica[] = [];

async function start(name: string, kubeconfig: string): Promise<Replica> {
  const port = await freePort();
  const configFile = path.join(h.local.sandbox.root, `${name}.yaml`);
  const jobsYaml = h
    .jobYaml({ name: 'qa', clusterName: CLUSTER, connectPort: await sim.clusterPort(h.namespace, CLUSTER), job: h.directSourceYaml() })
    .replace(`kubeconfig: ${h.kubeconfigPath}`, `kubeconfig: ${kubeconfig}`);
  writeFileSync(
    configFile,
    replicaConfigYaml({ name, port, namespace: h.namespace, kubeconfig, leaseSeconds: LEASE_S, retrySeconds: RETRY_S, jobsYaml }),
  );
  const replica = await startReplica(name, port, configFile, { ...h.directEnv(), API_TOKEN: TOKEN });
  replicas.push(replica);
  return replica;
}

function logOf(r: Replica): LogLine[] {
  return r.lines.flatMap((l) => {
    try {
      return [JSON.parse(l) as LogLine];
    } catch {
      return [];
    }
  });
}

async function run(r: Replica, id: string): Promise<RunBody | undefined> {
  const { status, body } = await call(r, TOKEN, 'GET', `/api/v1/runs/${id}`);
  return status === 200 ? (body as unknown as RunBody) : undefined;
}

beforeAll(async () => {
  // Slow operator steps: the clone lasts long enough to cut the leader off inside it.
  fixture = await startCnpgFixture('partition', { operator: { phaseStepMs: 1500 } });
  ({ h, sim } = fixture);
  proxy = await startFaultProxy({ target: new URL(h.kc.getCurrentCluster()?.server ?? '') });
  const proxied = path.join(h.local.sandbox.root, 'kubeconfig-through-proxy.yaml');
  writeFileSync(proxied, proxy.kubeConfig(h.kc).exportConfig());
  // The replica behind the proxy starts first and leads before the other one exists.
  const a = await start('replica-a', proxied);
  await until('replica-a to lead', () => leaderOf([a]), 30_000);
  await start('replica-b', h.kubeconfigPath);
}, 300_000);

afterAll(async () => {
  // Closing the proxy first ends replica-a's stalled requests (an error), so it shuts down at once.
  await proxy?.close();
  await stopReplicas(replicas);
  await sim?.stop();
  await h?.destroy();
}, 120_000);

describe('a partitioned leader', () => {
  it('stops changing targets before the next lease begins; the other replica finishes the same run, nothing done twice', async () => {
    const [a, b] = replicas as [Replica, Replica];
    expect(await leaderOf(replicas)).toBe(a);
    // Sent to the follower, forwarded to the leader.
    const triggered = await call(b, TOKEN, 'POST', '/api/v1/jobs/qa/runs', { reason: 'partition test' });
    expect(triggered.status, JSON.stringify(triggered.body)).toBe(202);
    const id = String((triggered.body.run as { id: string }).id);
    await until(
      'the run to wait for the clone',
      async () => ((await run(b, id))?.phases.find((p) => p.name === 'start')?.status === 'running' ? true : undefined),
      120_000,
    );
    const uidAtCut = (await h.getCluster(CLUSTER))?.metadata?.uid;
    expect(uidAtCut).toBeDefined();

    // Every request of replica-a now hangs: no answer, no error.
    const cutAt = Date.now();
    proxy.setFaults({ delayMs: STALL_MS });
    const said = await until(
      'replica-a to say in /readyz that it stopped leading',
      async () => {
        const message = (await readyz(a))?.checks.leader.message;
        return message?.startsWith('not leading') ? message : undefined;
      },
      30_000,
    );
    expect(said).toMatch(/could not renew the Lease within renewDeadline/);
    expect(said).toMatch(/starts no phase that changes a target/);
    await until('replica-b to lead', () => leaderOf([b]), 30_000);
    const leases = h.kc.makeApiClient(CoordinationV1Api);
    const lease = await leases.readNamespacedLease({ name: 'db-refresher', namespace: h.namespace });
    expect(lease.spec?.holderIdentity).toBe('replica-b');
    const acquiredAt = new Date(lease.spec?.acquireTime as unknown as string | Date).getTime();

    // replica-a's log: it stopped leading before replica-b's lease began, and started no phase after that.
    const aLog = logOf(a);
    const stopped = aLog.find((l) => l.msg === 'stopped leading' && l.time >= cutAt);
    expect(stopped, 'replica-a logs that it stopped leading').toBeDefined();
    expect(stopped?.reason).toMatch(/could not renew the Lease within renewDeadline/);
    // When its lead ended (its last renewal + the renew deadline), which /readyz quotes too.
    const stoppedAt = Date.parse(stopped?.notLeadingSince ?? '');
    expect(said).toContain(`not leading since ${stopped?.notLeadingSince}`);
    expect(stoppedAt).toBeLessThan(acquiredAt);
    expect(stoppedAt).toBeGreaterThanOrEqual(cutAt);
    const phasesStartedByA = aLog.filter((l) => l.runId === id && l.phase && l.msg === `${l.phase} started`);
    expect(phasesStartedByA.length).toBeGreaterThan(0);
    for (const l of phasesStartedByA) expect(l.time, l.msg).toBeLessThan(stoppedAt);

    // The partition heals; replica-a stays a follower and does nothing more to the run.
    proxy.clearFaults();
    let last: RunBody | undefined;
    const done = await until(
      'the run to finish on replica-b',
      async () => {
        last = (await run(b, id)) ?? last;
        return last && last.status !== 'running' && last.status !== 'queued' ? last : undefined;
      },
      180_000,
    ).catch((error: Error) => {
      const phases = last?.phases.map((p) => `${p.name}:${p.status}`).join(' ');
      throw new Error(`${error.message}; the run is ${last?.status} (${phases}); replica-b logged:\n${b.lines.slice(-25).join('\n')}`);
    });
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    expect(done.verification?.ok).toBe(true);
    // replica-b took the same record up at `start`, after its lease began.
    expect(done.resumed?.map((r) => r.fromPhase)).toEqual(['start']);
    // One run record for the refresh, read by both replicas from the shared history.
    await until('replica-a to follow replica-b', async () =>
      (await readyz(a))?.checks.leader.message === 'following replica-b' ? true : undefined,
    );
    for (const r of replicas) {
      const { body } = await call(r, TOKEN, 'GET', '/api/v1/jobs/qa/runs');
      const runs = (body.runs ?? body.items ?? body) as Array<{ id: string; dryRun?: boolean }>;
      expect(runs.filter((x) => !x.dryRun).map((x) => x.id)).toEqual([id]);
    }
    // Torn down once, created once: the Cluster is the one replica-a created before the partition.
    expect(done.phases.filter((p) => p.name === 'teardown')).toHaveLength(1);
    expect((await h.getCluster(CLUSTER))?.metadata?.uid).toBe(uidAtCut);
    // replica-a started no phase of any run after it stopped leading, partitioned or healed.
    expect(logOf(a).filter((l) => l.phase && l.msg === `${l.phase} started` && l.time >= stoppedAt)).toEqual([]);
  }, 420_000);
});
