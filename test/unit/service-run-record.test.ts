import { describe, expect, it } from 'vitest';
import {
  beginRun,
  failRun,
  newRun,
  newSkippedRun,
  nextPhase,
  type PhaseName,
  pauseRun,
  type RunRecord,
  resumePoint,
  resumeRun,
  startPhase,
  succeedPhase,
  TransitionError,
} from '../../src/run/record.js';
import { resumePolicy } from '../../src/runner/phases/index.js';

/** The run-record transitions the service adds: queued, skipped, paused at a boundary, resumed. */

const T0 = new Date('2030-01-01T03:00:00.000Z');
const at = (s: number) => new Date(T0.getTime() + s * 1000);
const target = { kind: 'local', summary: 'copy', details: {}, steps: { teardown: '', clone: '', start: '' } };
const local = resumePolicy('local');

function run(queued = false): RunRecord {
  return newRun({
    id: '20300101T030000000Z-abcdef',
    job: 'qa',
    trigger: { kind: 'http', by: 'alice' },
    dryRun: false,
    now: T0,
    source: { host: 'h', port: 5432, user: 'u' },
    target,
    queued,
  });
}

function through(r: RunRecord, phases: readonly PhaseName[]): RunRecord {
  let next = r;
  phases.forEach((p, i) => {
    next = succeedPhase(startPhase(next, p, at(i)), p, at(i + 1));
  });
  return next;
}

describe('queued and skipped runs', () => {
  it('a queued run begins when it gets a slot', () => {
    const queued = run(true);
    expect(queued.status).toBe('queued');
    expect(queued.startedAt).toBeUndefined();
    const begun = beginRun(queued, at(30));
    expect(begun).toMatchObject({ status: 'running', startedAt: at(30).toISOString() });
    expect(() => beginRun(begun, at(31))).toThrow(TransitionError);
    expect(run().startedAt).toBe(T0.toISOString());
  });

  it('a skipped run is terminal at once, with every phase skipped for the reason', () => {
    const skipped = newSkippedRun({
      id: '20300101T030000000Z-000001',
      job: 'qa',
      trigger: { kind: 'schedule', scheduledFor: T0.toISOString() },
      now: T0,
      reason: 'overlap',
      detail: 'run X was still running',
      source: { host: 'h', port: 5432, user: 'u' },
      target,
    });
    expect(skipped).toMatchObject({ status: 'skipped', durationMs: 0, skip: { reason: 'overlap', detail: 'run X was still running' } });
    expect(new Set(skipped.phases.map((p) => `${p.status}: ${p.reason}`))).toEqual(new Set(['skipped: overlap: run X was still running']));
    expect(() => startPhase(skipped, 'preflight', T0)).toThrow(TransitionError);
  });
});

describe('pause and resume', () => {
  it('pauses only between phases, naming the next one', () => {
    const mid = startPhase(through(run(), ['preflight', 'snapshot', 'teardown']), 'clone', at(10));
    expect(() => pauseRun(mid, at(11), 'shutdown')).toThrow(/only pause between phases/);
    const paused = pauseRun(through(run(), ['preflight', 'snapshot', 'teardown', 'clone']), at(20), 'shutdown');
    expect(paused.paused).toEqual({ at: at(20).toISOString(), reason: 'shutdown', nextPhase: 'start' });
    expect(paused.status).toBe('running');
  });

  it('resumes the local target from start, neutralise, open or verify, also after a crash in them', () => {
    const beforeStart = pauseRun(through(run(), ['preflight', 'snapshot', 'teardown', 'clone']), at(20), 'shutdown');
    expect(resumePoint(beforeStart, local)).toEqual({ ok: true, phase: 'start' });
    const crashedInVerify = startPhase(
      through(run(), ['preflight', 'snapshot', 'teardown', 'clone', 'start', 'neutralise', 'prepare', 'mask', 'open']),
      'verify',
      at(30),
    );
    expect(resumePoint(crashedInVerify, local)).toEqual({ ok: true, phase: 'verify' });

    const resumed = resumeRun(crashedInVerify, at(100), 'verify');
    expect(resumed.phases.find((p) => p.name === 'verify')).toMatchObject({ status: 'pending' });
    expect(resumed.resumed).toEqual([{ at: at(100).toISOString(), fromPhase: 'verify' }]);
    expect(nextPhase(resumed)).toBe('verify');
    // It then runs like any other phase.
    expect(succeedPhase(startPhase(resumed, 'verify', at(101)), 'verify', at(102)).phases.at(-1)?.status).toBe('succeeded');
    const unpaused = resumeRun(beforeStart, at(100), 'start');
    expect(unpaused.paused).toBeUndefined();
    expect(() => resumeRun(beforeStart, at(100), 'verify')).toThrow(TransitionError);
  });

  it('refuses to resume a clone or teardown, and says whether the target was touched', () => {
    const inClone = startPhase(through(run(), ['preflight', 'snapshot', 'teardown']), 'clone', at(10));
    const point = resumePoint(inClone, local);
    expect(point.ok).toBe(false);
    if (!point.ok)
      expect(point.reason).toBe(
        'the service stopped while clone was running, which cannot be resumed safely: the target may be incomplete; run the job again',
      );
    const beforeTeardown = pauseRun(through(run(), ['preflight', 'snapshot']), at(5), 'shutdown');
    const untouched = resumePoint(beforeTeardown, local);
    if (!untouched.ok) expect(untouched.reason).toContain('nothing was changed on the target');
    const queued = resumePoint(run(true), local);
    if (!queued.ok) expect(queued.reason).toContain('before the run started');
    expect(resumePoint(failRun(inClone, { phase: 'clone', class: 'unknown', message: 'x', hint: 'y' }, at(11)), local)).toEqual({
      ok: false,
      reason: 'run is already failed',
    });
    // A target kind without resumable phases never resumes.
    expect(
      resumePoint(pauseRun(through(run(), ['preflight', 'snapshot', 'teardown', 'clone']), at(20), 's'), { ...local, resumable: new Set() })
        .ok,
    ).toBe(false);
  });
});
