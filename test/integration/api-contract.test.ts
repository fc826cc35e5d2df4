import { Writable } from 'node:stream';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import type { RunRecord } from '../../src/run/record.js';
import { RefresherService } from '../../src/service/service.js';
import { freePort, LocalHarness } from '../support/local-harness.js';
import { slowBinDir } from '../support/slow-pg.js';

/**
 * The API against its description, on the real service and real PostgreSQL:
 * every route the app registers is in /openapi.json, and every answer this
 * test gets (successes and errors, a real refresh, a real cancel, suspend and
 * resume across a restart) validates against the schema the document gives
 * for that route and status.
 */

const WRITER = 'contract-writer-token-0123456789';
const VIEWER = 'contract-viewer-token-0123456789';

let harness: LocalHarness;
let config: Config;
let env: NodeJS.ProcessEnv;
let service: RefresherService;
let base: string;
let port: number;
// biome-ignore lint/suspicious/noExplicitAny: the OpenAPI document is plain JSON
let doc: any;
const ajv = new Ajv2020({ strict: false, allErrors: true });
const checked = new Set<string>();

async function startService(): Promise<void> {
  service = await RefresherService.create({ config, env, log: pino({ level: 'silent' }, new Writable({ write: (_c, _e, cb) => cb() })) });
  await service.start();
  base = await service.listen({ host: '127.0.0.1', port });
}

beforeAll(async () => {
  harness = await LocalHarness.start();
  env = { ...harness.env, WRITER_TOKEN: WRITER, VIEWER_TOKEN: VIEWER, PG_BINDIR: slowBinDir(harness.sandbox.root, '4M') };
  port = await freePort();
  config = parseConfig(
    `stateDir: state
server:
  tokens:
    - { name: alice, token: { env: WRITER_TOKEN } }
    - { name: viewer, token: { env: VIEWER_TOKEN }, readOnly: true }
jobs:${harness.jobYaml({ name: 'qa', targetPort: await freePort() }).replace('  - name: qa\n', '  - name: qa\n    schedule: "0 3 * * *"\n')}`,
    { source: 'contract.yaml', baseDir: harness.sandbox.root, env },
  );
  await startService();
  doc = await (await fetch(`${base}/openapi.json`)).json();
});

afterAll(async () => {
  await service?.stop('test over');
  await harness?.destroy();
});

/** Calls the API and validates the answer against the document's schema for that route, method and status. */
async function call(method: 'GET' | 'POST', url: string, route: string, options: { token?: string | null; body?: unknown } = {}) {
  const token = options.token === undefined ? WRITER : options.token;
  const res = await fetch(`${base}${url}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await res.text();
  const operation = doc.paths[route]?.[method.toLowerCase()];
  expect(operation, `${method} ${route} is described`).toBeDefined();
  const response = operation.responses[String(res.status)];
  expect(response, `${method} ${route} describes status ${res.status} (${text.slice(0, 200)})`).toBeDefined();
  const schema = response.content?.['application/json']?.schema;
  const body = text && res.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : text;
  if (schema) {
    const validate = ajv.compile({ ...schema, components: doc.components });
    expect(validate(body), `${method} ${url} → ${res.status}: ${ajv.errorsText(validate.errors)}\n${text.slice(0, 500)}`).toBe(true);
  }
  checked.add(`${method} ${route} ${res.status}`);
  return { status: res.status, body, headers: res.headers };
}

async function waitForPhase(phase: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { body } = await call('GET', '/api/v1/jobs/qa', '/api/v1/jobs/{job}');
    if (body.current?.phase === phase) return;
    if (Date.now() > deadline) throw new Error(`never reached ${phase}; last: ${JSON.stringify(body.current)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the OpenAPI description', () => {
  it('is OpenAPI 3.1 and describes every route the app registers', async () => {
    expect(doc.openapi).toBe('3.1.0');
    const described = new Set(
      Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops as object).map((m) => `${m.toUpperCase()} ${path}`)),
    );
    const routes = service.app.registeredRoutes
      .filter((r) => !r.startsWith('HEAD '))
      .map((r) => r.replace(/:(\w+)/g, '{$1}'))
      .filter((r) => r !== 'GET *' && !r.endsWith(' /api/v1/*'));
    expect(routes.length).toBeGreaterThan(15);
    for (const route of routes) expect(described, `${route} is described in /openapi.json`).toContain(route);
    const docs = await fetch(`${base}/docs`);
    expect(docs.status).toBe(200);
    const html = await docs.text();
    for (const route of routes) expect(html).toContain(route.replace(/^(\w+) /, (_m, method: string) => `${method} `));
  });

  it('real answers validate: reads, errors, a refresh, cancel, suspend and resume', async () => {
    await call('GET', '/healthz', '/healthz', { token: null });
    await call('GET', '/readyz', '/readyz', { token: null });
    await call('GET', '/api/v1/jobs', '/api/v1/jobs', { token: null });
    await call('GET', '/api/v1/jobs', '/api/v1/jobs', { token: 'not-a-token-of-this-service' });
    await call('GET', '/api/v1/whoami', '/api/v1/whoami', { token: VIEWER });
    expect((await call('GET', '/api/v1/whoami', '/api/v1/whoami')).body).toMatchObject({ name: 'alice', readOnly: false });
    await call('GET', '/api/v1/jobs?limit=0', '/api/v1/jobs');
    await call('GET', '/api/v1/jobs/nope', '/api/v1/jobs/{job}');
    await call('GET', '/api/v1/runs/20260101T000000000Z-abcdef', '/api/v1/runs/{id}');
    await call('POST', '/api/v1/jobs/qa/runs', '/api/v1/jobs/{job}/runs', { token: VIEWER });
    await call('POST', '/api/v1/jobs/qa/suspend', '/api/v1/jobs/{job}/suspend', { body: { why: 1 } });

    // A refresh that ends green, read while it runs (with `live`) and with the long poll.
    const started = await call('POST', '/api/v1/jobs/qa/runs', '/api/v1/jobs/{job}/runs', { body: { reason: 'contract test' } });
    expect(started.status).toBe(202);
    const id = started.body.run.id as string;
    await call('POST', '/api/v1/jobs/qa/runs', '/api/v1/jobs/{job}/runs');
    await waitForPhase('clone');
    const live = await call('GET', `/api/v1/runs/${id}`, '/api/v1/runs/{id}');
    expect(live.body.live.phase).toBe('clone');
    await call('GET', '/api/v1/jobs', '/api/v1/jobs');
    const done = await call('GET', `/api/v1/runs/${id}?wait=120`, '/api/v1/runs/{id}');
    expect(done.body.status).toBe('succeeded');
    await call('GET', '/api/v1/jobs/qa', '/api/v1/jobs/{job}');
    await call('GET', '/api/v1/jobs/qa/runs', '/api/v1/jobs/{job}/runs');
    await call('POST', `/api/v1/runs/${id}/cancel`, '/api/v1/runs/{id}/cancel');
    await call('GET', `/api/v1/runs/${id}?wait=abc`, '/api/v1/runs/{id}');

    // Cancel during the clone: it stops when the clone ends, and the copy is down.
    const second = await call('POST', '/api/v1/jobs/qa/runs', '/api/v1/jobs/{job}/runs');
    const secondId = second.body.run.id as string;
    await waitForPhase('clone');
    const cancel = await call('POST', `/api/v1/runs/${secondId}/cancel`, '/api/v1/runs/{id}/cancel', {
      body: { reason: 'wrong day' },
    });
    expect(cancel.status).toBe(202);
    expect(cancel.body.message).toContain('The copy is down');
    const cancelled = (await call('GET', `/api/v1/runs/${secondId}?wait=120`, '/api/v1/runs/{id}')).body as RunRecord;
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.cancelled).toMatchObject({ by: 'alice', reason: 'wrong day' });
    expect(cancelled.phases.map((p) => `${p.name}:${p.status}`)).toEqual([
      'preflight:succeeded',
      'snapshot:succeeded',
      'teardown:succeeded',
      'clone:succeeded',
      'start:skipped',
      'neutralise:skipped',
      'prepare:skipped',
      'mask:skipped',
      'open:skipped',
      'verify:skipped',
    ]);
    const again = await call('POST', `/api/v1/runs/${secondId}/cancel`, '/api/v1/runs/{id}/cancel');
    expect(again.status).toBe(409);
    expect(again.body.error).toBe('run-finished');

    // Suspend survives a restart and overrides the config; resume gives the config's schedule back.
    const suspended = await call('POST', '/api/v1/jobs/qa/suspend', '/api/v1/jobs/{job}/suspend', { body: { reason: 'release freeze' } });
    expect(suspended.body).toMatchObject({ job: 'qa', suspended: true, suspension: { by: 'alice', reason: 'release freeze' } });
    await service.stop('restart');
    await startService();
    const job = (await call('GET', '/api/v1/jobs/qa', '/api/v1/jobs/{job}')).body;
    expect(job).toMatchObject({ suspended: true, nextRuns: [], suspension: { suspended: true, by: 'alice' } });
    expect((await call('GET', '/api/v1/jobs', '/api/v1/jobs')).body.jobs[0]).toMatchObject({ suspended: true, nextRunAt: null });
    await call('POST', '/api/v1/jobs/qa/resume', '/api/v1/jobs/{job}/resume');
    const resumed = (await call('GET', '/api/v1/jobs/qa', '/api/v1/jobs/{job}')).body;
    expect(resumed.suspended).toBe(false);
    expect(resumed.nextRuns).toHaveLength(5);
  }, 300_000);
});

describe('CLI verbs against the running service (the built CLI)', () => {
  it('trigger --wait exits 0 with the succeeded run; status, runs, suspend and resume; a bad token exits 2', async () => {
    const { runCli } = await import('../support/cli.js');
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const dir = mkdtempSync(`${(await import('node:os')).tmpdir()}/dbr-cli-`);
    const tokenFile = `${dir}/token`;
    writeFileSync(tokenFile, `${WRITER}\n`);
    const cliEnv = { PATH: process.env.PATH ?? '', DB_REFRESHER_SERVER: base };
    const triggered = await runCli(['--token-file', tokenFile, 'trigger', 'qa', '--reason', 'from CI', '--wait', '-o', 'json'], cliEnv);
    expect(triggered.code, triggered.stderr).toBe(0);
    const run = JSON.parse(triggered.stdout) as RunRecord;
    expect(run).toMatchObject({ status: 'succeeded', trigger: { kind: 'http', by: 'alice', reason: 'from CI' } });
    expect(triggered.stderr).toContain(`run ${run.id} of qa`);
    const status = await runCli(['status', '-o', 'json'], { ...cliEnv, DB_REFRESHER_TOKEN: VIEWER });
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout).jobs[0]).toMatchObject({ name: 'qa', lastRun: { id: run.id, status: 'succeeded' } });
    const runs = await runCli(['--token-file', tokenFile, 'runs', 'qa', '-o', 'yaml'], cliEnv);
    expect(runs.stdout).toContain(`id: ${run.id}`);
    const suspend = await runCli(['--token-file', tokenFile, 'suspend', 'qa', '--reason', 'freeze', '-o', 'text'], cliEnv);
    expect(suspend.stdout).toBe('qa: suspended\n');
    expect((await runCli(['--token-file', tokenFile, 'resume', 'qa', '-o', 'text'], cliEnv)).stdout).toBe('qa: resumed\n');
    const viewer = await runCli(['trigger', 'qa'], { ...cliEnv, DB_REFRESHER_TOKEN: VIEWER });
    expect(viewer.code).toBe(2);
    expect(viewer.stderr).toContain('403 forbidden');
    const noServer = await runCli(['status'], { PATH: cliEnv.PATH, DB_REFRESHER_TOKEN: VIEWER });
    expect(noServer.code).toBe(2);
    expect(noServer.stderr).toContain('DB_REFRESHER_SERVER');
  }, 240_000);
});
