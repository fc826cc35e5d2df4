import { describe, expect, it } from 'vitest';
import { FAILURE_HINTS } from '../../src/failures.js';
import {
  PHASES as ALL_PHASES,
  currentPhase,
  failRun,
  interruptRun,
  newRun,
  newRunId,
  RECREATE_PHASES as PHASES,
  type PhaseName,
  type RunError,
  type RunRecord,
  skipPhase,
  startPhase,
  succeedPhase,
  succeedRun,
  type TargetDescription,
  TransitionError,
} from '../../src/run/record.js';
import { TARGET_DOWN } from '../../src/run/target-down.js';

const T0 = new Date('2024-03-01T10:00:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);

const target: TargetDescription = {
  kind: 'local',
  summary: 'local data directory /srv/qa, served on 127.0.0.1:5433',
  details: { dataDir: '/srv/qa' },
  steps: { teardown: 'remove', clone: 'copy', start: 'start' },
};

function fresh(): RunRecord {
  return newRun({
    id: '20240301T100000000Z-abcdef',
    job: 'qa',
    trigger: { kind: 'cli', by: 'alice' },
    dryRun: false,
    now: T0,
    source: { host: 'db.example.com', port: 5432, user: 'replicator' },
    target,
  });
}

function phase(run: RunRecord, name: PhaseName) {
  const found = run.phases.find((p) => p.name === name);
  if (!found) throw new Error(`no phase ${name}`);
  return found;
}

/** Runs the named phases to success, one second each, starting at T0 + 1 s. */
function through(run: RunRecord, names: readonly PhaseName[]): RunRecord {
  let next = run;
  let t = 1000;
  for (const name of names) {
    next = startPhase(next, name, at(t));
    t += 1000;
    next = succeedPhase(next, name, at(t));
  }
  return next;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

const cloneError: RunError = {
  phase: 'clone',
  class: 'disk-full',
  message: 'pg_basebackup failed: No space left on device',
  hint: FAILURE_HINTS['disk-full'],
  details: ['pg_basebackup: error: could not write to file: No space left on device'],
};

describe('newRun', () => {
  it('has the phases of a recreate refresh in order, all pending, and a running status', () => {
    const run = fresh();
    expect(PHASES).toEqual(['preflight', 'snapshot', 'teardown', 'clone', 'start', 'neutralise', 'prepare', 'mask', 'open', 'verify']);
    expect(ALL_PHASES).toEqual([
      'preflight',
      'snapshot',
      'teardown',
      'clone',
      'clone-beside',
      'start',
      'neutralise',
      'prepare',
      'mask',
      'open',
      'verify',
      'swap',
      'cleanup-previous',
      'rollback',
    ]);
    expect(run.phases.map((p) => p.name)).toEqual([...PHASES]);
    expect(run.phases.every((p) => p.status === 'pending')).toBe(true);
    expect(run.status).toBe('running');
    expect(run.schemaVersion).toBe(1);
    expect(run.createdAt).toBe('2024-03-01T10:00:00.000Z');
    expect(run.finishedAt).toBeUndefined();
    expect(run.error).toBeUndefined();
  });
});

describe('phase transitions', () => {
  it('start then succeed records the given times and the duration between them', () => {
    let run = startPhase(fresh(), 'preflight', at(250));
    expect(phase(run, 'preflight')).toMatchObject({ status: 'running', startedAt: '2024-03-01T10:00:00.250Z' });
    expect(phase(run, 'preflight').finishedAt).toBeUndefined();

    run = succeedPhase(run, 'preflight', at(1750), { checks: 7 });
    expect(phase(run, 'preflight')).toEqual({
      name: 'preflight',
      status: 'succeeded',
      startedAt: '2024-03-01T10:00:00.250Z',
      finishedAt: '2024-03-01T10:00:01.750Z',
      durationMs: 1500,
      detail: { checks: 7 },
    });
    // Other phases are untouched.
    expect(run.phases.filter((p) => p.name !== 'preflight').every((p) => p.status === 'pending')).toBe(true);
  });

  it('does not record an empty detail', () => {
    const run = succeedPhase(startPhase(fresh(), 'preflight', at(0)), 'preflight', at(10), {});
    expect(phase(run, 'preflight')).not.toHaveProperty('detail');
  });

  it('refuses to start a phase twice', () => {
    const run = startPhase(fresh(), 'preflight', at(0));
    expect(() => startPhase(run, 'preflight', at(1))).toThrow(TransitionError);
    const done = succeedPhase(run, 'preflight', at(5));
    expect(() => startPhase(done, 'preflight', at(6))).toThrow(TransitionError);
  });

  it('refuses to succeed a phase that never started', () => {
    expect(() => succeedPhase(fresh(), 'snapshot', at(1))).toThrow(TransitionError);
  });

  it('refuses to succeed a phase twice', () => {
    const run = through(fresh(), ['preflight']);
    expect(() => succeedPhase(run, 'preflight', at(10_000))).toThrow(TransitionError);
  });

  it('skipPhase marks a pending phase skipped with its reason', () => {
    const run = skipPhase(fresh(), 'teardown', 'dry run: nothing is changed');
    expect(phase(run, 'teardown')).toEqual({ name: 'teardown', status: 'skipped', reason: 'dry run: nothing is changed' });
  });

  it('skipPhase refuses a phase that is running or done', () => {
    const running = startPhase(fresh(), 'preflight', at(0));
    expect(() => skipPhase(running, 'preflight', 'x')).toThrow(TransitionError);
    const done = succeedPhase(running, 'preflight', at(1));
    expect(() => skipPhase(done, 'preflight', 'x')).toThrow(TransitionError);
  });

  it('currentPhase is the running phase, else the last one that ran', () => {
    expect(currentPhase(fresh())).toBeUndefined();
    const run = through(fresh(), ['preflight', 'snapshot']);
    expect(currentPhase(run)?.name).toBe('snapshot');
    expect(currentPhase(startPhase(run, 'teardown', at(10_000)))?.name).toBe('teardown');
    expect(currentPhase(skipPhase(run, 'teardown', 'dry run'))?.name).toBe('snapshot');
  });
});

describe('finishing a run', () => {
  it('succeedRun refuses while phases are pending, naming them', () => {
    const run = through(fresh(), ['preflight', 'snapshot', 'teardown', 'clone']);
    expect(() => succeedRun(run, at(60_000))).toThrow(TransitionError);
    expect(() => succeedRun(run, at(60_000))).toThrow(/start, neutralise, prepare, mask, open, verify/);
  });

  it('succeedRun refuses while a phase is running', () => {
    const run = startPhase(
      through(fresh(), ['preflight', 'snapshot', 'teardown', 'clone', 'start', 'neutralise', 'prepare', 'mask', 'open']),
      'verify',
      at(20_000),
    );
    expect(() => succeedRun(run, at(60_000))).toThrow(/verify/);
  });

  it('succeedRun sets status, finish time and duration from createdAt', () => {
    const run = succeedRun(through(fresh(), PHASES), at(90_000));
    expect(run.status).toBe('succeeded');
    expect(run.finishedAt).toBe('2024-03-01T10:01:30.000Z');
    expect(run.durationMs).toBe(90_000);
  });

  it('a dry run with its destructive phases skipped can succeed', () => {
    let run = through(fresh(), ['preflight', 'snapshot']);
    for (const name of ['teardown', 'clone', 'start', 'neutralise', 'prepare', 'mask', 'open', 'verify'] as const)
      run = skipPhase(run, name, 'dry run');
    expect(succeedRun(run, at(5000)).status).toBe('succeeded');
  });

  it('refuses every transition on a finished run', () => {
    const done = succeedRun(through(fresh(), PHASES), at(90_000));
    expect(() => succeedRun(done, at(91_000))).toThrow(TransitionError);
    expect(() => failRun(done, { ...cloneError, phase: 'verify' }, at(91_000))).toThrow(TransitionError);
    expect(() => interruptRun(done, at(91_000), 'restart')).toThrow(TransitionError);

    const failed = failRun(startPhase(fresh(), 'preflight', at(0)), { ...cloneError, phase: 'preflight' }, at(1000));
    expect(() => startPhase(failed, 'snapshot', at(2000))).toThrow(TransitionError);
    expect(() => skipPhase(failed, 'snapshot', 'x')).toThrow(TransitionError);
    expect(() => succeedRun(failed, at(2000))).toThrow(TransitionError);
    expect(() => failRun(failed, { ...cloneError, phase: 'preflight' }, at(2000))).toThrow(TransitionError);
  });

  it('failRun fails the running phase, skips the later ones with a reason, and records the error', () => {
    let run = through(fresh(), ['preflight', 'snapshot', 'teardown']); // ends at T0 + 6 s
    run = startPhase(run, 'clone', at(7000));
    run = failRun(run, cloneError, at(12_000), { copiedBytes: 42 });

    expect(run.status).toBe('failed');
    // Teardown ran and no copy started: the error says the target has no copy.
    expect(run.error).toEqual({ ...cloneError, targetDown: TARGET_DOWN });
    expect(run.finishedAt).toBe('2024-03-01T10:00:12.000Z');
    expect(run.durationMs).toBe(12_000);

    expect(phase(run, 'clone')).toMatchObject({
      status: 'failed',
      startedAt: '2024-03-01T10:00:07.000Z',
      finishedAt: '2024-03-01T10:00:12.000Z',
      durationMs: 5000,
      detail: { copiedBytes: 42 },
    });
    for (const name of ['start', 'verify'] as const) {
      expect(phase(run, name)).toEqual({ name, status: 'skipped', reason: 'clone failed' });
    }
    for (const name of ['preflight', 'snapshot', 'teardown'] as const) {
      expect(phase(run, name).status).toBe('succeeded');
    }
  });

  it('interruptRun fails the running phase and marks the run interrupted', () => {
    let run = through(fresh(), ['preflight', 'snapshot']);
    run = startPhase(run, 'teardown', at(5000));
    run = interruptRun(run, at(8000), 'db-refresher restarted while the run was under way');

    expect(run.status).toBe('interrupted');
    expect(run.finishedAt).toBe('2024-03-01T10:00:08.000Z');
    expect(run.durationMs).toBe(8000);
    expect(run.error).toEqual({
      phase: 'teardown',
      class: 'interrupted',
      message: 'db-refresher restarted while the run was under way',
      hint: FAILURE_HINTS.interrupted,
      targetDown: TARGET_DOWN,
    });
    expect(phase(run, 'teardown')).toMatchObject({
      status: 'failed',
      finishedAt: '2024-03-01T10:00:08.000Z',
      reason: 'db-refresher restarted while the run was under way',
    });
    for (const name of ['clone', 'start', 'verify'] as const) expect(phase(run, name).status).toBe('skipped');
    expect(phase(run, 'snapshot').status).toBe('succeeded');
  });

  it('interruptRun between phases blames the next pending phase', () => {
    const run = interruptRun(through(fresh(), ['preflight']), at(3000), 'stopped');
    expect(run.status).toBe('interrupted');
    expect(run.error?.phase).toBe('snapshot');
    expect(run.phases.some((p) => p.status === 'failed')).toBe(false);
  });
});

describe('records are values', () => {
  it('no transition changes the record it was given', () => {
    const steps: Array<(run: RunRecord) => RunRecord> = [
      (r) => startPhase(r, 'preflight', at(0)),
      (r) => succeedPhase(r, 'preflight', at(100), { checks: 3 }),
      (r) => skipPhase(r, 'snapshot', 'not needed'),
      (r) => startPhase(r, 'teardown', at(200)),
    ];
    let run = fresh();
    for (const step of steps) {
      const before = structuredClone(run);
      // Frozen input: an in-place change would throw in strict mode, and the comparison catches the rest.
      const next = step(deepFreeze(run));
      expect(run).toEqual(before);
      expect(next).not.toBe(run);
      run = next;
    }
    for (const finish of [
      (r: RunRecord) => failRun(r, { ...cloneError, phase: 'teardown' }, at(300)),
      (r: RunRecord) => interruptRun(r, at(300), 'restart'),
    ]) {
      const before = structuredClone(run);
      finish(deepFreeze(run));
      expect(run).toEqual(before);
    }
  });
});

describe('newRunId', () => {
  it('matches the documented shape', () => {
    expect(newRunId(T0)).toMatch(/^[0-9TZ]+-[0-9a-f]{6}$/);
    expect(newRunId(T0).startsWith('20240301T100000000Z-')).toBe(true);
  });

  it('ids made from increasing times sort in the same order', () => {
    const dates = [
      '1999-12-31T23:59:59.999Z',
      '2000-01-01T00:00:00.000Z',
      '2024-03-01T09:59:59.999Z',
      '2024-03-01T10:00:00.000Z',
      '2024-03-01T10:00:00.001Z',
      '2024-03-01T10:00:00.010Z',
      '2024-03-01T10:00:01.000Z',
      '2024-03-01T10:01:00.000Z',
      '2024-03-01T11:00:00.000Z',
      '2024-03-02T00:00:00.000Z',
      '2024-10-01T00:00:00.000Z',
      '2025-01-01T00:00:00.000Z',
    ].map((d) => new Date(d));
    const ids = dates.map((d) => newRunId(d));
    expect([...ids].reverse().sort()).toEqual(ids);
  });

  it('two ids from the same instant differ', () => {
    expect(newRunId(T0)).not.toBe(newRunId(T0));
  });
});

describe('a run that ends after teardown says the target has no copy', () => {
  it('not when it fails before teardown', () => {
    let run = through(fresh(), ['preflight']);
    run = startPhase(run, 'snapshot', at(3000));
    run = failRun(run, { ...cloneError, phase: 'snapshot' }, at(4000));
    expect(run.error?.targetDown).toBeUndefined();
  });

  it('not when the new copy started and verification failed', () => {
    let run = through(fresh(), ['preflight', 'snapshot', 'teardown', 'clone', 'start']);
    run = startPhase(run, 'verify', at(20_000));
    run = failRun(run, { ...cloneError, phase: 'verify', class: 'verification-failed' }, at(21_000));
    expect(run.error?.targetDown).toBeUndefined();
  });
});
