import { describe, expect, it } from 'vitest';
import { PHASES } from '../../src/run/record.js';
import { PHASE_TABLE, resumePolicy } from '../../src/runner/phases/index.js';

describe('phase table', () => {
  it('lists the record’s phases, in the record’s order', () => {
    expect(PHASE_TABLE.map((p) => p.name)).toEqual([...PHASES]);
  });

  it('says per target kind where a restarted service may resume, and which phases change the target', () => {
    for (const kind of ['local', 'cnpg'] as const) {
      const policy = resumePolicy(kind);
      expect([...policy.resumable]).toEqual(['start', 'verify']);
      expect([...policy.changesTarget]).toEqual(['teardown', 'clone', 'start']);
    }
  });

  it('runs only the read-only phases before verification in a dry run', () => {
    expect(PHASE_TABLE.filter((p) => p.runsInDryRun).map((p) => p.name)).toEqual(['preflight', 'snapshot']);
  });
});
