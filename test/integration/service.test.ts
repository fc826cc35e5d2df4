import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { FileRunStore } from '../../src/history/file-store.js';
import { REDACT_PATHS } from '../../src/observe/logger.js';
import type { JobSuspension, Notifier, RunStore } from '../../src/ports.js';
import type { RunEvent } from '../../src/run/events.js';
import type { RunRecord } from '../../src/run/record.js';
import { RefresherService } from '../../src/service/service.js';
import { freePort, LocalHarness } from '../support/local-harness.js';

/**
 * The service in-process, on real PostgreSQL: real refreshes through the real
 * local target, the HTTP API over a real socket, real node-cron schedules,
 * and restarts over the same state directory. Only the notifier is a
 * recording fake (it is a port; its delivery is tested elsewhere).
 */

const TOKEN = 'svc-test-token-0123456789abcdef';
const VIEWER = 'svc-view-token-0123456789abcdef';

class RecordingNotifier implements Notifier {
  readonly events: RunEvent[] = [];
  readonly skips: Array<{ job: string; reason: string; scheduledFor?: string; detail?: string }> = [];
  readonly upcomings: Array<{ job: string; at: string }> = [];
  runEvent(event: RunEvent): void {
    if (event.type !== 'progress') this.events.push(event);
  }
  skipped(input: { job: string; reason: 'overlap' | 'suspended' | 'missed'; scheduledFor?: string; detail?: string }): void {
    this.skips.push(input);
  }
  upcoming(input: { job: string; at: string }): void {
    this.upcomings.push(input);
  }
  async flush(): Promise<void> {}
}

let harness: LocalHarness;
const logLines: string[] = [];
const running: RefresherService[] = [];

beforeAll(async () => {
  harness = await LocalHarness.start();
});

afterEach(async () => {
  for (const service of running.splice(0)) await service.stop('test over');
});

afterAll(async () => {
  await harness?.destroy();
  const secrets = [harness.replicationPassword, harness.ownerPassword, TOKEN, VIEWER];
  for (const line of logLines) for (const secret of secrets) expect(line).not.toContain(secret);
});

function serviceConfig(input: { state: string; jobs: string; server?: string }): Config {
  return parseConfig(
    `stateDir: ${input.state}
server:
  host: 127.0.0.1
  port: 0
  shutdownGraceSeconds: 30
  tokens:
    - { name: alice, token: { env: API_TOKEN } }
    - { name: viewer, token: { env: VIEW_TOKEN }, readOnly: true }
${input.server ?? ''}
jobs:${input.jobs}`,
    { source: 'service-test.yaml', baseDir: harness.sandbox.root, env: { ...harness.env, API_TOKEN: TOKEN, VIEW_TOKEN: VIEWER } },
  );
}

function logger() {
  return pino(
    { level: 'debug', redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    new Writable({
      write: (chunk: Buffer, _e, cb) => {
        logLines.push(chunk.toString());
        cb();
      },
    }),
  );
}

async function startService(
  config: Config,
  options: { clock?: { now(): Date }; notifier?: Notifier; ticks?: boolean; store?: RunStore } = {},
) {
  const service = await RefresherService.create({
    config,
    log: logger(),
    ...(options.notifier ? { notifier: options.notifier } : {}),
    ...(options.store ? { store: options.store } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.ticks === false ? { startTicker: () => ({ stop: async () => undefined }) } : {}),
  });
  running.push(service);
  await service.start();
  const base = await service.listen({ port: 0, host: '127.0.0.1' });
  return { service, base };
}

async function stopService(service: RefresherService): Promise<void> {
  running.splice(running.indexOf(service), 1);
  await service.stop('test restart');
}

function api(base: string, token = TOKEN) {
  const call = async (method: string, url: string, body?: unknown) => {
    const res = await fetch(`${base}${url}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
  };
  return {
    get: (url: string) => call('GET', url),
    post: (url: string, body?: unknown) => call('POST', url, body),
  };
}

/** Polls `probe`; on timeout, the error says what `seen` last described (a timing failure in CI must explain itself). */
async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
  seen: () => unknown = () => undefined,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last seen: ${JSON.stringify(seen()) ?? 'nothing'}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const finished = (run: RunRecord | undefined) => run && !['queued', 'running'].includes(run.status);

async function waitForRun(base: string, id: string): Promise<RunRecord> {
  return waitFor(`run ${id}`, async () => {
    const res = await api(base).get(`/api/v1/runs/${id}`);
    return finished(res.body) ? (res.body as RunRecord) : undefined;
  });
}

describe('HTTP API over a real socket, with real refreshes', () => {
  it('triggers a run (202 + Location), shows it, answers 409 while it runs, records who and why', async () => {
    const targetPort = await freePort();
    const config = serviceConfig({ state: 'state-api', jobs: harness.jobYaml({ name: 'api', targetPort }) });
    // Held for a moment before verify, so the live view can be read while the run is in progress.
    const { base, service } = await startService(config, { store: new HoldingStore(config.stateDir, 1500) });
    const client = api(base);

    const started = await client.post('/api/v1/jobs/api/runs', { reason: 'fresh data for the demo' });
    expect(started.status).toBe(202);
    const id = started.body.run.id as string;
    expect(started.headers.get('location')).toBe(`/api/v1/runs/${id}`);
    expect(started.body.run).toMatchObject({ job: 'api', trigger: { kind: 'http', by: 'alice', reason: 'fresh data for the demo' } });

    const busy = await client.post('/api/v1/jobs/api/runs');
    expect(busy.status).toBe(409);
    expect(busy.body).toMatchObject({ error: 'job-busy', runId: id });
    const detail = await client.get('/api/v1/jobs/api');
    expect(detail.body.current).toMatchObject({ id });
    // While it runs, the run and the job say which phase it is in.
    const live = await waitFor('the run to be starting its copy', async () => {
      const r = await client.get(`/api/v1/runs/${id}`);
      return r.body.live?.phase === 'start' ? r.body : undefined;
    });
    expect(live.status).toBe('running');
    expect((await client.get('/api/v1/jobs/api')).body.current).toMatchObject({ id, status: 'running', phase: 'start' });

    const run = await waitForRun(base, id);
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect((run as RunRecord & { live?: unknown }).live).toBeUndefined();
    expect(run.phases.every((p) => p.status === 'succeeded' && typeof p.durationMs === 'number')).toBe(true);
    expect(run.verification?.ok).toBe(true);

    const list = await client.get('/api/v1/jobs');
    expect(list.body.jobs[0]).toMatchObject({ name: 'api', current: null, lastRun: { id, status: 'succeeded' } });
    const runs = await client.get('/api/v1/jobs/api/runs');
    expect(runs.body.runs.map((r: { id: string }) => r.id)).toEqual([id]);

    // Authentication and errors over the socket.
    expect((await api(base, 'wrong-token').get('/api/v1/jobs')).status).toBe(401);
    expect((await fetch(`${base}/api/v1/jobs`)).status).toBe(401);
    expect((await api(base, VIEWER).post('/api/v1/jobs/api/runs')).status).toBe(403);
    expect((await api(base, VIEWER).get(`/api/v1/runs/${id}`)).status).toBe(200);
    expect((await client.post('/api/v1/jobs/nope/runs')).status).toBe(404);
    const bad = await fetch(`${base}/api/v1/jobs/api/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: '{"dryRun": ',
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toBe('malformed-body');
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);

    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('db_refresher_runs_total{job="api",result="succeeded"} 1');
    expect(metrics).toMatch(/db_refresher_data_age_seconds\{job="api"\} \d/);

    // Nothing secret in any response.
    for (const body of [JSON.stringify(run), JSON.stringify(detail.body), JSON.stringify(list.body), metrics]) {
      for (const secret of [harness.replicationPassword, harness.ownerPassword, TOKEN]) expect(body).not.toContain(secret);
    }
    await stopService(service);
  });

  it('50 concurrent triggers for one job start exactly one run; the other 49 get 409 naming it', async () => {
    const targetPort = await freePort();
    const { base } = await startService(serviceConfig({ state: 'state-burst', jobs: harness.jobYaml({ name: 'burst', targetPort }) }));
    const responses = await Promise.all(
      Array.from({ length: 50 }, (_, i) => api(base).post('/api/v1/jobs/burst/runs', { reason: `request ${i}` })),
    );
    const accepted = responses.filter((r) => r.status === 202);
    const refused = responses.filter((r) => r.status === 409);
    expect(accepted).toHaveLength(1);
    expect(refused).toHaveLength(49);
    const id = accepted[0]?.body.run.id;
    for (const r of refused) expect(r.body.runId).toBe(id);
    expect((await waitForRun(base, id)).status).toBe('succeeded');
    const runs = await api(base).get('/api/v1/jobs/burst/runs?limit=100');
    expect(runs.body.runs).toHaveLength(1);
  });

  it('queues a second job on the same source (one clone per source by default) and runs it after the first', async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const { base } = await startService(
      serviceConfig({
        state: 'state-queue',
        jobs: harness.jobYaml({ name: 'one', targetPort: p1 }) + harness.jobYaml({ name: 'two', targetPort: p2 }),
      }),
    );
    const first = await api(base).post('/api/v1/jobs/one/runs');
    const second = await api(base).post('/api/v1/jobs/two/runs');
    expect(first.body.run.status).toBe('running');
    expect(second.status).toBe(202);
    expect(second.body.run.status).toBe('queued');
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('db_refresher_runs_queued 1');
    const [a, b] = [await waitForRun(base, first.body.run.id), await waitForRun(base, second.body.run.id)];
    expect([a.status, b.status]).toEqual(['succeeded', 'succeeded']);
    expect(Date.parse(b.startedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(a.finishedAt ?? ''));
    expect(Date.parse(b.startedAt ?? '')).toBeGreaterThan(Date.parse(b.createdAt));
  });
});

/**
 * The file store, but the first save of each run that starts verifying waits a while first: a
 * local refresh of the small test database can take less than the second between two ticks, and
 * the overlap test needs a run that is still going when the next tick comes.
 */
class HoldingStore implements RunStore {
  readonly #inner: FileRunStore;
  readonly #held = new Set<string>();
  constructor(
    stateDir: string,
    readonly holdMs: number,
  ) {
    this.#inner = new FileRunStore(stateDir);
  }
  async save(run: RunRecord): Promise<void> {
    if (run.phases.find((p) => p.name === 'verify')?.status === 'running' && !this.#held.has(run.id)) {
      this.#held.add(run.id);
      await new Promise((r) => setTimeout(r, this.holdMs));
    }
    return this.#inner.save(run);
  }
  get(id: string): Promise<RunRecord | undefined> {
    return this.#inner.get(id);
  }
  list(job: string, options?: { limit?: number; before?: string }): Promise<RunRecord[]> {
    return this.#inner.list(job, options);
  }
  getSuspension(job: string) {
    return this.#inner.getSuspension(job);
  }
  saveSuspension(job: string, suspension: JobSuspension) {
    return this.#inner.saveSuspension(job, suspension);
  }
}

describe('schedules (real node-cron, every second)', () => {
  it('runs on schedule; ticks during a run are skipped as overlap, recorded and notified', async () => {
    const targetPort = await freePort();
    const notifier = new RecordingNotifier();
    const config = serviceConfig({
      state: 'state-cron',
      jobs: `${harness.jobYaml({ name: 'cron', targetPort })}    schedule: "* * * * * *"\n    timezone: Europe/Berlin\n`,
    });
    const { base, service } = await startService(config, { notifier, store: new HoldingStore(config.stateDir, 2500) });
    let last: unknown;
    const scheduled = await waitFor(
      'a scheduled run and an overlap',
      async () => {
        const runs = (await api(base).get('/api/v1/jobs/cron/runs?limit=200')).body.runs as Array<{
          status: string;
          trigger: { kind: string };
          skip?: { reason: string };
          error?: { phase: string; message: string };
        }>;
        // A failed refresh would fail again on every tick: say why now instead of waiting out the timeout.
        const failed = runs.find((r) => r.trigger.kind === 'schedule' && r.status === 'failed');
        if (failed) throw new Error(`a scheduled run failed in ${failed.error?.phase}: ${failed.error?.message}`);
        last = runs.slice(0, 10).map((r) => `${r.trigger.kind} ${r.status}${r.skip ? ` (${r.skip.reason})` : ''}`);
        const ran = runs.find((r) => r.trigger.kind === 'schedule' && r.status === 'succeeded');
        return ran && runs.some((r) => r.skip?.reason === 'overlap') ? runs : undefined;
      },
      60_000,
      () => ({
        newestRuns: last,
        skipsNotified: notifier.skips.map((x) => x.reason),
        runEvents: notifier.events.map((e) => e.type).slice(-20),
      }),
    );
    await stopService(service);
    const ran = scheduled.find((r) => r.status === 'succeeded') as unknown as RunRecord;
    expect(ran.trigger).toMatchObject({ kind: 'schedule', by: 'scheduler', schedule: '* * * * * *', timezone: 'Europe/Berlin' });
    expect(ran.trigger.scheduledFor).toMatch(/T\d\d:\d\d:\d\d\.000Z$/);
    const overlap = notifier.skips.find((s) => s.reason === 'overlap');
    expect(overlap?.detail).toMatch(/run \d{8}T\d{9}Z-[0-9a-f]{6} of this job was still running/);
    expect(notifier.events.some((e) => e.type === 'run-finished' && e.run.status === 'succeeded')).toBe(true);
    const skipped = await new FileRunStore(config.stateDir).list('cron', { limit: 100 });
    expect(skipped.filter((r) => r.status === 'skipped').every((r) => r.skip?.reason === 'overlap' && r.trigger.scheduledFor)).toBe(true);
  });

  it('a suspended job runs nothing on schedule: ticks are recorded as skipped (suspended); manual runs still work', async () => {
    const targetPort = await freePort();
    const notifier = new RecordingNotifier();
    const { base } = await startService(
      serviceConfig({
        state: 'state-suspended',
        jobs: `${harness.jobYaml({ name: 'paused', targetPort })}    schedule: "* * * * * *"\n    suspend: true\n`,
      }),
      { notifier },
    );
    await waitFor('two suspended ticks', () => (notifier.skips.filter((s) => s.reason === 'suspended').length >= 2 ? true : undefined));
    const runs = (await api(base).get('/api/v1/jobs/paused/runs')).body.runs;
    expect(runs.every((r: { status: string; skip: { reason: string } }) => r.status === 'skipped' && r.skip.reason === 'suspended')).toBe(
      true,
    );
    expect((await api(base).get('/api/v1/jobs/paused')).body).toMatchObject({ suspended: true, nextRuns: [] });
    const manual = await api(base).post('/api/v1/jobs/paused/runs', { dryRun: true });
    expect(manual.status).toBe(202);
    expect((await waitForRun(base, manual.body.run.id)).status).toBe('succeeded');
  });
});

describe('restarts', () => {
  it('history survives a restart; a missed fire time within the deadline is caught up once', async () => {
    const targetPort = await freePort();
    const jobs = `${harness.jobYaml({ name: 'catchup', targetPort })}    schedule: "*/2 * * * * *"\n    startingDeadlineSeconds: 600\n`;
    const config = serviceConfig({ state: 'state-catchup', jobs });
    const first = await startService(config);
    const firstRun = await waitFor('a scheduled run', async () => {
      const runs = (await api(first.base).get('/api/v1/jobs/catchup/runs')).body.runs as RunRecord[];
      return runs.find((r) => r.trigger.kind === 'schedule' && r.status === 'succeeded');
    });
    await stopService(first.service);
    const before = await new FileRunStore(config.stateDir).list('catchup', { limit: 100 });
    const lastHandled =
      before
        .map((r) => r.trigger.scheduledFor ?? '')
        .sort()
        .at(-1) ?? '';

    // Down over at least one fire time (every 2 s).
    await new Promise((r) => setTimeout(r, 4500));
    // No ticker this time, so what runs is the catch-up alone.
    const second = await startService(config, { ticks: false });
    const history = (await api(second.base).get('/api/v1/jobs/catchup/runs?limit=100')).body.runs as RunRecord[];
    expect(history.map((r) => r.id)).toEqual(expect.arrayContaining(before.map((r) => r.id)));
    const catchUp = history.find((r) => r.trigger.kind === 'catch-up');
    expect(catchUp?.trigger.scheduledFor && catchUp.trigger.scheduledFor > lastHandled).toBe(true);
    expect(catchUp?.trigger.reason).toMatch(/while the service was not running/);
    expect((await waitForRun(second.base, catchUp?.id ?? '')).status).toBe('succeeded');
    const job = (await api(second.base).get('/api/v1/jobs/catchup')).body;
    expect(job.lastSuccess.id).toBe(catchUp?.id);
    expect(firstRun.id < (catchUp?.id ?? '')).toBe(true);
    expect(history.filter((r) => r.trigger.kind === 'catch-up')).toHaveLength(1);
  });

  it('a fire time missed by more than the deadline is recorded as missed (fake clock), and counted', async () => {
    const targetPort = await freePort();
    const jobs = `${harness.jobYaml({ name: 'late', targetPort })}    schedule: "0 3 * * *"\n    startingDeadlineSeconds: 60\n`;
    const config = serviceConfig({ state: 'state-missed', jobs });
    const store = new FileRunStore(config.stateDir);
    // The last time the scheduler handled this job: a skipped tick three days ago, as an earlier service wrote it.
    const notifier = new RecordingNotifier();
    const t0 = Date.parse('2030-01-01T03:00:00Z');
    const seedClock = { now: () => new Date(t0) };
    const seeding = await startService(config, { clock: seedClock, ticks: false });
    seeding.service.dispatch.fire(seeding.service.api.job('late') as never, new Date(t0), false);
    await waitFor('the seeded run to settle', async () => {
      const runs = await store.list('late');
      return runs[0] && finished(runs[0]) ? true : undefined;
    });
    await stopService(seeding.service);

    const later = { now: () => new Date(t0 + 3 * 86_400_000 + 2 * 3600_000) };
    const { base } = await startService(config, { clock: later, notifier, ticks: false });
    const runs = (await api(base).get('/api/v1/jobs/late/runs')).body.runs as RunRecord[];
    expect(runs[0]).toMatchObject({
      status: 'skipped',
      skip: { reason: 'missed' },
      trigger: { kind: 'schedule', scheduledFor: '2030-01-04T03:00:00.000Z' },
    });
    expect(runs[0]?.skip?.detail).toBe(
      '3 scheduled times passed while the service was not running; the newest was 7200 s ago, more than startingDeadlineSeconds (60)',
    );
    expect(notifier.skips).toEqual([expect.objectContaining({ job: 'late', reason: 'missed', scheduledFor: '2030-01-04T03:00:00.000Z' })]);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('db_refresher_missed_runs_total{job="late"} 3');
    expect(metrics).toContain('db_refresher_skipped_runs_total{job="late",reason="missed"} 1');
  });

  it('after a crash, a run left in start or verify resumes; one left in clone is marked interrupted and notified', async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const config = serviceConfig({
      state: 'state-crash',
      jobs: harness.jobYaml({ name: 'resumable', targetPort: p1 }) + harness.jobYaml({ name: 'broken', targetPort: p2 }),
    });
    // Real finished runs, then rewritten the way a crash leaves them.
    const first = await startService(config);
    const [r1, r2] = await Promise.all(['resumable', 'broken'].map((job) => api(first.base).post(`/api/v1/jobs/${job}/runs`)));
    const done1 = await waitForRun(first.base, r1?.body.run.id);
    const done2 = await waitForRun(first.base, r2?.body.run.id);
    await stopService(first.service);
    const crashedIn = (run: RunRecord, phase: string): RunRecord => {
      const at = run.phases.findIndex((p) => p.name === phase);
      const { finishedAt: _f, durationMs: _d, verification: _v, ...rest } = run;
      return {
        ...rest,
        status: 'running',
        phases: run.phases.map((p, i) =>
          i < at
            ? p
            : i === at
              ? { name: p.name, status: 'running', ...(p.startedAt ? { startedAt: p.startedAt } : {}) }
              : { name: p.name, status: 'pending' },
        ),
      };
    };
    const store = new FileRunStore(config.stateDir);
    await store.save(crashedIn(done1, 'verify'));
    await store.save(crashedIn(done2, 'clone'));

    const notifier = new RecordingNotifier();
    const { base } = await startService(config, { notifier, ticks: false });
    const resumed = await waitForRun(base, done1.id);
    expect(resumed.status, JSON.stringify(resumed.error)).toBe('succeeded');
    expect(resumed.resumed).toEqual([expect.objectContaining({ fromPhase: 'verify' })]);
    expect(resumed.verification?.ok).toBe(true);
    const interrupted = (await api(base).get(`/api/v1/runs/${done2.id}`)).body as RunRecord;
    expect(interrupted.status).toBe('interrupted');
    expect(interrupted.error).toMatchObject({ phase: 'clone', class: 'interrupted' });
    expect(interrupted.error?.message).toBe(
      'the service stopped while clone was running, which cannot be resumed safely: the target may be incomplete; run the job again',
    );
    expect(notifier.events.find((e) => e.type === 'run-finished' && e.run.id === done2.id)?.run.status).toBe('interrupted');
    // Nothing is left running.
    for (const job of ['resumable', 'broken']) {
      for (const r of await store.list(job)) expect(['succeeded', 'interrupted']).toContain(r.status);
    }
  });

  it('a lock file left by an earlier process with the same pid (a restarted container) does not block the job', async () => {
    const targetPort = await freePort();
    const config = serviceConfig({ state: 'state-pid', jobs: harness.jobYaml({ name: 'pid', targetPort }) });
    const lockDir = path.join(config.stateDir, 'locks');
    const { base } = await startService(config, { ticks: false });
    mkdirSync(lockDir, { recursive: true });
    writeFileSync(
      path.join(lockDir, 'pid.lock'),
      JSON.stringify({ pid: process.pid, runId: '20000101T000000000Z-000000', since: '2000-01-01T00:00:00.000Z' }),
    );
    const res = await api(base).post('/api/v1/jobs/pid/runs', { dryRun: true });
    expect(res.status).toBe(202);
    expect(JSON.parse(readFileSync(path.join(lockDir, 'pid.lock'), 'utf8')).runId).toBe(res.body.run.id);
    expect((await waitForRun(base, res.body.run.id)).status).toBe('succeeded');
  });
});
