/**
 * Three `db-refresher serve` replicas with leader election refresh a CloudNativePG Cluster (the test API
 * server and the simulated operator, a real PostgreSQL source). The leader is killed with SIGKILL while
 * the operator is still cloning (the run's `start` phase). Another replica takes over within the lease
 * duration plus the retry period, resumes that same run where it stopped, and finishes it: one run
 * record for the refresh, the Cluster torn down and created once, and the refresh verified.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimulatedOperator } from '../cnpg-sim/index.js';
import { type CnpgFixture, startCnpgFixture } from '../support/cnpg-fixture.js';
import type { CnpgHarness } from '../support/cnpg-harness.js';
import { freePort } from '../support/local-harness.js';
import { call, leaderOf, type Replica, replicaConfigYaml, startReplica, stopReplicas, until } from '../support/replicas.js';

const TOKEN = `t-${randomBytes(12).toString('hex')}`;
const LEASE_S = 4;
const RETRY_S = 1;
const CLUSTER = 'failover-db';

interface RunBody {
  id: string;
  status: string;
  phases: Array<{ name: string; status: string; detail?: Record<string, unknown> }>;
  resumed?: Array<{ fromPhase: string }>;
  verification?: { ok: boolean };
  error?: unknown;
}

let h: CnpgHarness;
let sim: SimulatedOperator;
let fixture: CnpgFixture;
const simLog: string[] = [];
const replicas: Replica[] = [];

async function start(name: string, jobsYaml: string): Promise<Replica> {
  const port = await freePort();
  const configFile = path.join(h.local.sandbox.root, `${name}.yaml`);
  writeFileSync(
    configFile,
    replicaConfigYaml({
      name,
      port,
      namespace: h.namespace,
      kubeconfig: h.kubeconfigPath,
      leaseSeconds: LEASE_S,
      retrySeconds: RETRY_S,
      jobsYaml: jobsYaml,
    }),
  );
  const replica = await startReplica(name, port, configFile, { ...h.directEnv(), API_TOKEN: TOKEN });
  replicas.push(replica);
  return replica;
}

async function run(r: Replica, id: string): Promise<RunBody | undefined> {
  const { status, body } = await call(r, TOKEN, 'GET', `/api/v1/runs/${id}`);
  return status === 200 ? (body as unknown as RunBody) : undefined;
}

beforeAll(async () => {
  // Slow steps: the operator's clone takes several seconds, long enough to kill the leader inside it.
  fixture = await startCnpgFixture('failover', {
    operator: { phaseStepMs: 1500, onLog: (entry) => simLog.push(JSON.stringify(entry).slice(0, 300)) },
  });
  ({ h, sim } = fixture);
  const jobsYaml = h
    .jobYaml({
      name: 'qa',
      clusterName: CLUSTER,
      connectPort: await sim.clusterPort(h.namespace, CLUSTER),
      job: h.directSourceYaml(),
    })
    .replace(`host: 127.0.0.1, port: "${h.local.source.port}"`, 'host: source-rw.production.svc, port: "5432"');
  for (const name of ['replica-a', 'replica-b', 'replica-c']) await start(name, jobsYaml);
}, 300_000);

afterAll(async () => {
  await stopReplicas(replicas);
  await sim?.stop();
  await h?.destroy();
}, 120_000);

describe('leader failover during a CNPG clone', () => {
  it('SIGKILL of the leader mid-clone: the new leader resumes the same run; one record, one teardown, refresh verified', async () => {
    const leader = await until('one leader', () => leaderOf(replicas), 30_000);
    const follower = replicas.find((r) => r !== leader) as Replica;
    const triggered = await call(follower, TOKEN, 'POST', '/api/v1/jobs/qa/runs', { reason: 'failover test' });
    expect(triggered.status, JSON.stringify(triggered.body)).toBe(202);
    const id = String((triggered.body.run as { id: string }).id);

    // Wait until the operator is cloning: the Cluster exists and the run waits for it in `start`.
    const cloning = await until(
      'the run to wait for the clone',
      async () => {
        const r = await run(follower, id);
        return r?.phases.find((p) => p.name === 'start')?.status === 'running' ? r : undefined;
      },
      120_000,
    );
    const uidAtKill = (await h.getCluster(CLUSTER))?.metadata?.uid;
    expect(uidAtKill).toBeDefined();
    expect(cloning.phases.find((p) => p.name === 'clone')?.detail?.uid).toBe(uidAtKill);

    const killedAt = Date.now();
    leader.child.kill('SIGKILL');
    const rest = replicas.filter((r) => r !== leader);
    const next = await until('a new leader', () => leaderOf(rest), 60_000);
    const tookMs = Date.now() - killedAt;
    expect(tookMs).toBeLessThan((LEASE_S + RETRY_S) * 1000 + 5000);

    let last: RunBody | undefined;
    const done = await until(
      'the resumed run to finish',
      async () => {
        last = (await run(next, id)) ?? last;
        return last && last.status !== 'running' && last.status !== 'queued' ? last : undefined;
      },
      180_000,
    ).catch(async (error: Error) => {
      const cluster = await h.getCluster(CLUSTER);
      console.error(`cluster status: ${JSON.stringify(cluster?.status)}\noperator:\n${simLog.slice(-30).join('\n')}`);
      const phases = last?.phases.map((p) => `${p.name}:${p.status}`).join(' ');
      throw new Error(
        `${error.message}; the run is ${last?.status} (${phases}); ${next.name} logged:\n${next.lines
          .filter((l) => !l.includes('"component":"http"'))
          .slice(-25)
          .join('\n')}`,
      );
    });
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    expect(done.verification?.ok).toBe(true);
    // The new leader took the same record up again at `start`: it did not start a refresh of its own.
    expect(done.resumed?.map((r) => r.fromPhase)).toEqual(['start']);
    const { body } = await call(next, TOKEN, 'GET', '/api/v1/jobs/qa/runs');
    const runs = (body.runs ?? body.items ?? body) as Array<{ id: string; dryRun?: boolean }>;
    expect(runs.filter((x) => !x.dryRun).map((x) => x.id)).toEqual([id]);
    // Torn down once and created once: the Cluster is the one the killed leader created.
    expect(done.phases.filter((p) => p.name === 'teardown')).toHaveLength(1);
    expect((await h.getCluster(CLUSTER))?.metadata?.uid).toBe(uidAtKill);
    // Only the new leader resumed it; the third replica never ran a phase of it.
    const third = rest.find((r) => r !== next) as Replica;
    expect(third.lines.some((l) => l.includes(id) && l.includes('"phase"'))).toBe(false);
  }, 420_000);
});
