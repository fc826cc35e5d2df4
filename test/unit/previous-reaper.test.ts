import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import type { JobConfig } from '../../src/config/types.js';
import type { Target } from '../../src/ports.js';
import type { PhaseDetail, RunRecord } from '../../src/run/record.js';
import { JobLocks } from '../../src/runner/lock.js';
import { PreviousReaper } from '../../src/service/previous-reaper.js';

/** The service's clean-up of blue/green copies: when it sweeps, and that a run never finds it in the way. */

const job = { name: 'qa', strategy: { kind: 'blueGreen', keepPreviousSeconds: 1 } } as unknown as JobConfig;
const dirs: string[] = [];
const reapers: PreviousReaper[] = [];

afterEach(async () => {
  for (const r of reapers.splice(0)) await r.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function reaperWith(reap: () => Promise<PhaseDetail>): { reaper: PreviousReaper; locks: JobLocks; calls: number[] } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'reaper-'));
  dirs.push(dir);
  const locks = new JobLocks(dir);
  const calls: number[] = [];
  const target = {
    reap: async () => {
      calls.push(Date.now());
      return reap();
    },
  } as unknown as Target;
  const reaper = new PreviousReaper({ jobs: [job], locks, targetFor: () => target, clock: systemClock, log: pino({ level: 'silent' }) });
  reapers.push(reaper);
  return { reaper, locks, calls };
}

const until = async (check: () => boolean, ms: number) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('PreviousReaper', () => {
  it('sweeps again when the earliest kept copy expires, not a sweep interval (a minute) later', async () => {
    let first = true;
    const { reaper, calls } = reaperWith(async () => {
      if (!first) return { removed: ['the previous copy'] };
      first = false;
      return { removed: [], keptUntil: new Date(Date.now() + 300).toISOString() };
    });
    reaper.start();
    await until(() => calls.length >= 2, 3000);
    expect((calls[1] ?? 0) - (calls[0] ?? 0)).toBeGreaterThanOrEqual(300);
    expect((calls[1] ?? 0) - (calls[0] ?? 0)).toBeLessThan(2000);
  });

  it('sweeps after a blue/green run of its jobs finishes, once the run has let go of the lock', async () => {
    const { reaper, calls } = reaperWith(async () => ({ removed: [] }));
    reaper.start();
    await until(() => calls.length === 1, 3000);
    reaper.onRunEvent({ type: 'run-finished', run: { job: 'other' } as RunRecord });
    reaper.onRunEvent({ type: 'run-finished', run: { job: 'qa' } as RunRecord });
    await until(() => calls.length === 2, 3000);
    await new Promise((r) => setTimeout(r, 400));
    expect(calls).toHaveLength(2);
  });

  it('a run that wants the job while a sweep holds its lock waits for the sweep instead of being refused', async () => {
    let finish = () => {};
    const { reaper, locks, calls } = reaperWith(() => new Promise((resolve) => (finish = () => resolve({ removed: [] }))));
    reaper.start();
    await until(() => calls.length === 1, 3000);
    expect(() => locks.acquire('qa', 'R1', new Date())).toThrow(/already running/);
    setTimeout(() => finish(), 200);
    const started = Date.now();
    await reaper.waitForJob('qa', 5000);
    expect(Date.now() - started).toBeLessThan(4000);
    locks.acquire('qa', 'R1', new Date()).release();
    // Another job, or no sweep: no wait at all.
    const idle = Date.now();
    await reaper.waitForJob('qa', 5000);
    await reaper.waitForJob('other', 5000);
    expect(Date.now() - idle).toBeLessThan(100);
  });
});
