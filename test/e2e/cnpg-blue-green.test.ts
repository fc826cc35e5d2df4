/**
 * CNPG blue/green refreshes end to end: the real runner and blue/green CNPG target, the real test API
 * server, the simulated CNPG operator with its Service forwarder (kube-proxy for the stable Service),
 * and real PostgreSQL for the source and both Clusters. Clients connect through the stable Service the
 * way they would in a cluster; a prober opens a new connection through it every 10 ms.
 * The tests build on each other, in order: first run, second run (swap), rollback, failure, restarts.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRunner } from '../../src/composition-root.js';
import type { Config, JobConfig } from '../../src/config/types.js';
import { Kube } from '../../src/kube/client.js';
import type { RunEvent } from '../../src/run/events.js';
import { type RunRecord, startPhase } from '../../src/run/record.js';
import { StableService } from '../../src/targets/cnpg/stable-service.js';
import type { SimulatedOperator } from '../cnpg-sim/index.js';
import { type CnpgFixture, startCnpgFixture } from '../support/cnpg-fixture.js';
import type { CnpgHarness } from '../support/cnpg-harness.js';
import { queryCopy } from '../support/copy-queries.js';
import { type ProbeResult, startProber } from '../support/prober.js';

let h: CnpgHarness;
let sim: SimulatedOperator;
let fixture: CnpgFixture;
const SERVICE = 'qa-stable';
const A = 'qa-db-a';
const B = 'qa-db-b';

beforeAll(async () => {
  fixture = await startCnpgFixture('cnpg-bg');
  ({ h, sim } = fixture);
});

afterAll(async () => {
  await fixture?.stop();
});

/** The blue/green job: both Clusters reached on their simulated `-rw` ports, clients on the stable Service. */
async function job(options: { keepPrevious?: string; minTables?: number } = {}): Promise<Config> {
  const [pa, pb] = await Promise.all([sim.clusterPort(h.namespace, A), sim.clusterPort(h.namespace, B)]);
  const yaml = h
    .jobYaml({
      name: 'qa',
      clusterName: 'qa-db',
      job: `${h.directSourceYaml()}    strategy:
      kind: blueGreen
      keepPrevious: ${options.keepPrevious ?? '1h'}
      drainSeconds: 0
      serviceName: ${SERVICE}
      connect: { a: { host: 127.0.0.1, port: ${pa} }, b: { host: 127.0.0.1, port: ${pb} } }
`,
    })
    .replace(`host: 127.0.0.1, port: "${h.local.source.port}"`, 'host: source-rw.production.svc, port: "5432"')
    .replace('minTables: 5', `minTables: ${options.minTables ?? 5}`);
  return h.local.config(yaml, h.directEnv());
}

function runner(config: Config, onEvent?: (e: RunEvent) => void) {
  return buildRunner(config, pino({ level: 'silent' }), onEvent ? { onEvent } : {}).runner;
}

function jobOf(config: Config): JobConfig {
  const j = config.jobs[0];
  if (!j) throw new Error('no job');
  return j;
}

async function refresh(config: Config, onEvent?: (e: RunEvent) => void): Promise<RunRecord> {
  return runner(config, onEvent).run(jobOf(config), { kind: 'cli', by: 'test' });
}

async function selected(): Promise<string | undefined> {
  const svc = await h.core.readNamespacedService({ name: SERVICE, namespace: h.namespace });
  return svc.spec?.selector?.['cnpg.io/cluster'];
}

/** What a client connecting through the stable Service now reaches. */
async function throughService<Row extends Record<string, unknown>>(text: string): Promise<Row[]> {
  return queryCopy<Row>(await sim.servicePort(h.namespace, SERVICE), h.local.ownerPassword, text);
}

async function servedBy(): Promise<string> {
  return String((await throughService<{ cluster_name: string }>('SHOW cluster_name'))[0]?.cluster_name);
}

async function waitServedBy(cluster: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = await servedBy().catch((e: unknown) => String(e));
    if (last === cluster) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the stable Service still reaches ${last}, not ${cluster}`);
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A client through the stable Service: SELECT 1 every 10 ms on one connection, reconnecting (through the
 * Service, to whatever it selects then) only when the connection or a query fails, as a pool does. A
 * selector change alone does not move it (kube-proxy leaves open connections where they are, §10.5);
 * deleting the Cluster it is on does. New connections are checked apart (servedBy).
 */
async function prober() {
  const p = startProber({
    host: '127.0.0.1',
    port: await sim.servicePort(h.namespace, SERVICE),
    user: 'app',
    password: h.local.ownerPassword,
    database: 'app',
    intervalMs: 10,
    timeoutMs: 10_000,
  });
  await p.ready();
  return p;
}

const marker = (where: string) => `SELECT count(*)::int AS n FROM public.users WHERE email = 'only-in-${where}@example.com'`;
const statuses = (run: RunRecord) => Object.fromEntries(run.phases.map((p) => [p.name, p.status]));
const gapReport = (r: ProbeResult) => `longest gap ${r.longestGapMs} ms, gaps ${JSON.stringify(r.gaps)}, last error ${r.lastError}`;

describe('CNPG blue/green', () => {
  it('the first run, with no copy yet, clones qa-db-a and points the stable Service at its primary', async () => {
    const run = await refresh(await job());
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(statuses(run)).toMatchObject({ 'clone-beside': 'succeeded', swap: 'succeeded' });
    expect(run.phases.map((p) => p.name)).not.toContain('teardown');
    expect(run.phases.find((p) => p.name === 'swap')?.detail).toMatchObject({ selects: A, created: true });
    expect(await selected()).toBe(A);
    expect(await h.clusterExists(B)).toBe(false);
    await waitServedBy(A);
    expect(Number((await throughService<{ n: string }>('SELECT count(*) AS n FROM public.users'))[0]?.n)).toBe(500);
    expect(await h.clusterAnnotations(A)).toMatchObject({ 'db-refresher.io/job': 'qa', 'db-refresher.io/run-id': run.id });
  });

  it('the second run clones qa-db-b beside the live one, which serves throughout, then swaps the selector', async () => {
    await throughService("INSERT INTO public.users (id, email) VALUES (777001, 'only-in-a@example.com')");
    const held = await (async () => {
      const { default: pg } = await import('pg');
      const c = new pg.Client({
        host: '127.0.0.1',
        port: await sim.servicePort(h.namespace, SERVICE),
        user: 'app',
        password: h.local.ownerPassword,
        database: 'app',
      });
      await c.connect();
      return c;
    })();
    const p = await prober();
    const proberStart = Date.now();
    const lag = monitorEventLoopDelay({ resolution: 20 });
    lag.enable();
    // While the new Cluster is cloned, started and verified, clients still reach the live one.
    const servedDuring: Array<Promise<string>> = [];
    const run = await refresh(await job(), (e) => {
      if (e.type === 'phase-finished' && (e.phase === 'clone-beside' || e.phase === 'start' || e.phase === 'verify'))
        servedDuring.push(servedBy().catch((error: unknown) => String(error)));
    });
    const probe = await p.stop();
    lag.disable();
    const inPhase = (ms: number) =>
      run.phases.find(
        (ph) =>
          ph.startedAt && Date.parse(ph.startedAt) <= proberStart + ms && (!ph.finishedAt || Date.parse(ph.finishedAt) >= proberStart + ms),
      )?.name;
    const diag = `${gapReport(probe)}; longest gap in ${inPhase(probe.longestGapAt?.from ?? 0)}..${inPhase(probe.longestGapAt?.to ?? 0)}; event loop delay max ${Math.round(lag.max / 1e6)} ms p99 ${Math.round(lag.percentile(99) / 1e6)} ms`;
    try {
      expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
      expect(await Promise.all(servedDuring)).toEqual([A, A, A]);
      expect(run.phases.find((p) => p.name === 'swap')?.detail).toMatchObject({ selects: B, previous: A, updated: true });
      expect(await selected()).toBe(B);
      await waitServedBy(B);
      // The new copy is a fresh clone: the row written to the live copy is not in it.
      expect((await throughService<{ n: number }>(marker('a')))[0]?.n).toBe(0);
      // A connection opened before the swap stays on the old primary (kube-proxy semantics, §10.5).
      expect((await held.query('SHOW cluster_name')).rows[0]?.cluster_name).toBe(A);
      // The previous copy is kept for keepPrevious, marked retired.
      expect((await h.clusterAnnotations(A))['db-refresher.io/retired-at']).toBeDefined();
      expect(run.phases.find((p) => p.name === 'cleanup-previous')?.detail).toMatchObject({ previous: A });
      expect(probe.queries, diag).toBeGreaterThan(50);
      expect(probe.longestGapMs, diag).toBeLessThan(5000);
      console.log(`CNPG blue/green through the Service forwarder: ${probe.queries} probes, ${diag}`);
    } finally {
      await held.end();
    }
  });
  it('rollback, a run of its own with trigger and reason, points the Service back at qa-db-a; a second one rolls forward', async () => {
    const config = await job();
    const back = await runner(config).run(
      jobOf(config),
      { kind: 'cli', by: 'test', reason: 'bad data in the new copy' },
      { operation: 'rollback' },
    );
    expect(back.status, JSON.stringify(back.error)).toBe('succeeded');
    expect(back.operation).toBe('rollback');
    expect(back.trigger).toMatchObject({ reason: 'bad data in the new copy' });
    expect(statuses(back)).toEqual({ rollback: 'succeeded' });
    expect(back.phases[0]?.detail).toMatchObject({ from: B, to: A });
    expect(await selected()).toBe(A);
    await waitServedBy(A);
    // The copy clients had before the swap, with what they wrote to it.
    expect((await throughService<{ n: number }>(marker('a')))[0]?.n).toBe(1);
    expect((await h.clusterAnnotations(B))['db-refresher.io/retired-at']).toBeDefined();
    const forward = await runner(config).run(jobOf(config), { kind: 'cli', by: 'test' }, { operation: 'rollback' });
    expect(forward.status, JSON.stringify(forward.error)).toBe('succeeded');
    expect(await selected()).toBe(B);
    const again = await runner(config).run(jobOf(config), { kind: 'cli', by: 'test' }, { operation: 'rollback' });
    expect(again.status, JSON.stringify(again.error)).toBe('succeeded');
    expect(await selected()).toBe(A);
  });

  it('a failure before the swap leaves the live Cluster and the Service untouched and removes the half-made one', async () => {
    const live = await h.clusterAnnotations(A);
    const p = await prober();
    const run = await refresh(await job({ minTables: 999 }));
    const probe = await p.stop();
    expect(run.status).toBe('failed');
    expect(run.error?.phase).toBe('verify');
    expect(run.error?.message).toContain('the current copy was not changed');
    expect(statuses(run)).toMatchObject({ verify: 'failed', swap: 'skipped' });
    expect(await selected()).toBe(A);
    expect((await h.clusterAnnotations(A))['db-refresher.io/run-id']).toBe(live['db-refresher.io/run-id']);
    expect((await throughService<{ n: number }>(marker('a')))[0]?.n).toBe(1);
    expect(await h.clusterExists(B)).toBe(false);
    expect(probe.longestGapMs, gapReport(probe)).toBeLessThan(5000);
  });

  /**
   * A process killed during the swap: the run record says swap is running (it is saved before the phase
   * starts), and the API shows what the swap's steps did before the kill. Each step is one API request
   * (mark the serving Cluster retired; update the Service's selector), so a kill leaves one of these
   * states. A restarted service takes the run up again (Runner.resume, as the service's recovery does).
   */
  for (const [steps, what] of [
    [0, 'before its first step'],
    [1, 'after marking the serving Cluster retired'],
    [2, 'after switching the Service'],
  ] as const) {
    it(`a run killed during the swap, ${what}, is resumed by a restarted service and finishes it`, async () => {
      const config = await job();
      const j = jobOf(config);
      const liveBefore = (await selected()) as string;
      const incoming = liveBefore === A ? B : A;
      const first = buildRunner(config, pino({ level: 'silent' }), {
        onEvent: (e) => {
          if (e.type === 'phase-finished' && e.phase === 'verify') first.runner.pauseAll('killed');
        },
      });
      const paused = await first.runner.run(j, { kind: 'cli', by: 'test' });
      expect(paused.status, JSON.stringify(paused.error)).toBe('running');
      expect(paused.phases.find((ph) => ph.name === 'swap')?.status).toBe('pending');
      const killed = startPhase(paused, 'swap', new Date());
      const service = new StableService({
        kube: new Kube(h.kc),
        namespace: h.namespace,
        job: 'qa',
        clusterName: 'qa-db',
        serviceName: SERVICE,
      });
      if (steps >= 1) await service.markRetired(liveBefore, new Date());
      if (steps >= 2) await service.pointAt(incoming, paused.id);
      const p = await prober();
      const second = buildRunner(config, pino({ level: 'silent' }));
      const resumed = await (await second.runner.resume(killed, j)).done;
      const probe = await p.stop();
      expect(resumed.status, JSON.stringify(resumed.error)).toBe('succeeded');
      expect(resumed.resumed?.[0]?.fromPhase).toBe('swap');
      expect(await selected()).toBe(incoming);
      await waitServedBy(incoming);
      expect((await h.clusterAnnotations(liveBefore))['db-refresher.io/retired-at']).toBeDefined();
      expect(await h.clusterAnnotations(incoming)).toMatchObject({
        'db-refresher.io/run-id': paused.id,
        'db-refresher.io/last-outcome': 'succeeded',
      });
      expect((await h.clusterAnnotations(liveBefore))['db-refresher.io/run-id']).not.toBe(paused.id);
      expect(await h.clusterExists(liveBefore)).toBe(true);
      expect(probe.longestGapMs, gapReport(probe)).toBeLessThan(5000);
    });
  }

  it('keepPrevious 0: the previous Cluster is deleted after the swap; a client on it reconnects through the Service to the new one', async () => {
    const liveBefore = (await selected()) as string;
    const incoming = liveBefore === A ? B : A;
    const p = await prober();
    const proberStart = Date.now();
    const lag = monitorEventLoopDelay({ resolution: 20 });
    lag.enable();
    const run = await refresh(await job({ keepPrevious: '0' }));
    // The prober's connection was on the old primary until cleanup-previous deleted that Cluster.
    await until(`Cluster ${liveBefore} to be gone`, async () => !(await h.clusterExists(liveBefore)));
    await new Promise((r) => setTimeout(r, 1000));
    const probe = await p.stop();
    lag.disable();
    const loop = `event loop delay max ${Math.round(lag.max / 1e6)} ms`;
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(run.phases.find((ph) => ph.name === 'cleanup-previous')?.detail).toMatchObject({ deleted: liveBefore });
    expect(await selected()).toBe(incoming);
    expect(probe.failures, `the prober's connection was never cut: ${gapReport(probe)}`).toBeGreaterThan(0);
    const gapFrom = proberStart + (probe.longestGapAt?.from ?? 0);
    const gapTo = proberStart + (probe.longestGapAt?.to ?? 0);
    const forwarded = sim
      .serviceConnections()
      .filter((c) => Date.parse(c.at) >= gapFrom - 200 && Date.parse(c.at) <= gapTo + 200)
      .map((c) => `${Date.parse(c.at) - proberStart}ms→${c.pod ?? 'refused'}`);
    const phases = run.phases.map(
      (ph) =>
        `${ph.name} ${ph.startedAt ? Date.parse(ph.startedAt) - proberStart : '-'}..${ph.finishedAt ? Date.parse(ph.finishedAt) - proberStart : '-'}`,
    );
    expect(
      probe.longestGapMs,
      `${gapReport(probe)}; forwarded in the gap: ${forwarded.join(', ')}; phases (ms from prober start): ${phases.join(', ')}; ${loop}`,
    ).toBeLessThan(5000);
    const swapAt = Date.parse(run.phases.find((ph) => ph.name === 'swap')?.finishedAt ?? '') - proberStart;
    console.log(
      `CNPG blue/green, keepPrevious 0, through the Service forwarder: ${probe.queries} probes, ${gapReport(probe)}; swap finished at ${swapAt} ms; ${loop}`,
    );
  });
});
