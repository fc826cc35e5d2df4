/**
 * CNPG blue/green through the two ways users drive it: a real `db-refresher serve` (its HTTP API and
 * its clean-up of previous copies) and the CLI, on the test API server with the simulated operator and
 * real PostgreSQL. Rollback through `POST /api/v1/jobs/{job}/rollback` and `db-refresher rollback`,
 * each a run record with trigger and reason, moves the stable Service's selector back to the previous
 * Cluster. With a short keepPrevious the service deletes the previous Cluster: at start for a swap made
 * while it was down, and while it runs, when keepPrevious ends. Rollback is then refused, clearly.
 * The tests build on each other, in order.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunRecord } from '../../src/run/record.js';
import type { SimulatedOperator } from '../cnpg-sim/index.js';
import { runCli } from '../support/cli.js';
import { type CnpgFixture, GUIDE_SOURCE_HOST, startCnpgFixture } from '../support/cnpg-fixture.js';
import type { CnpgHarness } from '../support/cnpg-harness.js';
import { queryCopy } from '../support/copy-queries.js';
import { killServes, type Served, serve } from '../support/serve.js';

const TOKEN = `t-${randomBytes(12).toString('hex')}`;
const SERVICE = 'qa-stable';
const A = 'qa-db-a';
const B = 'qa-db-b';

let h: CnpgHarness;
let sim: SimulatedOperator;
let fixture: CnpgFixture;
let served: Served | undefined;

beforeAll(async () => {
  fixture = await startCnpgFixture('cnpg-bgs');
  ({ h, sim } = fixture);
});

afterAll(async () => {
  await served?.stop();
  killServes();
  await fixture?.stop();
});

/** The config file of the blue/green job, as a user writes it (the source through the name the simulator maps). */
async function configFile(keepPrevious: string): Promise<string> {
  const [pa, pb] = await Promise.all([sim.clusterPort(h.namespace, A), sim.clusterPort(h.namespace, B)]);
  const jobs = h
    .jobYaml({
      name: 'qa',
      clusterName: 'qa-db',
      job: `${h.directSourceYaml()}    strategy:
      kind: blueGreen
      keepPrevious: ${keepPrevious}
      drainSeconds: 0
      serviceName: ${SERVICE}
      connect: { a: { host: 127.0.0.1, port: ${pa} }, b: { host: 127.0.0.1, port: ${pb} } }
`,
    })
    .replace(`host: 127.0.0.1, port: "${h.local.source.port}"`, `host: ${GUIDE_SOURCE_HOST}, port: "5432"`);
  const file = path.join(h.local.sandbox.root, `bg-${keepPrevious}.yaml`);
  writeFileSync(
    file,
    `stateDir: state
server:
  host: 127.0.0.1
  port: 0
  tokens: [{ name: ci, token: { env: API_TOKEN } }]
jobs:${jobs}`,
  );
  return file;
}

const env = () => ({ ...h.directEnv(), API_TOKEN: TOKEN });

async function call(method: string, url: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${served?.base}${url}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Starts a run through the API (a refresh, or a rollback with a reason) and waits for its end. */
async function viaApi(what: 'runs' | 'rollback', reason?: string): Promise<RunRecord> {
  const started = await call('POST', `/api/v1/jobs/qa/${what}`, reason ? { reason } : {});
  expect(started.status, JSON.stringify(started.body)).toBe(202);
  const id = (started.body.run as { id: string }).id;
  for (;;) {
    const { status, body } = await call('GET', `/api/v1/runs/${id}?wait=30`);
    expect(status).toBe(200);
    const run = body as unknown as RunRecord;
    if (run.status !== 'running' && run.status !== 'queued') return run;
  }
}

async function cliRollback(config: string, reason?: string): Promise<{ code: number | null; run: RunRecord; stderr: string }> {
  const r = await runCli(['rollback', 'qa', '--config', config, '-o', 'json', ...(reason ? ['--reason', reason] : [])], env());
  return { code: r.code, run: JSON.parse(r.stdout) as RunRecord, stderr: r.stderr };
}

async function selected(): Promise<string | undefined> {
  const svc = await h.core.readNamespacedService({ name: SERVICE, namespace: h.namespace });
  return svc.spec?.selector?.['cnpg.io/cluster'];
}

/** The Cluster a new client connection through the stable Service reaches, once it is `cluster`. */
async function waitServedBy(cluster: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = await queryCopy<{ cluster_name: string }>(
      await sim.servicePort(h.namespace, SERVICE),
      h.local.ownerPassword,
      'SHOW cluster_name',
    )
      .then((rows) => String(rows[0]?.cluster_name))
      .catch((e: unknown) => String(e));
    if (last === cluster) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the stable Service still reaches ${last}, not ${cluster}`);
}

async function waitGone(cluster: string, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (await h.clusterExists(cluster)) {
    if (Date.now() - started > timeoutMs) throw new Error(`Cluster ${cluster} still exists after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - started;
}

describe('CNPG blue/green through `db-refresher serve` and the CLI', { timeout: 300_000 }, () => {
  it('two refreshes through the API, then a rollback through the API: a run with trigger and reason; the Service selects the previous Cluster', async () => {
    served = await serve(await configFile('1h'), env());
    const first = await viaApi('runs');
    expect(first.status, JSON.stringify(first.error)).toBe('succeeded');
    const second = await viaApi('runs');
    expect(second.status, JSON.stringify(second.error)).toBe('succeeded');
    expect(await selected()).toBe(B);

    const back = await viaApi('rollback', 'the new copy breaks the login test');
    expect(back.status, JSON.stringify(back.error)).toBe('succeeded');
    expect(back.operation).toBe('rollback');
    expect(back.trigger).toEqual({ kind: 'http', by: 'ci', reason: 'the new copy breaks the login test' });
    expect(back.phases.map((p) => [p.name, p.status])).toEqual([['rollback', 'succeeded']]);
    expect(back.phases[0]?.detail).toMatchObject({ from: B, to: A });
    expect(await selected()).toBe(A);
    await waitServedBy(A);
    // B is kept, now the previous copy, marked retired: a second rollback could roll forward.
    expect((await h.clusterAnnotations(B))['db-refresher.io/retired-at']).toBeDefined();
    // The rollback is in the job's history like any run.
    const list = await call('GET', '/api/v1/jobs/qa/runs');
    expect(JSON.stringify(list.body)).toContain(back.id);
    await served.stop();
    served = undefined;
  });

  it('`db-refresher rollback qa --reason …` switches back again: a run record with trigger and reason, exit 0', async () => {
    const r = await cliRollback(await configFile('1h'), 'roll forward after the fix');
    expect(r.code, `${JSON.stringify(r.run.error)} ${r.stderr.slice(-1000)}`).toBe(0);
    expect(r.run.status).toBe('succeeded');
    expect(r.run.operation).toBe('rollback');
    expect(r.run.trigger).toMatchObject({ kind: 'cli', reason: 'roll forward after the fix' });
    expect(r.run.phases[0]?.detail).toMatchObject({ from: A, to: B });
    expect(await selected()).toBe(B);
    await waitServedBy(B);
    expect((await h.clusterAnnotations(A))['db-refresher.io/retired-at']).toBeDefined();
  });

  it('a service started after keepPrevious has passed deletes the previous Cluster of a swap made while it was down', async () => {
    const retiredAt = Date.parse((await h.clusterAnnotations(A))['db-refresher.io/retired-at'] ?? '');
    const config = await configFile('3s');
    await new Promise((r) => setTimeout(r, Math.max(0, retiredAt + 3000 - Date.now())));
    expect(await h.clusterExists(A)).toBe(true);
    served = await serve(config, env());
    await waitGone(A, 30_000);
    expect(served.lines.some((l) => l.includes('blue/green clean-up') && l.includes(A))).toBe(true);
    expect(await selected()).toBe(B);
    expect(await h.clusterExists(B)).toBe(true);
    await waitServedBy(B);
  });

  it('rollback once the previous Cluster is gone is refused, through the API and the CLI, and changes nothing', async () => {
    const api = await viaApi('rollback', 'too late');
    expect(api.status).toBe('failed');
    expect(api.error?.message).toMatch(
      /no previous copy is kept \(Cluster .*\/qa-db-a is gone; keepPrevious has passed.*nothing was changed/,
    );
    const cli = await cliRollback(await configFile('3s'));
    expect(cli.code).toBe(1);
    expect(cli.run.status).toBe('failed');
    expect(cli.run.error?.message).toContain('no previous copy is kept');
    expect(cli.stderr).not.toMatch(/\n\s+at /);
    expect(await selected()).toBe(B);
    await waitServedBy(B);
  });

  it('while the service runs, the previous Cluster of its own refresh is deleted when keepPrevious ends, not a sweep interval later', async () => {
    const run = await viaApi('runs');
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(await selected()).toBe(A);
    const cleanup = run.phases.find((p) => p.name === 'cleanup-previous')?.detail;
    expect(cleanup).toMatchObject({ previous: B, keptUntil: expect.any(String) });
    const keptUntil = Date.parse(String(cleanup?.keptUntil));
    const tookMs = await waitGone(B, 40_000);
    const lateMs = Date.now() - keptUntil;
    console.log(`previous Cluster deleted ${lateMs} ms after keepPrevious ended (waited ${tookMs} ms after the run)`);
    // The sweep interval is a minute; the service sweeps at the expiry instead.
    expect(lateMs).toBeLessThan(20_000);
    await waitServedBy(A);
    await served?.stop();
    served = undefined;
  });
});
