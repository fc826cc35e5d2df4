/**
 * Three `db-refresher serve` processes sharing one Kubernetes history store and one leader Lease on the
 * test API server, refreshing a local copy of a real PostgreSQL source: exactly one leads, triggers sent
 * to any of them start exactly one run (followers forward to the leader), and when the leader is killed
 * with SIGKILL another takes over within the lease duration plus the retry period and runs the next
 * refresh.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, LocalHarness } from '../support/local-harness.js';
import { call, leaderOf, type Replica, replicaConfigYaml, startReplica, stopReplicas, until } from '../support/replicas.js';

const TOKEN = `t-${randomBytes(12).toString('hex')}`;
const ns = `replicas-${randomBytes(3).toString('hex')}`;
// Short, client-go-shaped timings (15 / 10 / 2 by default).
const LEASE_S = 4;
const RETRY_S = 1;

let harness: LocalHarness;
let core: CoreV1Api;
const replicas: Replica[] = [];

async function start(name: string, targetPort: number, kubeconfigPath: string): Promise<Replica> {
  const port = await freePort();
  const configFile = path.join(harness.sandbox.root, `${name}.yaml`);
  writeFileSync(
    configFile,
    replicaConfigYaml({
      name,
      port,
      namespace: ns,
      kubeconfig: kubeconfigPath,
      leaseSeconds: LEASE_S,
      retrySeconds: RETRY_S,
      jobsYaml: harness.jobYaml({ name: 'qa', targetPort, dataDir: path.join(harness.sandbox.root, 'copies/qa') }),
    }),
  );
  const replica = await startReplica(name, port, configFile, { ...harness.env, API_TOKEN: TOKEN });
  replicas.push(replica);
  return replica;
}

/** A 202 answer carries the run as `run`. */
function runIdOf(body: Record<string, unknown> | undefined): string {
  return String((body?.run as { id?: string } | undefined)?.id);
}

async function finished(r: Replica, id: string): Promise<Record<string, unknown>> {
  return until(`run ${id} to finish`, async () => {
    const { status, body } = await call(r, TOKEN, 'GET', `/api/v1/runs/${id}`);
    return status === 200 && ['succeeded', 'failed', 'interrupted'].includes(String(body.status)) ? body : undefined;
  });
}

beforeAll(async () => {
  const kubeconfigPath = inject('kubeconfigPath');
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: ns } } });
  harness = await LocalHarness.start();
  const targetPort = await freePort();
  for (const name of ['replica-a', 'replica-b', 'replica-c']) await start(name, targetPort, kubeconfigPath);
}, 300_000);

afterAll(async () => {
  await stopReplicas(replicas);
  await harness?.destroy();
  await core?.deleteNamespace({ name: ns }).catch(() => undefined);
}, 120_000);

describe('three replicas with leader election', () => {
  it('exactly one leads; 200 triggers spread over the three start exactly one run, on the leader', async () => {
    const leader = await until('one leader', () => leaderOf(replicas), 30_000);
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        call(replicas[i % 3] as Replica, TOKEN, 'POST', '/api/v1/jobs/qa/runs', { reason: `burst ${i}` }),
      ),
    );
    const accepted = answers.filter((a) => a.status === 202);
    expect(accepted, JSON.stringify(answers.filter((a) => a.status !== 409).slice(0, 3))).toHaveLength(1);
    // The rest are refused: 409 (the job is busy) or, when forwarding to the leader times out on a busy
    // machine, 503 with Retry-After; never a second run.
    expect(answers.filter((a) => a.status !== 202).every((a) => a.status === 409 || a.status === 503)).toBe(true);
    expect(answers.filter((a) => a.status === 409).length).toBeGreaterThan(150);
    const runId = runIdOf(accepted[0]?.body);
    const run = await finished(leader, runId);
    expect(run.status).toBe('succeeded');
    // Every replica reads the same history: one run.
    for (const r of replicas) {
      const { body } = await call(r, TOKEN, 'GET', '/api/v1/jobs/qa/runs');
      const runs = (body.runs ?? body.items ?? body) as Array<{ id: string; dryRun?: boolean }>;
      expect(runs.filter((x) => !x.dryRun).map((x) => x.id)).toEqual([runId]);
    }
    // Only the leader ran it: its log has the run's phases, the followers' do not.
    for (const r of replicas) {
      const ranIt = r.lines.some((l) => l.includes(runId) && l.includes('"phase"'));
      expect(ranIt, r.name).toBe(r === leader);
    }
  }, 300_000);

  it('SIGKILL of the leader: another replica leads within lease duration + retry period, and runs the next refresh', async () => {
    const leader = await until('one leader', () => leaderOf(replicas), 30_000);
    const killedAt = Date.now();
    leader.child.kill('SIGKILL');
    const rest = replicas.filter((r) => r !== leader);
    const next = await until('a new leader', () => leaderOf(rest), 60_000);
    const tookMs = Date.now() - killedAt;
    // The lease ran out (it was not released), plus one retry period, plus polling and a loaded machine.
    expect(tookMs).toBeGreaterThanOrEqual((LEASE_S - RETRY_S) * 1000);
    expect(tookMs).toBeLessThan((LEASE_S + RETRY_S) * 1000 + 5000);
    const follower = rest.find((r) => r !== next) as Replica;
    // The follower learns the new leader's address on its next read of the Lease (one retry period);
    // until then it answers 503 with Retry-After, as a client should expect.
    const { status, body } = await until(
      'the follower to forward to the new leader',
      async () => {
        const answer = await call(follower, TOKEN, 'POST', '/api/v1/jobs/qa/runs', { reason: 'after failover' });
        return answer.status === 503 ? undefined : answer;
      },
      30_000,
    );
    expect(status).toBe(202);
    const run = await finished(next, runIdOf(body));
    expect(run.status).toBe('succeeded');
  }, 300_000);
});
