import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CONNECTABLE_DATABASES,
  DATABASE_SIZE_AND_OWNER,
  SOURCE_SETTINGS,
  TABLES_PER_SCHEMA,
  TOTAL_SIZE,
} from '../../src/checks/queries.js';
import { parseConfig } from '../../src/config/load.js';
import type { JobConfig, PgEndpoint } from '../../src/config/types.js';
import { PhaseFailure } from '../../src/errors.js';
import { silentLogger } from '../../src/observe/logger.js';
import type { Clock, JobSuspension, PhaseContext, RunStore, SqlConnector, SqlSession, Target } from '../../src/ports.js';
import type { RunEvent } from '../../src/run/events.js';
import type { Check, SourceFacts } from '../../src/run/facts.js';
import { RECREATE_PHASES as PHASES, type PhaseName, type RunRecord } from '../../src/run/record.js';
import { JobLocks } from '../../src/runner/lock.js';
import { Runner } from '../../src/runner/runner.js';
import { ConcurrencyGate } from '../../src/service/gate.js';

/**
 * The runner on its own: a fake target, a fake SQL connector that answers the
 * catalog queries, an in-memory run store and a clock the test moves. No
 * PostgreSQL and no Kubernetes, so every path through the phase table runs in
 * milliseconds.
 */

const T0 = Date.parse('2026-03-01T02:00:00.000Z');

class FakeClock implements Clock {
  ms = T0;
  now(): Date {
    return new Date(this.ms);
  }
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

/** Keeps every saved version of every record, so tests can see what was persisted when. */
class MemoryStore implements RunStore {
  readonly saves: RunRecord[] = [];
  async save(run: RunRecord): Promise<void> {
    this.saves.push(structuredClone(run));
  }
  async get(id: string): Promise<RunRecord | undefined> {
    return structuredClone(this.saves.findLast((r) => r.id === id));
  }
  async list(job: string): Promise<RunRecord[]> {
    return [...new Map(this.saves.filter((r) => r.job === job).map((r) => [r.id, r])).values()].reverse();
  }
  readonly suspensions = new Map<string, JobSuspension>();
  async getSuspension(job: string): Promise<JobSuspension | undefined> {
    return this.suspensions.get(job);
  }
  async saveSuspension(job: string, suspension: JobSuspension): Promise<void> {
    this.suspensions.set(job, suspension);
  }
}

const COPY_HOST = 'copy.test';

/** Answers the catalog queries inspectSource, snapshotSource and verifyCopy ask; the copy can be told to differ. */
class FakeSql implements SqlConnector {
  copyTables = 3;
  failOn: string | undefined;
  async withSession<T>(endpoint: PgEndpoint, database: string, fn: (session: SqlSession) => Promise<T>): Promise<T> {
    const onCopy = endpoint.host === COPY_HOST;
    const session: SqlSession = {
      query: async <Row extends Record<string, unknown>>(text: string): Promise<Row[]> => {
        if (text === this.failOn) throw new Error('connection reset by peer');
        const rows: Record<string, unknown>[] =
          text === SOURCE_SETTINGS
            ? [
                {
                  server_version_num: 160004,
                  max_wal_senders: 10,
                  active_wal_senders: 0,
                  tablespaces: [],
                  is_superuser: false,
                  can_read_settings: false,
                  has_pg_checkpoint: true,
                },
              ]
            : text === TOTAL_SIZE
              ? [{ total: '1000' }]
              : text === CONNECTABLE_DATABASES
                ? [{ name: 'app' }]
                : text === DATABASE_SIZE_AND_OWNER
                  ? [{ size_bytes: '1000', owner: 'app' }]
                  : text === TABLES_PER_SCHEMA
                    ? [{ schema: 'public', tables: onCopy ? this.copyTables : 3 }]
                    : [];
        if (rows.length === 0) throw new Error(`unexpected query on ${database}: ${text}`);
        return rows as Row[];
      },
      execute: async () => 0,
      script: async () => [],
      backendPid: () => undefined,
    };
    return fn(session);
  }
  async identifySystem() {
    return { systemIdentifier: '7340000000000000001', timeline: 1, walPosition: '0/3000000' };
  }
}

/** Promise.withResolvers, which Node 20 lacks. */
function resolvers(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

type TargetPhase = 'teardown' | 'clone' | 'start';

/** A target that records its calls, moves the clock, and can fail or hold any phase. */
class FakeTarget implements Target {
  readonly calls: string[] = [];
  readonly contexts: Partial<Record<TargetPhase, PhaseContext>> = {};
  readonly failIn = new Set<TargetPhase>();
  preflightChecks: Check[] = [{ name: 'target may be replaced', ok: true, message: 'ok' }];
  readonly #held = new Map<TargetPhase, { enter: () => void; released: Promise<void> }>();
  readonly clock: FakeClock;

  constructor(clock: FakeClock) {
    this.clock = clock;
  }

  /** The next call of `phase` waits until released (or aborted); `entered` settles once it waits. */
  hold(phase: TargetPhase): { entered: Promise<void>; release: () => void } {
    const entered = resolvers();
    const released = resolvers();
    this.#held.set(phase, { enter: entered.resolve, released: released.promise });
    return { entered: entered.promise, release: released.resolve };
  }

  describe() {
    return { kind: 'local', summary: 'fake copy', details: {}, steps: { teardown: 'remove', clone: 'copy', start: 'start' } };
  }
  async resolveSource(source: JobConfig['source']) {
    this.calls.push('resolveSource');
    return { source, checks: [] };
  }
  async preflight(source: SourceFacts | undefined): Promise<Check[]> {
    this.calls.push(`preflight:${source?.majorVersion}`);
    this.clock.advance(1);
    return this.preflightChecks;
  }
  async #phase(phase: TargetPhase, ctx: PhaseContext): Promise<Record<string, unknown>> {
    this.calls.push(phase);
    this.contexts[phase] = ctx;
    const held = this.#held.get(phase);
    if (held) {
      this.#held.delete(phase);
      held.enter();
      await Promise.race([
        held.released,
        new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('pg_basebackup killed')))),
      ]);
    }
    this.clock.advance(10);
    if (this.failIn.has(phase)) throw new PhaseFailure('timeout', `${phase} did not finish`);
    return { [`${phase}Done`]: true };
  }
  teardown(ctx: PhaseContext) {
    return this.#phase('teardown', ctx);
  }
  clone(ctx: PhaseContext) {
    return this.#phase('clone', ctx);
  }
  start(ctx: PhaseContext) {
    return this.#phase('start', ctx);
  }
  endpoint(database: string): PgEndpoint {
    return { host: COPY_HOST, port: 5433, user: 'app', dbname: database, sslmode: 'disable' } as PgEndpoint;
  }
  async recordOutcome(run: RunRecord): Promise<void> {
    this.calls.push(`outcome:${run.status}`);
  }
}

function testJob(): JobConfig {
  const config = parseConfig(
    'jobs:\n  - name: qa\n    source: { host: db.example.com, user: replicator }\n    target: { kind: local, dataDir: /srv/qa, port: 5433 }\n',
    { source: 'test.yaml', baseDir: '/etc/db-refresher', env: {} },
  );
  const job = config.jobs[0];
  if (!job) throw new Error('no job parsed');
  return job;
}

let stateDir: string;
let clock: FakeClock;
let store: MemoryStore;
let sql: FakeSql;
let target: FakeTarget;
let events: RunEvent[];
const job = testJob();

function runner(): Runner {
  return new Runner({
    store,
    locks: new JobLocks(stateDir),
    sql,
    clock,
    log: silentLogger(),
    targetFor: () => target,
    onEvent: (event) => events.push(event),
  });
}

const statuses = (run: RunRecord) => Object.fromEntries(run.phases.map((p) => [p.name, p.status]));

beforeEach(() => {
  stateDir = mkdtempSync(path.join(tmpdir(), 'runner-test-'));
  clock = new FakeClock();
  store = new MemoryStore();
  sql = new FakeSql();
  target = new FakeTarget(clock);
  events = [];
});

afterEach(() => {
  rmSync(stateDir, { recursive: true, force: true });
});

describe('Runner with a fake target and a fake clock', () => {
  it('runs every phase in order, saving before and after each, with timings from the clock', async () => {
    const run = await runner().run(job, { kind: 'cli', by: 'alice' });

    expect(run.status).toBe('succeeded');
    expect(statuses(run)).toEqual(Object.fromEntries(PHASES.map((p) => [p, 'succeeded'])));
    expect(target.calls).toEqual(['resolveSource', 'preflight:16', 'teardown', 'clone', 'start', 'outcome:succeeded']);
    // Timings come from the fake clock: preflight 1 s, each target phase 10 s; the fake has no private window.
    expect(run.phases.map((p) => p.durationMs)).toEqual([1000, 0, 10_000, 10_000, 10_000, 0, 0, 0, 0, 0]);
    expect(run.durationMs).toBe(31_000);
    expect(run.snapshot?.takenAt).toBe(new Date(T0 + 1000).toISOString());
    expect(run.preflight?.every((c) => c.ok)).toBe(true);
    expect(run.verification?.ok).toBe(true);
    expect(run.phases.find((p) => p.name === 'clone')?.detail).toEqual({ cloneDone: true });
    // What preflight learned reaches the target's later phases through the context, not through its fields.
    expect(target.contexts.clone?.facts?.systemIdentifier).toBe('7340000000000000001');

    // Persisted as "running" before each phase ran, and with its outcome after.
    for (const phase of PHASES) {
      const states = store.saves.map((r) => r.phases.find((p) => p.name === phase)?.status);
      expect(states.indexOf('running'), phase).toBeGreaterThan(-1);
      expect(states.indexOf('running')).toBeLessThan(states.indexOf('succeeded'));
    }
    expect(events.map((e) => (e.type === 'phase-started' || e.type === 'phase-finished' ? `${e.type}:${e.phase}` : e.type))).toEqual([
      'run-started',
      ...PHASES.flatMap((p) => [`phase-started:${p}`, `phase-finished:${p}`]),
      'run-finished',
    ]);
  });

  const failures: Array<{ phase: PhaseName; arrange: () => void; failureClass: string; keeps?: (run: RunRecord) => unknown }> = [
    {
      phase: 'preflight',
      arrange: () => {
        target.preflightChecks = [{ name: 'target may be replaced', ok: false, message: 'protected', failureClass: 'unsafe-target' }];
      },
      failureClass: 'unsafe-target',
      keeps: (run) => run.preflight?.find((c) => !c.ok)?.message,
    },
    { phase: 'snapshot', arrange: () => (sql.failOn = CONNECTABLE_DATABASES), failureClass: 'unknown' },
    { phase: 'teardown', arrange: () => target.failIn.add('teardown'), failureClass: 'timeout' },
    { phase: 'clone', arrange: () => target.failIn.add('clone'), failureClass: 'timeout' },
    { phase: 'start', arrange: () => target.failIn.add('start'), failureClass: 'timeout' },
    {
      phase: 'verify',
      arrange: () => (sql.copyTables = 2),
      failureClass: 'verification-failed',
      keeps: (run) => run.verification?.ok === false,
    },
  ];

  it.each(failures)('a failure in $phase fails the run there, skips the rest and keeps what the phase found', async (c) => {
    c.arrange();
    const run = await runner().run(job, { kind: 'cli' });

    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ phase: c.phase, class: c.failureClass });
    expect(run.error?.hint).toBeTruthy();
    const index = PHASES.indexOf(c.phase);
    expect(statuses(run)).toEqual(
      Object.fromEntries(PHASES.map((p, i) => [p, i < index ? 'succeeded' : i === index ? 'failed' : 'skipped'])),
    );
    if (c.keeps) expect(c.keeps(run)).toBeTruthy();
    expect(target.calls.at(-1)).toBe('outcome:failed');
    expect((await store.get(run.id))?.status).toBe('failed');
  });

  it.each(['start', 'neutralise'] as const)(
    'pauses at the boundary before %s on shutdown, and a restarted service resumes there',
    async (resumeAt) => {
      const before = PHASES[PHASES.indexOf(resumeAt) - 1] as TargetPhase;
      const gate = target.hold(before);
      const first = runner();
      const started = await first.start(job, { kind: 'schedule' });
      await gate.entered;
      first.pauseAll('shutting down');
      gate.release();
      const paused = await started.done;

      expect(paused.status).toBe('running');
      expect(paused.paused).toMatchObject({ reason: 'shutting down', nextPhase: resumeAt });
      expect(statuses(paused)[resumeAt]).toBe('pending');
      expect((await store.get(paused.id))?.paused?.nextPhase).toBe(resumeAt);

      // A new process: new runner, new target, the record from the store.
      target = new FakeTarget(clock);
      const record = (await store.get(paused.id)) as RunRecord;
      const resumed = await (await runner().resume(record, job)).done;

      expect(resumed.status).toBe('succeeded');
      expect(resumed.resumed).toEqual([{ at: expect.any(String), fromPhase: resumeAt }]);
      expect(resumed.paused).toBeUndefined();
      // Only what was left ran again; the source's credentials were resolved once more, for verify.
      expect(target.calls).toEqual(['resolveSource', ...(resumeAt === 'start' ? ['start'] : []), 'outcome:succeeded']);
      expect(resumed.verification?.databases.map((d) => d.database)).toEqual(['app']);
    },
  );

  it('refuses to resume a run paused before a phase that is not resumable, saying the target may be incomplete', async () => {
    const gate = target.hold('teardown');
    const first = runner();
    const started = await first.start(job, { kind: 'schedule' });
    await gate.entered;
    first.pauseAll('shutting down');
    gate.release();
    const paused = await started.done;
    expect(paused.paused?.nextPhase).toBe('clone');
    await expect(runner().resume(paused, job)).rejects.toThrow(/cannot be resumed safely: the target may be incomplete/);
  });

  it('an abort stops the phase under way and records the run as interrupted there', async () => {
    const gate = target.hold('clone');
    const r = runner();
    const started = await r.start(job, { kind: 'http', by: 'bob' });
    await gate.entered;
    r.abortAll('the service is stopping');
    const run = await started.done;

    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ phase: 'clone', class: 'interrupted', message: 'stopped during clone: the service is stopping' });
    expect(statuses(run)).toMatchObject({ clone: 'failed', start: 'skipped', verify: 'skipped' });
    expect(r.activeCount).toBe(0);
  });

  it('a dry run checks and snapshots, and skips every phase that changes the target or verifies it', async () => {
    const run = await runner().run(job, { kind: 'cli' }, { dryRun: true });

    expect(run.status).toBe('succeeded');
    expect(statuses(run)).toEqual({
      preflight: 'succeeded',
      snapshot: 'succeeded',
      teardown: 'skipped',
      clone: 'skipped',
      start: 'skipped',
      neutralise: 'skipped',
      prepare: 'skipped',
      mask: 'skipped',
      open: 'skipped',
      verify: 'skipped',
    });
    expect(run.phases.find((p) => p.name === 'clone')?.reason).toBe('dry run: nothing is changed');
    expect(target.calls).toEqual(['resolveSource', 'preflight:16']);
  });

  it('a run that waits for a slot announces itself queued, records the wait as queuedMs, and keeps it out of durationMs', async () => {
    const gate = new ConcurrencyGate({ global: 1, perSource: 1 });
    const r = new Runner({
      store,
      locks: new JobLocks(stateDir),
      sql,
      clock,
      log: silentLogger(),
      targetFor: () => target,
      gate,
      onEvent: (event) => events.push(event),
    });
    const hold = target.hold('clone');
    const first = await r.start(job, { kind: 'cli' });
    await hold.entered;
    const second = await r.start({ ...job, name: 'other' }, { kind: 'cli' });
    expect(second.run.status).toBe('queued');
    expect(events.filter((e) => e.run.job === 'other').map((e) => e.type)).toEqual(['run-queued']);
    clock.advance(100);
    hold.release();
    await first.done;
    const run = await second.done;
    expect(run.status).toBe('succeeded');
    // It waited while the first run finished its clone and start (10 s each, after the 100 s hold).
    expect(run.queuedMs).toBe(120_000);
    expect(Date.parse(run.startedAt ?? '') - Date.parse(run.createdAt)).toBe(120_000);
    expect(run.durationMs).toBe(31_000);
    expect(Date.parse(run.finishedAt ?? '') - Date.parse(run.createdAt)).toBe(151_000);
    expect(events.filter((e) => e.run.job === 'other' && e.type.startsWith('run-')).map((e) => e.type)).toEqual([
      'run-queued',
      'run-started',
      'run-finished',
    ]);
    expect((await first.done).queuedMs).toBe(0);
  });

  it('refuses a manual run of a suspended job, and a second run while one holds the job', async () => {
    await expect(runner().run({ ...job, suspend: true, allowManualWhenSuspended: false }, { kind: 'cli' })).rejects.toMatchObject({
      code: 'JOB_SUSPENDED',
    });
    const gate = target.hold('clone');
    const r = runner();
    const started = await r.start(job, { kind: 'cli' });
    await gate.entered;
    await expect(r.start(job, { kind: 'cli' })).rejects.toMatchObject({ code: 'JOB_BUSY' });
    gate.release();
    expect((await started.done).status).toBe('succeeded');
  });
});
