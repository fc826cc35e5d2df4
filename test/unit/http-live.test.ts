import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { Secret } from '../../src/config/secret.js';
import type { JobConfig } from '../../src/config/types.js';
import { buildApp } from '../../src/http/app.js';
import type { ApiBackend } from '../../src/http/backend.js';
import { LiveFeed, runUpdate } from '../../src/http/live-feed.js';
import { jobDetail, jobListItem } from '../../src/http/views.js';
import { newRun, newRunId, type RunRecord } from '../../src/run/record.js';

/**
 * The live routes over a real socket (a stream cannot be injected): the SSE
 * stream with its authentication, job filter and shutdown, and the long poll.
 */

const TOKEN = 'live-token-0123456789abcdef';

const config = parseConfig(
  `jobs:
  - name: qa
    source: { host: db.example.com, user: r }
    target: { kind: local, dataDir: /tmp/qa, port: 5501 }
  - name: other
    source: { host: db.example.com, user: r }
    target: { kind: local, dataDir: /tmp/other, port: 5502 }`,
  { source: 't.yaml', baseDir: '/tmp', env: {} },
);

function record(job: string, status: RunRecord['status']): RunRecord {
  return {
    ...newRun({
      id: newRunId(new Date()),
      job,
      trigger: { kind: 'http', by: 'alice' },
      dryRun: false,
      now: new Date(),
      source: { host: 'db.example.com', port: 5432, user: 'r' },
      target: { kind: 'local', summary: 'local copy', details: {}, steps: { teardown: '', clone: '', start: '' } },
    }),
    status,
  };
}

class Backend implements ApiBackend {
  runs = new Map<string, RunRecord>();
  feed = new LiveFeed();
  jobs = () => config.jobs;
  job = (name: string) => config.jobs.find((j) => j.name === name);
  jobListItem = (job: JobConfig) => jobListItem(job, {}, undefined);
  jobDetail = (job: JobConfig) => jobDetail({ job, state: {}, targetSummary: 'x', nextRuns: [], warnings: [] });
  listRuns = async () => [];
  getRun = async (id: string) => this.runs.get(id);
  trigger = async (): Promise<RunRecord> => {
    throw new Error('not here');
  };
  runningRunId = () => undefined;
  currentRun = () => undefined;
  accepting = () => true;
  readiness = async () => ({ ready: true, checks: {} });
  metricsText = async () => ({ contentType: 'text/plain', body: '' });
  subscribe = (listener: Parameters<ApiBackend['subscribe']>[0]) => this.feed.subscribe(listener);
  cancel = async (): Promise<{ outcome: 'not-found' }> => ({ outcome: 'not-found' });
  setSuspended = async (_job: JobConfig, input: { suspended: boolean; by: string; reason?: string }) => ({
    ...input,
    at: new Date().toISOString(),
  });
}

let backend: Backend;
let app: ReturnType<typeof buildApp>;
let base: string;

beforeEach(async () => {
  backend = new Backend();
  app = buildApp({
    backend,
    tokens: [{ name: 'alice', token: new Secret(TOKEN, 'env:T'), readOnly: true }],
    log: pino({ level: 'silent' }, new Writable({ write: (_c, _e, cb) => cb() })),
    bodyLimitBytes: 1024,
  });
  base = await app.listen({ port: 0, host: '127.0.0.1' });
});

afterEach(async () => {
  await app.close();
});

/** Reads SSE frames from a response until `until` says stop. */
async function readEvents(res: Response, until: (events: Array<{ event: string; data: string }>) => boolean) {
  const events: Array<{ event: string; data: string }> = [];
  const reader = res.body?.getReader();
  if (!reader) throw new Error('no body');
  const decoder = new TextDecoder();
  let buffer = '';
  while (!until(events)) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut = buffer.indexOf('\n\n');
    while (cut >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = /^event: (.*)$/m.exec(frame)?.[1];
      const data = /^data: (.*)$/m.exec(frame)?.[1];
      if (event && data) events.push({ event, data });
      cut = buffer.indexOf('\n\n');
    }
  }
  return { events, reader };
}

describe('GET /api/v1/events', () => {
  it('needs a token', async () => {
    const res = await fetch(`${base}/api/v1/events`);
    expect(res.status).toBe(401);
  });

  it('streams job and run events, filtered by job, and ends when the server closes', async () => {
    const res = await fetch(`${base}/api/v1/events?job=qa`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const run = record('qa', 'running');
    const publish = setInterval(() => {
      backend.feed.publish({ type: 'job', data: jobListItem(config.jobs[1] as JobConfig, {}, undefined) });
      backend.feed.publish({ type: 'run', data: runUpdate(run, 'progress', { phase: 'clone', progress: { at: 'x', percent: 40 } }) });
    }, 20);
    const { events, reader } = await readEvents(res, (e) => e.length >= 3);
    clearInterval(publish);
    expect(events[0]?.event).toBe('hello');
    expect(events.slice(1).map((e) => e.event)).toEqual(['run', 'run']);
    expect(JSON.parse(events[1]?.data ?? '{}')).toMatchObject({
      id: run.id,
      job: 'qa',
      event: 'progress',
      phase: 'clone',
      progress: { percent: 40 },
    });
    expect(backend.feed.listeners).toBe(1);
    const closed = app.close();
    const rest = await reader.read().then(async function drain(r): Promise<boolean> {
      return r.done ? true : drain(await reader.read());
    });
    expect(rest).toBe(true);
    await closed;
    expect(backend.feed.listeners).toBe(0);
  });

  it('404 for an unknown job, 400 for an unknown parameter', async () => {
    const headers = { authorization: `Bearer ${TOKEN}` };
    expect((await fetch(`${base}/api/v1/events?job=nope`, { headers })).status).toBe(404);
    const bad = await fetch(`${base}/api/v1/events?jbo=qa`, { headers });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain('jbo');
  });
});

describe('GET /api/v1/runs/{id}?wait=', () => {
  const get = (path: string) => fetch(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });

  it('answers when the run ends', async () => {
    const run = record('qa', 'running');
    backend.runs.set(run.id, run);
    const started = Date.now();
    setTimeout(() => {
      const done = { ...run, status: 'succeeded' as const };
      backend.runs.set(run.id, done);
      backend.feed.publish({ type: 'run', data: runUpdate(done, 'run-finished') });
    }, 300);
    const res = await get(`/api/v1/runs/${run.id}?wait=20`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as RunRecord).status).toBe('succeeded');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(backend.feed.listeners).toBe(0);
  });

  it('answers with the running run when the wait runs out, and at once for a finished one', async () => {
    const run = record('qa', 'running');
    backend.runs.set(run.id, run);
    const started = Date.now();
    expect(((await (await get(`/api/v1/runs/${run.id}?wait=1`)).json()) as RunRecord).status).toBe('running');
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    const done = record('qa', 'failed');
    backend.runs.set(done.id, done);
    const at = Date.now();
    expect(((await (await get(`/api/v1/runs/${done.id}?wait=60`)).json()) as RunRecord).status).toBe('failed');
    expect(Date.now() - at).toBeLessThan(1000);
  });

  it('400 for a bad wait', async () => {
    const run = record('qa', 'running');
    backend.runs.set(run.id, run);
    const res = await get(`/api/v1/runs/${run.id}?wait=9999`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toContain('wait: must be a whole number of seconds 0-300');
  });
});
