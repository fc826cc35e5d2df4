import { describe, expect, it } from 'vitest';
import type { JobConfig } from '../../src/config/types.js';
import { PHASES, RECREATE_PHASES } from '../../src/run/record.js';
import { PHASE_TABLE, phasesFor, resumePolicy } from '../../src/runner/phases/index.js';

describe('phase table', () => {
  it('lists the record’s phases, in the record’s order', () => {
    expect(PHASE_TABLE.map((p) => p.name)).toEqual([...PHASES]);
  });

  it('says per target kind where a restarted service may resume, and which phases change the target', () => {
    for (const kind of ['local', 'cnpg'] as const) {
      const policy = resumePolicy(kind);
      // Neutralising again finds nothing left to do and opening is idempotent; the user's prepare steps may not be.
      // A run paused before mask may go on there (mask itself refuses a masking that was cut off).
      expect([...policy.resumable]).toEqual(['start', 'neutralise', 'mask', 'open', 'verify', 'swap', 'cleanup-previous', 'rollback']);
      expect([...policy.changesTarget]).toEqual([
        'teardown',
        'clone',
        'start',
        'neutralise',
        'prepare',
        'mask',
        'open',
        'swap',
        'cleanup-previous',
        'rollback',
      ]);
    }
  });

  it('runs only the read-only phases before verification in a dry run', () => {
    expect(PHASE_TABLE.filter((p) => p.runsInDryRun).map((p) => p.name)).toEqual(['preflight', 'snapshot']);
  });

  it('a recreate refresh goes through teardown and clone; blueGreen clones beside, swaps and cleans up; a rollback only rolls back', () => {
    const job = { strategy: { kind: 'recreate' } } as JobConfig;
    const blueGreen = { strategy: { kind: 'blueGreen', keepPreviousSeconds: 0, keepPrevious: 0, drainSeconds: 0 } } as JobConfig;
    const privateWindow = ['neutralise', 'prepare', 'mask', 'open'];
    expect(phasesFor(job)).toEqual(['preflight', 'snapshot', 'teardown', 'clone', 'start', ...privateWindow, 'verify']);
    expect(phasesFor(job)).toEqual([...RECREATE_PHASES]);
    expect(phasesFor(blueGreen)).toEqual([
      'preflight',
      'snapshot',
      'clone-beside',
      'start',
      ...privateWindow,
      'verify',
      'swap',
      'cleanup-previous',
    ]);
    expect(phasesFor(blueGreen, 'rollback')).toEqual(['rollback']);
  });
});
