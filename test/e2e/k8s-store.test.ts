import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { KubernetesRunStore } from '../../src/history/k8s-store.js';
import { type Logger, silentLogger } from '../../src/observe/logger.js';
import { newRun, newRunId, RECREATE_PHASES, type RunRecord, startPhase, succeedPhase, succeedRun } from '../../src/run/record.js';
import { RefresherService } from '../../src/service/service.js';
import { startTestApiServer, type TestApiServer } from '../envtest/server.js';
import { freePort, LocalHarness } from '../support/local-harness.js';

/**
 * The Kubernetes run store on a real API server (test/envtest): ConfigMaps
 * per job, bounded and compacted, optimistic concurrency with retries on 409,
 * and a service whose history survives a restart through it.
 */

let own: TestApiServer | undefined;
let kubeconfigPath: string;
let core: CoreV1Api;
const ns = `history-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  // Under the envtest global setup the shared server is injected; alone, this file starts its own.
  let provided: string | undefined;
  try {
    provided = inject('kubeconfigPath');
  } catch {
    provided = undefined;
  }
  if (!provided) own = await startTestApiServer();
  kubeconfigPath = provided ?? own?.kubeconfigPath ?? '';
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: ns } } });
}, 600_000);

afterAll(async () => {
  await core?.deleteNamespace({ name: ns }).catch(() => undefined);
  await own?.stop();
});

const T0 = Date.parse('2030-01-01T00:00:00Z');
const target = { kind: 'local', summary: 'copy', details: { dataDir: '/srv/qa' }, steps: { teardown: 't', clone: 'c', start: 's' } };

function finished(job: string, minute: number, bulk = 0): RunRecord {
  const at = (s: number) => new Date(T0 + minute * 60_000 + s * 1000);
  let run = newRun({
    id: newRunId(at(0)),
    job,
    trigger: { kind: 'schedule', scheduledFor: at(0).toISOString() },
    dryRun: false,
    now: at(0),
    source: { host: 'h', port: 5432, user: 'u' },
    target,
  });
  for (const [i, phase] of RECREATE_PHASES.entries()) {
    run = succeedPhase(startPhase(run, phase, at(i)), phase, at(i + 1), { note: 'x'.repeat(bulk) });
  }
  return {
    ...succeedRun(run, at(RECREATE_PHASES.length + 1)),
    preflight: [{ name: 'source reachable', ok: true, message: 'ok' }],
    snapshot: { takenAt: at(2).toISOString(), databases: [{ database: 'app', sizeBytes: 1, owner: 'app', tablesBySchema: { public: 2 } }] },
    verification: {
      ok: true,
      checks: [],
      databases: [{ database: 'app', checks: [{ name: 'app: table counts', ok: true, message: 'same' }] }],
    },
  };
}

function store(options: { keepRuns?: number; log?: Logger } = {}) {
  return KubernetesRunStore.create({
    kubeconfig: kubeconfigPath,
    namespace: ns,
    keepRuns: options.keepRuns ?? 5,
    configMapPrefix: 'dbr-runs',
    keepFull: 2,
    log: options.log ?? silentLogger(),
  });
}

describe('KubernetesRunStore', () => {
  it('keeps one ConfigMap per job, one key per run, and reads back what it wrote', async () => {
    const s = await store();
    const run = finished('alpha', 0);
    await s.save({ ...run, status: 'running' });
    await s.save(run);
    const cm = await core.readNamespacedConfigMap({ name: 'dbr-runs-alpha', namespace: ns });
    expect(cm.metadata?.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'db-refresher', 'db-refresher.io/job': 'alpha' });
    expect(Object.keys(cm.data ?? {})).toEqual([`${run.id}.json`]);
    expect(await s.list('alpha')).toEqual([run]);
    // A fresh store (a restarted service) finds it by id through one list call.
    expect(await (await store()).get(run.id)).toEqual(run);
    expect(await s.get('20300101T000000000Z-ffffff')).toBeUndefined();
    expect(await s.list('nobody')).toEqual([]);
  });

  it('keeps the newest runs and any unfinished one, and compacts all but the newest few', async () => {
    const s = await store({ keepRuns: 5 });
    const unfinished = { ...finished('beta', 0), status: 'running' as const, finishedAt: undefined };
    await s.save(unfinished);
    const runs = Array.from({ length: 8 }, (_, i) => finished('beta', i + 1));
    for (const run of runs) await s.save(run);
    const listed = await s.list('beta', { limit: 100 });
    expect(listed.map((r) => r.id)).toEqual([
      ...runs
        .slice(-5)
        .map((r) => r.id)
        .reverse(),
      unfinished.id,
    ]);
    expect(listed.slice(0, 2).every((r) => !r.compacted && r.phases[0]?.detail)).toBe(true);
    const old = listed[3];
    expect(old?.compacted).toBe(true);
    expect(old?.phases[0]?.detail).toBeUndefined();
    expect(old).toMatchObject({ status: 'succeeded', verification: { ok: true }, snapshot: { takenAt: expect.any(String) } });
    expect(listed.at(-1)).toMatchObject({ id: unfinished.id, status: 'running' });
    // Paging works on the stored order.
    expect((await s.list('beta', { limit: 2, before: listed[1]?.id })).map((r) => r.id)).toEqual([listed[2]?.id, listed[3]?.id]);
  });

  it('stays under the ConfigMap size limit with big records', async () => {
    const s = await store({ keepRuns: 30 });
    for (let i = 0; i < 12; i += 1) await s.save(finished('gamma', i, 20_000));
    const cm = await core.readNamespacedConfigMap({ name: 'dbr-runs-gamma', namespace: ns });
    const size = Object.entries(cm.data ?? {}).reduce((n, [k, v]) => n + k.length + Buffer.byteLength(v), 0);
    expect(size).toBeLessThan(950 * 1024);
    expect((await s.list('gamma', { limit: 100 })).length).toBe(12);
  });

  it('two writers on one job lose nothing: stale writes get 409 and are retried on a fresh read', async () => {
    const lines: string[] = [];
    const log = pino(
      { level: 'debug' },
      new Writable({
        write: (c: Buffer, _e, cb) => {
          lines.push(c.toString());
          cb();
        },
      }),
    );
    const [a, b] = [await store({ keepRuns: 100, log }), await store({ keepRuns: 100, log })];
    const runs = Array.from({ length: 30 }, (_, i) => finished('delta', i));
    await Promise.all(runs.map((run, i) => (i % 2 === 0 ? a : b).save(run)));
    const stored = await a.list('delta', { limit: 100 });
    expect(stored.map((r) => r.id).sort()).toEqual(runs.map((r) => r.id).sort());
    expect(lines.some((l) => l.includes('history ConfigMap changed meanwhile; retrying'))).toBe(true);
  });

  it('a fenced store writes nothing once its replica stops leading, not even the retry after a 409', async () => {
    const [old, next] = [await store({ keepRuns: 100 }), await store({ keepRuns: 100 })];
    let leading = true;
    old.fence(() => leading);
    const run = finished('fenced', 0);
    await old.save({ ...run, status: 'running' });
    // The new leader settles the run; the old one, cut off, comes back with its own view of it.
    const settled = { ...run, status: 'interrupted' as const };
    await next.save(settled);
    leading = false;
    await expect(old.save(run)).rejects.toMatchObject({ code: 'NO_LEADER' });
    await expect(old.saveSuspension('fenced', { suspended: true, by: 'x', at: new Date().toISOString() })).rejects.toMatchObject({
      code: 'NO_LEADER',
    });
    expect(await next.get(run.id)).toEqual(settled);
    expect(await next.getSuspension('fenced')).toBeUndefined();
  });

  it("keeps a job's suspension beside its runs: runs saved and compacted later do not drop it", async () => {
    const s = await store({ keepRuns: 2 });
    expect(await s.getSuspension('epsilon')).toBeUndefined();
    const suspension = { suspended: true, by: 'alice', at: new Date(T0).toISOString(), reason: 'release freeze' };
    await Promise.all([s.saveSuspension('epsilon', suspension), s.save(finished('epsilon', 0))]);
    for (let i = 1; i < 5; i += 1) await s.save(finished('epsilon', i));
    const cm = await core.readNamespacedConfigMap({ name: 'dbr-runs-epsilon', namespace: ns });
    expect(Object.keys(cm.data ?? {})).toContain('suspension.json');
    // A fresh store (a restarted service) reads it; the runs list holds only runs.
    const fresh = await store({ keepRuns: 2 });
    expect(await fresh.getSuspension('epsilon')).toEqual(suspension);
    expect((await fresh.list('epsilon', { limit: 100 })).map((r) => r.job)).toEqual(['epsilon', 'epsilon']);
    await fresh.saveSuspension('epsilon', { suspended: false, by: 'bob', at: new Date(T0 + 1000).toISOString() });
    expect(await s.getSuspension('epsilon')).toMatchObject({ suspended: false, by: 'bob' });
  });
});

describe('a service with Kubernetes history', () => {
  let harness: LocalHarness;

  beforeAll(async () => {
    harness = await LocalHarness.start();
  }, 120_000);

  afterAll(async () => {
    await harness?.destroy();
  });

  it('keeps its run history across a restart', async () => {
    const targetPort = await freePort();
    const config = parseConfig(
      `stateDir: state-k8s
server:
  tokens: [{ name: t, token: { env: API_TOKEN } }]
  history: { kind: kubernetes, kubeconfig: ${kubeconfigPath}, namespace: ${ns}, keepRuns: 10 }
jobs:${harness.jobYaml({ name: 'epsilon', targetPort })}`,
      { source: 'k8s.yaml', baseDir: harness.sandbox.root, env: { ...harness.env, API_TOKEN: 'k8s-token-0123456789abcdef' } },
    );
    const first = await RefresherService.create({ config, log: silentLogger() });
    await first.start();
    const { done } = await first.runner.start(config.jobs[0] as never, { kind: 'http', by: 't' }, { dryRun: true });
    const run = await done;
    expect(run.status).toBe('succeeded');
    await first.stop();

    const second = await RefresherService.create({ config, log: silentLogger() });
    await second.start();
    try {
      expect(second.store).toBeInstanceOf(KubernetesRunStore);
      expect((await second.api.listRuns('epsilon', { limit: 10 })).map((r) => r.id)).toEqual([run.id]);
      expect(await second.api.getRun(run.id)).toMatchObject({ id: run.id, status: 'succeeded', dryRun: true });
      expect(second.board.state('epsilon').lastRun?.id).toBe(run.id);
      expect((await second.api.readiness()).checks.store).toEqual({ ok: true });
    } finally {
      await second.stop();
    }
  });
});
