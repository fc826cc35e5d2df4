/**
 * A CNPG job switched from strategy recreate to blueGreen, end to end (real runner and target, the test
 * API server, the simulated operator, real PostgreSQL). The Cluster recreate made (`qa-db`) is adopted
 * as the live copy: it serves while the first blueGreen run clones `qa-db-a` beside it, the swap points
 * the new stable Service at `qa-db-a` and retires `qa-db`, which is then the previous copy, deleted
 * once keepPrevious has passed. Rollback does not switch to it, and says why.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRunner } from '../../src/composition-root.js';
import type { Config, JobConfig } from '../../src/config/types.js';
import type { RunRecord } from '../../src/run/record.js';
import type { SimulatedOperator } from '../cnpg-sim/index.js';
import { type CnpgFixture, GUIDE_SOURCE_HOST, startCnpgFixture } from '../support/cnpg-fixture.js';
import type { CnpgHarness } from '../support/cnpg-harness.js';
import { queryCopy } from '../support/copy-queries.js';
import { startProber } from '../support/prober.js';

let h: CnpgHarness;
let sim: SimulatedOperator;
let fixture: CnpgFixture;
const LEGACY = 'qa-db';
const A = 'qa-db-a';
const B = 'qa-db-b';
const SERVICE = 'qa-stable';

beforeAll(async () => {
  fixture = await startCnpgFixture('cnpg-adopt');
  ({ h, sim } = fixture);
});

afterAll(async () => {
  await fixture?.stop();
});

const toGuideSource = (yaml: string) =>
  yaml.replace(`host: 127.0.0.1, port: "${h.local.source.port}"`, `host: ${GUIDE_SOURCE_HOST}, port: "5432"`);

async function recreateJob(): Promise<Config> {
  const yaml = h.jobYaml({
    name: 'qa',
    clusterName: LEGACY,
    connectPort: await sim.clusterPort(h.namespace, LEGACY),
    job: h.directSourceYaml(),
  });
  return h.local.config(toGuideSource(yaml), h.directEnv());
}

async function blueGreenJob(keepPrevious: string): Promise<Config> {
  const [pa, pb] = await Promise.all([sim.clusterPort(h.namespace, A), sim.clusterPort(h.namespace, B)]);
  const yaml = h.jobYaml({
    name: 'qa',
    clusterName: LEGACY,
    job: `${h.directSourceYaml()}    strategy:
      kind: blueGreen
      keepPrevious: ${keepPrevious}
      drainSeconds: 0
      serviceName: ${SERVICE}
      connect: { a: { host: 127.0.0.1, port: ${pa} }, b: { host: 127.0.0.1, port: ${pb} } }
`,
  });
  return h.local.config(toGuideSource(yaml), h.directEnv());
}

function run(config: Config, operation: 'refresh' | 'rollback' = 'refresh'): Promise<RunRecord> {
  const job = config.jobs[0] as JobConfig;
  return buildRunner(config, pino({ level: 'silent' })).runner.run(job, { kind: 'cli', by: 'test' }, { operation });
}

async function selected(): Promise<string | undefined> {
  const svc = await h.core.readNamespacedService({ name: SERVICE, namespace: h.namespace });
  return svc.spec?.selector?.['cnpg.io/cluster'];
}

async function servedThroughService(): Promise<string> {
  const rows = await queryCopy<{ cluster_name: string }>(
    await sim.servicePort(h.namespace, SERVICE),
    h.local.ownerPassword,
    'SHOW cluster_name',
  );
  return String(rows[0]?.cluster_name);
}

describe('switching a CNPG job from recreate to blueGreen', { timeout: 300_000 }, () => {
  it('strategy recreate makes qa-db', async () => {
    const first = await run(await recreateJob());
    expect(first.status, JSON.stringify(first.error)).toBe('succeeded');
    expect(await h.clusterExists(LEGACY)).toBe(true);
  });

  it('the first blueGreen run clones qa-db-a while qa-db serves, swaps the new Service to it, and keeps qa-db as the previous copy', async () => {
    const legacyPort = await sim.clusterPort(h.namespace, LEGACY);
    const prober = startProber({ host: '127.0.0.1', port: legacyPort, user: 'app', password: h.local.ownerPassword, database: 'app' });
    await prober.ready();
    const bg = await run(await blueGreenJob('1h'));
    const probe = await prober.stop();
    expect(bg.status, JSON.stringify(bg.error)).toBe('succeeded');
    expect(bg.preflight?.find((c) => c.name === 'Cluster made by strategy recreate')).toMatchObject({ ok: true });
    expect(bg.phases.find((p) => p.name === 'swap')?.detail).toMatchObject({ selects: A, previous: LEGACY, created: true });
    expect(bg.phases.find((p) => p.name === 'cleanup-previous')?.detail).toMatchObject({
      previous: LEGACY,
      legacyKeptUntil: expect.any(String),
    });
    // The live copy served all along: not one probe on it failed.
    expect(probe.failures, `${probe.lastError}`).toBe(0);
    expect(await selected()).toBe(A);
    expect(await servedThroughService()).toBe(A);
    expect(await h.clusterExists(LEGACY)).toBe(true);
    expect((await h.clusterAnnotations(LEGACY))['db-refresher.io/retired-at']).toBeDefined();
  });

  it('rollback does not switch to the Cluster recreate made, and says why', async () => {
    const back = await run(await blueGreenJob('1h'), 'rollback');
    expect(back.status).toBe('failed');
    expect(back.error?.message).toContain(`Cluster ${h.namespace}/${LEGACY}, which strategy recreate made`);
    expect(back.error?.message).toContain('nothing was changed');
    expect(await selected()).toBe(A);
  });

  it('once keepPrevious has passed, the next run deletes qa-db with the previous slot Cluster', async () => {
    const next = await run(await blueGreenJob('0'));
    expect(next.status, JSON.stringify(next.error)).toBe('succeeded');
    expect(next.phases.find((p) => p.name === 'cleanup-previous')?.detail).toMatchObject({ deleted: A, legacyDeleted: LEGACY });
    expect(await selected()).toBe(B);
    expect(await servedThroughService()).toBe(B);
    expect(await h.clusterExists(LEGACY)).toBe(false);
    expect(await h.clusterExists(A)).toBe(false);
  });
});
