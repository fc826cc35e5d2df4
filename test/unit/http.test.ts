import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { Secret } from '../../src/config/secret.js';
import type { JobConfig } from '../../src/config/types.js';
import { RefresherError } from '../../src/errors.js';
import { buildApp } from '../../src/http/app.js';
import { TokenAuth } from '../../src/http/auth.js';
import type { ApiBackend } from '../../src/http/backend.js';
import { LiveFeed, type LiveListener } from '../../src/http/live-feed.js';
import { type CurrentRun, jobDetail, jobListItem } from '../../src/http/views.js';
import { REDACT_PATHS } from '../../src/observe/logger.js';
import { newRun, newRunId, type RunRecord } from '../../src/run/record.js';

/**
 * The HTTP app through inject(), over an in-memory backend: status codes,
 * authentication, error shapes, pagination. The same app over a real socket,
 * on a real service, is in test/integration/http-service.test.ts.
 */

const ALICE = 'alice-token-0123456789abcdef';
const VIEWER = 'viewer-token-0123456789abcdef';
const SECRET_PASSWORD = 'pw-never-in-a-response-4242';

const config = parseConfig(
  `jobs:
  - name: qa
    schedule: "0 3 * * *"
    source: { host: db.example.com, user: r, password: { env: PW } }
    target: { kind: local, dataDir: /tmp/qa, port: 5501 }
  - name: frozen
    suspend: true
    allowManualWhenSuspended: false
    source: { host: db.example.com, user: r }
    target: { kind: local, dataDir: /tmp/frozen, port: 5502 }
${Array.from({ length: 5 }, (_, i) => `  - name: extra-${i}\n    source: { host: db.example.com, user: r }\n    target: { kind: local, dataDir: /tmp/x${i}, port: ${5510 + i} }`).join('\n')}`,
  { source: 't.yaml', baseDir: '/tmp', env: { PW: SECRET_PASSWORD } },
);

function record(job: string, at: Date, status: RunRecord['status'] = 'succeeded'): RunRecord {
  return {
    ...newRun({
      id: newRunId(at),
      job,
      trigger: { kind: 'http', by: 'alice' },
      dryRun: false,
      now: at,
      source: { host: 'db.example.com', port: 5432, user: 'r' },
      target: { kind: 'local', summary: 'local copy', details: {}, steps: { teardown: '', clone: '', start: '' } },
    }),
    status,
  };
}

class MemoryBackend implements ApiBackend {
  runs: RunRecord[] = [];
  busy = new Map<string, string>();
  open = true;
  triggered: Array<{ job: string; by: string; reason?: string; dryRun: boolean }> = [];

  jobs = () => config.jobs;
  job = (name: string) => config.jobs.find((j) => j.name === name);
  jobListItem = (job: JobConfig) => jobListItem(job, {}, job.schedule ? new Date('2030-01-01T03:00:00Z') : undefined);
  jobDetail = (job: JobConfig) =>
    jobDetail({ job, state: {}, targetSummary: 'local copy', nextRuns: [new Date('2030-01-01T03:00:00Z')], warnings: [] });
  listRuns = async (job: string, options: { limit: number; before?: string }) =>
    this.runs
      .filter((r) => r.job === job && (options.before === undefined || r.id < options.before))
      .sort((a, b) => (a.id < b.id ? 1 : -1))
      .slice(0, options.limit);
  getRun = async (id: string) => this.runs.find((r) => r.id === id);
  trigger = async (job: JobConfig, input: { by: string; reason?: string; dryRun: boolean }) => {
    if (this.busy.has(job.name)) {
      // As the lock words it: with the holding process's id.
      throw new RefresherError(
        'JOB_BUSY',
        `job "${job.name}" is already running (run ${this.busy.get(job.name)}, process 4242, since 2030-01-01T03:00:00.000Z)`,
      );
    }
    this.triggered.push({ job: job.name, ...input });
    const run = record(job.name, new Date(), 'running');
    this.busy.set(job.name, run.id);
    return run;
  };
  runningRunId = (job: string) => this.busy.get(job);
  live = new Map<string, CurrentRun>();
  currentRun = (job: string) => this.live.get(job);
  accepting = () => this.open;
  readiness = async () => ({ ready: this.open, checks: { store: { ok: true } } });
  metricsText = async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: 'db_refresher_up 1\n' });
  feed = new LiveFeed();
  subscribe = (listener: LiveListener) => this.feed.subscribe(listener);
  cancel = async (): Promise<{ outcome: 'not-found' }> => ({ outcome: 'not-found' });
  setSuspended = async (_job: JobConfig, input: { suspended: boolean; by: string; reason?: string }) => ({
    ...input,
    at: new Date().toISOString(),
  });
}

let backend: MemoryBackend;
let app: ReturnType<typeof buildApp>;
let logLines: string[];

beforeEach(async () => {
  backend = new MemoryBackend();
  logLines = [];
  const log = pino(
    { level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    new Writable({
      write: (chunk: Buffer, _e, cb) => {
        logLines.push(chunk.toString());
        cb();
      },
    }),
  );
  app = buildApp({
    backend,
    tokens: [
      { name: 'alice', token: new Secret(ALICE, 'env:A'), readOnly: false },
      { name: 'viewer', token: new Secret(VIEWER, 'env:V'), readOnly: true },
    ],
    log,
    bodyLimitBytes: 1024,
  });
  await app.ready();
});

afterEach(async () => {
  await app.close();
});

const auth = (token = ALICE) => ({ authorization: `Bearer ${token}` });

describe('authentication', () => {
  it('401 without a token (with WWW-Authenticate), 401 for a malformed header, 401 invalid_token for a wrong token (RFC 6750)', async () => {
    const none = await app.inject({ method: 'GET', url: '/api/v1/jobs' });
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="db-refresher"');
    expect(none.json()).toMatchObject({ error: 'unauthenticated' });
    expect((await app.inject({ method: 'GET', url: '/api/v1/jobs', headers: { authorization: `Basic ${ALICE}` } })).statusCode).toBe(401);
    const wrong = await app.inject({ method: 'GET', url: '/api/v1/jobs', headers: auth(`${ALICE}x`) });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.headers['www-authenticate']).toMatch(/^Bearer realm="db-refresher", error="invalid_token"/);
    expect(wrong.headers['x-request-id']).toBeDefined();
    expect(wrong.json()).toEqual({ error: 'invalid-token', message: expect.stringContaining('the token is not valid for this service') });
    expect((await app.inject({ method: 'POST', url: '/api/v1/jobs/qa/runs', headers: auth('nope') })).statusCode).toBe(401);
    expect(backend.triggered).toEqual([]);
  });

  it('a read-only token may read but not trigger: 403 insufficient_scope', async () => {
    expect((await app.inject({ method: 'GET', url: '/api/v1/jobs/qa', headers: auth(VIEWER) })).statusCode).toBe(200);
    const post = await app.inject({ method: 'POST', url: '/api/v1/jobs/qa/runs', headers: auth(VIEWER) });
    expect(post.statusCode).toBe(403);
    expect(post.headers['www-authenticate']).toBe('Bearer realm="db-refresher", error="insufficient_scope"');
    expect(post.json()).toMatchObject({ error: 'forbidden', message: expect.stringContaining('read-only') });
    expect(backend.triggered).toEqual([]);
  });

  it('health, readiness and metrics need no token', async () => {
    expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.headers['content-type']).toContain('text/plain');
    expect(metrics.body).toBe('db_refresher_up 1\n');
    backend.open = false;
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(503);
  });

  it('compares tokens by hash, whatever their length', () => {
    const tokens = new TokenAuth([{ name: 'a', token: new Secret('x'.repeat(40), 'env:A'), readOnly: false }]);
    expect(tokens.check(`Bearer ${'x'.repeat(40)}`)).toEqual({ ok: true, principal: { name: 'a', readOnly: false } });
    expect(tokens.check('Bearer x')).toMatchObject({ ok: false, code: 'INVALID_TOKEN' });
    expect(tokens.check(`bearer   ${'x'.repeat(40)}  `)).toMatchObject({ ok: true });
    expect(tokens.check('Bearer')).toMatchObject({ ok: false, code: 'UNAUTHENTICATED' });
    expect(tokens.check(undefined)).toMatchObject({ ok: false, code: 'UNAUTHENTICATED' });
  });
});

describe('POST /api/v1/jobs/{job}/runs', () => {
  it('202 with the run and a Location header; the trigger records who and why', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/jobs/qa/runs',
      headers: { ...auth(), 'content-type': 'application/json' },
      payload: { reason: 'QA asked for fresh data', dryRun: true },
    });
    expect(res.statusCode).toBe(202);
    const { run } = res.json();
    expect(run).toMatchObject({ job: 'qa', status: 'running' });
    expect(res.headers.location).toBe(`/api/v1/runs/${run.id}`);
    expect(backend.triggered).toEqual([{ job: 'qa', by: 'alice', reason: 'QA asked for fresh data', dryRun: true }]);
  });

  it('a JSON body of null is not an object: 400, and no run starts', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/jobs/qa/runs',
      headers: { ...auth(), 'content-type': 'application/json' },
      payload: 'null',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'bad-request', message: expect.stringContaining('must be a JSON object') });
    expect(backend.triggered).toEqual([]);
  });

  it('a body with a "__proto__" key is refused, saying why (not "not valid JSON")', async () => {
    for (const [payload, key] of [
      ['{"__proto__": {"dryRun": true}}', '__proto__'],
      ['{"reason": "x", "nested": {"constructor": {"prototype": {}}}}', 'constructor.prototype'],
    ] as const) {
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/jobs/qa/runs',
        headers: { ...auth(), 'content-type': 'application/json' },
        payload,
      });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({
        error: 'malformed-body',
        message: expect.stringContaining(`the body has a "${key}" key, which is refused`),
      });
    }
    const broken = await app.inject({
      method: 'POST',
      url: '/api/v1/jobs/qa/runs',
      headers: { ...auth(), 'content-type': 'application/json' },
      payload: '{"reason": ',
    });
    expect(broken.json()).toMatchObject({ error: 'malformed-body', message: expect.stringContaining('not valid JSON') });
    expect(backend.triggered).toEqual([]);
  });

  it('accepts no body at all', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/jobs/qa/runs', headers: auth() });
    expect(res.statusCode).toBe(202);
    expect(backend.triggered).toEqual([{ job: 'qa', by: 'alice', dryRun: false }]);
  });

  it('409 with the running run when the job is busy, without the process id', async () => {
    backend.busy.set('qa', '20300101T030000000Z-abcdef');
    const res = await app.inject({ method: 'POST', url: '/api/v1/jobs/qa/runs', headers: auth() });
    expect(res.statusCode).toBe(409);
    expect(res.body).not.toMatch(/4242|process|pid/);
    expect(res.json().message).toBe(
      'job "qa" is already running (run 20300101T030000000Z-abcdef); wait for that run to finish, one refresh per job runs at a time',
    );
    expect(res.json()).toMatchObject({
      error: 'job-busy',
      runId: '20300101T030000000Z-abcdef',
      links: { run: '/api/v1/runs/20300101T030000000Z-abcdef' },
    });
  });

  it("409 with Retry-After and no run link while the service's own upkeep holds the job (not a run anyone can look up)", async () => {
    for (const holder of ['recovery', 'reaper-1796229123238']) {
      backend.busy.set('qa', holder);
      const res = await app.inject({ method: 'POST', url: '/api/v1/jobs/qa/runs', headers: auth() });
      expect(res.statusCode).toBe(409);
      expect(res.headers['retry-after']).toBe('5');
      expect(res.json()).toEqual(expect.objectContaining({ error: 'job-busy', runId: null }));
      expect(res.json().links).toBeUndefined();
      expect(res.json().message).toContain("busy with the service's own upkeep");
      expect(res.body).not.toContain(holder);
    }
  });

  it('409 for a suspended job that does not allow manual runs; 404 for an unknown job', async () => {
    expect((await app.inject({ method: 'POST', url: '/api/v1/jobs/frozen/runs', headers: auth() })).json()).toMatchObject({
      error: 'job-suspended',
    });
    const missing = await app.inject({ method: 'POST', url: '/api/v1/jobs/nope/runs', headers: auth() });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ error: 'job-not-found' });
    expect(missing.json().message).toContain('qa, frozen');
    expect((await app.inject({ method: 'POST', url: '/api/v1/jobs/NOT_A..NAME/runs', headers: auth() })).statusCode).toBe(404);
  });

  it.each([
    ['{"reason": ', 'malformed-body', 'not valid JSON'],
    ['[1, 2]', 'bad-request', 'body: must be a JSON object such as {"reason"'],
    ['"text"', 'bad-request', 'body: must be a JSON object'],
    ['{"dryRun": "yes"}', 'bad-request', 'dryRun: must be true or false'],
    ['{"reason": ""}', 'bad-request', 'reason: must not be empty'],
    ['{"reason": "x", "force": true}', 'bad-request', 'body: unknown key "force"; the body may hold "reason" and "dryRun"'],
    [JSON.stringify({ reason: 'x'.repeat(501) }), 'bad-request', 'reason: must be at most 500 characters'],
  ])('400 for the body %s', async (payload, error, message) => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/jobs/qa/runs',
      headers: { ...auth(), 'content-type': 'application/json' },
      payload,
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toBe(error);
    expect(res.json().message).toContain(message);
    expect(backend.triggered).toEqual([]);
  });

  it('413 for a body over the limit, 415 for another content type', async () => {
    const big = await app.inject({
      method: 'POST',
      url: '/api/v1/jobs/qa/runs',
      headers: { ...auth(), 'content-type': 'application/json' },
      payload: JSON.stringify({ reason: 'x'.repeat(2000) }),
    });
    expect(big.statusCode).toBe(413);
    expect(big.json()).toEqual({
      error: 'body-too-large',
      message: expect.stringMatching(/larger than \d+ bytes \(server\.bodyLimitBytes\)/),
    });
    const text = await app.inject({
      method: 'POST',
      url: '/api/v1/jobs/qa/runs',
      headers: { ...auth(), 'content-type': 'application/xml' },
      payload: '<run/>',
    });
    expect(text.statusCode).toBe(415);
    expect(text.json().error).toBe('unsupported-media-type');
    // text/plain is parsed (as a string), and a string is not a valid body.
    const plain = await app.inject({
      method: 'POST',
      url: '/api/v1/jobs/qa/runs',
      headers: { ...auth(), 'content-type': 'text/plain' },
      payload: 'hi',
    });
    expect(plain.statusCode).toBe(400);
    expect(plain.json().message).toContain('Content-Type: application/json');
  });

  it('503 once the service is shutting down', async () => {
    backend.open = false;
    const res = await app.inject({ method: 'POST', url: '/api/v1/jobs/qa/runs', headers: auth() });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('30');
    expect(res.json().error).toBe('shutting-down');
  });
});

describe('GET routes', () => {
  it('lists jobs, paginated with a cursor', async () => {
    const first = await app.inject({ method: 'GET', url: '/api/v1/jobs?limit=3', headers: auth() });
    expect(first.statusCode).toBe(200);
    const body = first.json();
    expect(body.jobs.map((j: { name: string }) => j.name)).toEqual(['qa', 'frozen', 'extra-0']);
    expect(body.total).toBe(7);
    expect(body.jobs[0]).toMatchObject({ schedule: '0 3 * * *', timezone: 'UTC', nextRunAt: '2030-01-01T03:00:00.000Z', suspended: false });
    // The compiled serializer drops nothing.
    expect(body.jobs).toEqual(config.jobs.slice(0, 3).map((j) => JSON.parse(JSON.stringify(backend.jobListItem(j)))));
    const next = await app.inject({ method: 'GET', url: `/api/v1/jobs?limit=3&cursor=${body.nextCursor}`, headers: auth() });
    expect(next.json().jobs.map((j: { name: string }) => j.name)).toEqual(['extra-1', 'extra-2', 'extra-3']);
    const last = await app.inject({ method: 'GET', url: '/api/v1/jobs?limit=3&cursor=extra-3', headers: auth() });
    expect(last.json()).toMatchObject({ nextCursor: null });
    for (const bad of ['limit=0', 'limit=abc', 'limit=1001', 'cursor=Nope!', 'cursor=unknown-job']) {
      const res = await app.inject({ method: 'GET', url: `/api/v1/jobs?${bad}`, headers: auth() });
      expect(res.statusCode, bad).toBe(400);
    }
  });

  it('shows a job without any secret', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/jobs/qa', headers: auth() });
    expect(res.json()).toMatchObject({ name: 'qa', schedule: '0 3 * * *', source: { host: 'db.example.com', port: 5432 } });
    expect(res.body).not.toContain(SECRET_PASSWORD);
    expect((await app.inject({ method: 'GET', url: '/api/v1/jobs/nope', headers: auth() })).statusCode).toBe(404);
  });

  it('lists runs newest first with limit and before', async () => {
    const base = Date.parse('2030-01-01T00:00:00Z');
    backend.runs = Array.from({ length: 5 }, (_, i) => record('qa', new Date(base + i * 60_000)));
    const ids = backend.runs.map((r) => r.id).reverse();
    const page = await app.inject({ method: 'GET', url: '/api/v1/jobs/qa/runs?limit=2', headers: auth() });
    expect(page.json().runs.map((r: { id: string }) => r.id)).toEqual(ids.slice(0, 2));
    expect(page.json().nextCursor).toBe(ids[1]);
    const more = await app.inject({ method: 'GET', url: `/api/v1/jobs/qa/runs?limit=2&before=${ids[1]}`, headers: auth() });
    expect(more.json().runs.map((r: { id: string }) => r.id)).toEqual(ids.slice(2, 4));
    expect((await app.inject({ method: 'GET', url: '/api/v1/jobs/qa/runs?before=../../etc', headers: auth() })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/api/v1/jobs/qa/runs?limit=201', headers: auth() })).statusCode).toBe(400);
  });

  it('shows one run with its phases; 404 for an unknown or malformed id', async () => {
    const run = record('qa', new Date('2030-01-01T00:00:00Z'));
    backend.runs = [run];
    const res = await app.inject({ method: 'GET', url: `/api/v1/runs/${run.id}`, headers: auth() });
    expect(res.json()).toMatchObject({ id: run.id, phases: run.phases, links: { self: `/api/v1/runs/${run.id}` } });
    expect(res.json().live).toBeUndefined();
    // While it holds its job, the run also shows its live phase and progress; once its record is finished, never.
    const progress = { at: '2030-01-01T00:01:00.000Z', percent: 42, copiedBytes: 42, totalBytes: 100 };
    backend.live.set('qa', { id: run.id, status: 'running', phase: 'clone', progress });
    expect((await app.inject({ method: 'GET', url: `/api/v1/runs/${run.id}`, headers: auth() })).json().live).toBeUndefined();
    backend.runs = [{ ...run, status: 'running' }];
    const live = await app.inject({ method: 'GET', url: `/api/v1/runs/${run.id}`, headers: auth() });
    expect(live.json().live).toEqual({ phase: 'clone', progress });
    backend.live.set('qa', { id: 'another-run', status: 'running', phase: 'clone' });
    expect((await app.inject({ method: 'GET', url: `/api/v1/runs/${run.id}`, headers: auth() })).json().live).toBeUndefined();
    expect((await app.inject({ method: 'GET', url: '/api/v1/runs/20300101T000000000Z-000000', headers: auth() })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/api/v1/runs/..%2F..%2Fetc', headers: auth() })).statusCode).toBe(404);
  });

  it('unknown routes are JSON 404s', async () => {
    const res = await app.inject({ method: 'GET', url: '/nope?x=1' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: 'not-found', message: 'no route GET /nope; see /api/v1/jobs' });
  });
});

describe('request ids and logging', () => {
  it('echoes a sane X-Request-Id, makes one up otherwise, and logs every request once with it, never the token', async () => {
    const given = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'abc-123' } });
    expect(given.headers['x-request-id']).toBe('abc-123');
    const made = await app.inject({ method: 'GET', url: '/api/v1/jobs', headers: { ...auth(), 'x-request-id': 'bad id with spaces' } });
    expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const lines = logLines.map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.msg === 'request').map((l) => [l.reqId, l.statusCode])).toEqual([
      ['abc-123', 200],
      [made.headers['x-request-id'], 200],
    ]);
    expect(lines.find((l) => l.reqId === made.headers['x-request-id'])).toMatchObject({ by: 'alice', method: 'GET', path: '/api/v1/jobs' });
    for (const line of logLines) expect(line).not.toContain(ALICE);
  });

  it('an unexpected error is a 500 with the request id, not the error text', async () => {
    backend.getRun = async () => {
      throw new Error('disk on fire at /secret/path');
    };
    const res = await app.inject({ method: 'GET', url: '/api/v1/runs/20300101T000000000Z-000000', headers: auth() });
    expect(res.statusCode).toBe(500);
    expect(res.json().error).toBe('internal');
    expect(res.body).not.toContain('disk on fire');
    expect(res.json().message).toContain(res.headers['x-request-id']);
  });
});

describe('framework-level errors in the API shape', () => {
  it('a wrong method on an existing route is 405 with Allow', async () => {
    const del = await app.inject({ method: 'DELETE', url: '/api/v1/jobs/qa', headers: auth() });
    expect(del.statusCode).toBe(405);
    expect(del.headers.allow).toBe('GET, HEAD');
    expect(del.headers['x-request-id']).toBeDefined();
    expect(del.json()).toEqual({ error: 'method-not-allowed', message: '/api/v1/jobs/qa does not answer DELETE; it answers GET, HEAD' });
    const put = await app.inject({ method: 'PUT', url: '/api/v1/jobs/qa/runs?limit=1' });
    expect(put.statusCode).toBe(405);
    expect(put.headers.allow).toBe('GET, HEAD, POST');
    expect((await app.inject({ method: 'GET', url: '/api/v1/nothing', headers: auth() })).statusCode).toBe(404);
  });

  it('a URL that does not decode is 400 and an over-long path segment 414, both as {error, message} with X-Request-Id', async () => {
    const bad = await app.inject({ method: 'GET', url: '/api/v1/jobs/%E0%A4%A', headers: { ...auth(), 'x-request-id': 'req-bad-url' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.headers['x-request-id']).toBe('req-bad-url');
    expect(bad.json()).toEqual({ error: 'bad-request', message: expect.stringContaining('the URL is not valid') });
    const long = await app.inject({ method: 'GET', url: `/api/v1/jobs/${'a'.repeat(300)}`, headers: auth() });
    expect(long.statusCode).toBe(414);
    expect(long.headers['x-request-id']).toBeDefined();
    expect(long.json()).toEqual({ error: 'uri-too-long', message: expect.stringContaining('too long') });
  });
});
