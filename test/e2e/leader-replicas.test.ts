/**
 * Three `db-refresher serve` processes sharing one Kubernetes history store and one leader Lease on the
 * test API server, refreshing a local copy of a real PostgreSQL source: exactly one leads, triggers sent
 * to any of them start exactly one run (followers forward to the leader), and when the leader is killed
 * with SIGKILL another takes over within the lease duration plus the retry period and runs the next
 * refresh. Every replica's /metrics follows the shared history (last run, last success, next fire time),
 * and db_refresher_leader moves with the Lease.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, LocalHarness } from '../support/local-harness.js';
import { call, leaderOf, metricsOf, type Replica, replicaConfigYaml, startReplica, stopReplicas, until } from '../support/replicas.js';

const TOKEN = `t-${randomBytes(12).toString('hex')}`;
const ns = `replicas-${randomBytes(3).toString('hex')}`;
// Short, client-go-shaped timings (15 / 10 / 2 by default).
const LEASE_S = 4;
const RETRY_S = 1;
const SCHEDULE = '0 0 1 1 *';

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
      // A schedule that does not fire during the test (1 January), for db_refresher_next_run_timestamp_seconds.
      jobsYaml: harness
        .jobYaml({ name: 'qa', targetPort, dataDir: path.join(harness.sandbox.root, 'copies/qa') })
        .replace('  - name: qa\n', `  - name: qa\n    schedule: "${SCHEDULE}"\n`),
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

/**
 * Waits until every replica's /metrics says the job's last run (with its result) and last success are
 * `run`'s finish: the leader from its events, followers from the shared history (one lease duration).
 */
async function metricsFollow(list: Replica[], run: Record<string, unknown>): Promise<void> {
  const finishedAt = Date.parse(String(run.finishedAt)) / 1000;
  for (const r of list) {
    await until(
      `${r.name}'s metrics to show run ${String(run.id)}`,
      async () => {
        const m = await metricsOf(r);
        return m.get('db_refresher_last_success_timestamp_seconds{job="qa"}') === finishedAt &&
          m.get('db_refresher_last_run_timestamp_seconds{job="qa",result="succeeded"}') === finishedAt
          ? true
          : undefined;
      },
      (LEASE_S + 10) * 1000,
    );
  }
}

/** db_refresher_leader of each replica, by pod; a replica that does not answer has none. */
async function leaderGauges(list: Replica[]): Promise<Record<string, number | undefined>> {
  const entries = await Promise.all(
    list.map(async (r) => [r.name, (await metricsOf(r)).get(`db_refresher_leader{pod="${r.name}"}`)] as const),
  );
  return Object.fromEntries(entries);
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
    const odd = answers.filter((a) => a.status !== 202 && a.status !== 409 && a.status !== 503);
    // The leader logs a request after answering it: give its log a moment to arrive.
    if (odd.length > 0) await new Promise((r) => setTimeout(r, 2000));
    for (const a of odd) {
      const id = /request id ([0-9a-f-]+)/.exec(String(a.body.message))?.[1];
      if (id) for (const r of replicas) for (const l of r.lines.filter((x) => x.includes(id))) console.error(r.name, l.slice(0, 3000));
    }
    expect(odd.slice(0, 3).map((a) => `${a.status} ${JSON.stringify(a.body).slice(0, 300)}`)).toEqual([]);
    expect(answers.filter((a) => a.status === 409).length).toBeGreaterThan(150);
    const runId = runIdOf(accepted[0]?.body);
    const run = await finished(leader, runId);
    expect(run.status).toBe('succeeded');
    // Followers started before the run: their metrics follow the shared history, not only what it said at start.
    await metricsFollow(replicas, run);
    expect(await leaderGauges(replicas)).toEqual(Object.fromEntries(replicas.map((r) => [r.name, r === leader ? 1 : 0])));
    // The next fire time, the same on every replica (the leader's scheduler; the followers from the schedule and history).
    const nextJan1 = new Date(Date.UTC(new Date().getUTCFullYear() + 1, 0, 1)).getTime() / 1000;
    for (const r of replicas) expect((await metricsOf(r)).get('db_refresher_next_run_timestamp_seconds{job="qa"}'), r.name).toBe(nextJan1);
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
    // until then it answers 503 with Retry-After, as a client should expect. While the new leader settles
    // what the old one left (it holds the job's lock for a moment), it answers 409 job-busy.
    const busy: unknown[] = [];
    const { status, body } = await until(
      'the follower to forward to the new leader',
      async () => {
        const answer = await call(follower, TOKEN, 'POST', '/api/v1/jobs/qa/runs', { reason: 'after failover' });
        if (answer.status === 409) busy.push(answer.body);
        return answer.status === 503 || (answer.status === 409 && busy.length < 50) ? undefined : answer;
      },
      30_000,
    );
    expect(status, JSON.stringify({ body, busy: busy.slice(0, 2) })).toBe(202);
    const run = await finished(next, runIdOf(body));
    expect(run.status).toBe('succeeded');
    // db_refresher_leader moved with the Lease; the follower's metrics show the new leader's run.
    expect(await leaderGauges(rest)).toEqual({ [next.name]: 1, [follower.name]: 0 });
    await metricsFollow(rest, run);
  }, 300_000);
});
