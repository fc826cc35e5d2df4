import { describe, expect, it } from 'vitest';
import {
  cleanupSteps,
  type LocalSwapView,
  nextSwapStep,
  portSetting,
  previousExpiry,
  type Slot,
  type SlotView,
  type SwapJournal,
  type SwapStep,
} from '../../src/targets/local/swap-plan.js';

/**
 * A model of the three slots that applies steps the way the effects do. Driving the planner step by
 * step, and "crashing" (dropping all in-memory state) after any number of steps, must always end in
 * the same place: the incoming copy current and running, the outgoing one in previous, marked retired.
 */
interface Disk {
  slots: Record<Slot, SlotView>;
  journal?: SwapJournal;
  retiredBy?: string;
  port: number;
}

const ours = (runId: string, configuredPort: number, runningPort?: number): SlotView => ({
  kind: 'ours',
  runId,
  configuredPort,
  runningPort,
});

function view(disk: Disk): LocalSwapView {
  return { ...disk.slots, journal: disk.journal, port: disk.port };
}

function apply(disk: Disk, step: SwapStep): Disk {
  const slots = { ...disk.slots };
  switch (step.step) {
    case 'stop': {
      const v = slots[step.slot];
      if (v.kind === 'ours') slots[step.slot] = { ...v, runningPort: undefined };
      break;
    }
    case 'retarget': {
      const v = slots[step.slot];
      if (v.kind === 'ours') slots[step.slot] = { ...v, configuredPort: step.port };
      break;
    }
    case 'move':
      expect(slots[step.to].kind, `move ${step.from} → ${step.to} onto a filled slot`).toBe('missing');
      slots[step.to] = slots[step.from];
      slots[step.from] = { kind: 'missing' };
      return { ...disk, slots, retiredBy: step.to === 'previous' ? undefined : disk.retiredBy };
    case 'remove':
      slots[step.slot] = { kind: 'missing' };
      break;
    case 'start': {
      const v = slots.current;
      if (v.kind === 'ours') slots.current = { ...v, runningPort: v.configuredPort };
      break;
    }
    case 'mark-retired':
      return { ...disk, retiredBy: disk.journal?.runId };
    case 'finish': {
      const { journal: _, ...rest } = disk;
      return rest;
    }
    case 'refuse':
      throw new Error(step.message);
  }
  return { ...disk, slots };
}

function drive(start: Disk, maxSteps = 20): { disk: Disk; steps: SwapStep[] } {
  let disk = start;
  const steps: SwapStep[] = [];
  for (let i = 0; i < maxSteps && disk.journal; i++) {
    const step = nextSwapStep(view(disk), disk.retiredBy === disk.journal.runId);
    steps.push(step);
    disk = apply(disk, step);
  }
  return { disk, steps };
}

const PORT = 5433;
const swapJournal: SwapJournal = {
  kind: 'swap',
  job: 'qa',
  runId: 'R2',
  incoming: 'R2',
  outgoing: 'R1',
  startedAt: '2026-12-02T10:00:00Z',
};

const beforeSwap: Disk = {
  slots: { current: ours('R1', PORT, PORT), next: ours('R2', 40001, 40001), previous: { kind: 'missing' } },
  journal: swapJournal,
  port: PORT,
};

describe('local blue/green swap plan', () => {
  it('stops the new copy, points it at the job port, stops the old one after draining, moves both, starts, marks', () => {
    const { disk, steps } = drive(beforeSwap);
    expect(steps.map((s) => s.step)).toEqual(['stop', 'retarget', 'stop', 'move', 'move', 'start', 'mark-retired', 'finish']);
    expect(steps[2]).toEqual({ step: 'stop', slot: 'current', drain: true });
    expect(disk.slots.current).toEqual(ours('R2', PORT, PORT));
    expect(disk.slots.previous).toEqual(ours('R1', PORT));
    expect(disk.slots.next).toEqual({ kind: 'missing' });
    expect(disk.journal).toBeUndefined();
  });

  it('the downtime is one stop and one start: between them only renames', () => {
    const { steps } = drive(beforeSwap);
    const stop = steps.findIndex((s) => s.step === 'stop' && s.slot === 'current');
    const start = steps.findIndex((s) => s.step === 'start');
    expect(steps.slice(stop + 1, start).every((s) => s.step === 'move')).toBe(true);
  });

  it('an older previous copy is removed while the current one still serves', () => {
    const { steps } = drive({ ...beforeSwap, slots: { ...beforeSwap.slots, previous: ours('R0', PORT) } });
    const remove = steps.findIndex((s) => s.step === 'remove');
    const stop = steps.findIndex((s) => s.step === 'stop' && s.slot === 'current');
    expect(remove).toBeGreaterThanOrEqual(0);
    expect(remove).toBeLessThan(stop);
  });

  it('a crash after any step (in-memory state lost, processes gone) is finished by the next run', () => {
    const full = drive(beforeSwap).steps.length;
    for (let crashAfter = 0; crashAfter < full; crashAfter++) {
      let disk = beforeSwap;
      for (let i = 0; i < crashAfter; i++) disk = apply(disk, nextSwapStep(view(disk), disk.retiredBy === disk.journal?.runId));
      // A kill -9 also ends the servers: PostgreSQL goes down with the machine or is stopped by its pid file's owner going away.
      const crashed: Disk = { ...disk, slots: stopAll(disk.slots) };
      for (const state of [disk, crashed]) {
        const { disk: end } = drive(state);
        expect(end.journal, `crash after ${crashAfter} steps`).toBeUndefined();
        expect(end.slots.current, `crash after ${crashAfter} steps`).toEqual(ours('R2', PORT, PORT));
        expect(end.slots.previous).toEqual(ours('R1', PORT));
      }
    }
  });

  it('refuses to move anything when a slot holds a directory it did not make', () => {
    const step = nextSwapStep(
      view({ ...beforeSwap, slots: { ...beforeSwap.slots, previous: { kind: 'foreign', reason: 'no marker' } } }),
      false,
    );
    expect(step).toMatchObject({ step: 'refuse' });
    expect((step as { message: string }).message).toContain('nothing was moved');
  });

  it('keeps the outgoing copy when the new one has vanished before the renames', () => {
    expect(nextSwapStep(view({ ...beforeSwap, slots: { ...beforeSwap.slots, next: { kind: 'missing' } } }), false)).toMatchObject({
      step: 'refuse',
      message: expect.stringContaining('the current copy (run R1) keeps serving'),
    });
    // … and puts it back if it had already moved to previous.
    const step = nextSwapStep(
      view({ ...beforeSwap, slots: { current: { kind: 'missing' }, next: { kind: 'missing' }, previous: ours('R1', PORT) } }),
      false,
    );
    expect(step).toEqual({ step: 'move', from: 'previous', to: 'current' });
  });

  it('a rollback exchanges current and previous through next, and survives a crash after any step', () => {
    const after = drive(beforeSwap).disk;
    const journal: SwapJournal = { kind: 'rollback', job: 'qa', runId: 'R3', incoming: 'R1', outgoing: 'R2', startedAt: '' };
    const rollback: Disk = { ...after, journal };
    const { disk, steps } = drive(rollback);
    expect(steps.map((s) => s.step)).toEqual(['stop', 'move', 'move', 'move', 'start', 'mark-retired', 'finish']);
    expect(disk.slots.current).toEqual(ours('R1', PORT, PORT));
    expect(disk.slots.previous).toEqual(ours('R2', PORT));
    for (let crashAfter = 0; crashAfter < steps.length; crashAfter++) {
      let d = rollback;
      for (let i = 0; i < crashAfter; i++) d = apply(d, nextSwapStep(view(d), d.retiredBy === d.journal?.runId));
      const end = drive({ ...d, slots: stopAll(d.slots) }).disk;
      expect(end.slots.current, `crash after ${crashAfter}`).toEqual(ours('R1', PORT, PORT));
      expect(end.slots.previous).toEqual(ours('R2', PORT));
    }
    // A second rollback rolls forward again.
    const again = drive({ ...disk, journal: { ...journal, runId: 'R4', incoming: 'R2', outgoing: 'R1' } }).disk;
    expect(again.slots.current).toEqual(ours('R2', PORT, PORT));
  });

  it('outside a swap: a half-made next copy goes; previous goes when keepPrevious has passed, or to make room', () => {
    const now = new Date('2026-12-02T12:00:00Z');
    const base = { next: ours('R9', 40001, 40001), previous: ours('R1', PORT), keepPreviousSeconds: 3600, now, makeRoom: false };
    expect(cleanupSteps({ ...base, retiredAt: '2026-12-02T11:30:00Z' }).map((s) => `${s.step} ${'slot' in s ? s.slot : ''}`)).toEqual([
      'stop next',
      'remove next',
    ]);
    expect(cleanupSteps({ ...base, retiredAt: '2026-12-02T10:59:59Z' }).map((s) => `${s.step} ${'slot' in s ? s.slot : ''}`)).toEqual([
      'stop next',
      'remove next',
      'remove previous',
    ]);
    // Unknown retirement time: never removed early by the clock…
    expect(cleanupSteps({ ...base, next: { kind: 'missing' } })).toEqual([]);
    // … but a new clone takes its place.
    expect(cleanupSteps({ ...base, next: { kind: 'missing' }, makeRoom: true })).toMatchObject([{ step: 'remove', slot: 'previous' }]);
    // Never anything that is not ours.
    expect(
      cleanupSteps({ ...base, next: { kind: 'foreign', reason: 'x' }, previous: { kind: 'foreign', reason: 'y' }, makeRoom: true }),
    ).toEqual([]);
    expect(previousExpiry('2026-12-02T11:00:00Z', 0)?.toISOString()).toBe('2026-12-02T11:00:00.000Z');
  });

  it('reads the port a postgresql.auto.conf sets, the last line winning', () => {
    expect(portSetting("port = 5432\nlisten_addresses = '127.0.0.1'\n# port = 1\nport = '40001'\n")).toBe(40001);
    expect(portSetting('wal_level = replica\n')).toBeUndefined();
  });
});

function stopAll(slots: Record<Slot, SlotView>): Record<Slot, SlotView> {
  const out = { ...slots };
  for (const slot of ['current', 'next', 'previous'] as const) {
    const v = out[slot];
    if (v.kind === 'ours') out[slot] = { ...v, runningPort: undefined };
  }
  return out;
}
