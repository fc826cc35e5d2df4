import { describe, expect, it } from 'vitest';
import { roomNeeded } from '../../src/targets/local/room.js';

const MiB = 1024 * 1024;

describe('room a local copy needs', () => {
  it('counts the WAL a fresh copy holds, not only the databases (a 32 MiB source made a 62 MiB copy)', () => {
    const needed = roomNeeded({ totalSizeBytes: 32 * MiB, walSegmentBytes: 16 * MiB });
    expect(needed.bytes).toBeGreaterThanOrEqual(62 * MiB);
    expect(needed.wal).toBe(48 * MiB);
  });

  it('scales with the segment size the source uses', () => {
    expect(roomNeeded({ totalSizeBytes: 0, walSegmentBytes: 64 * MiB }).wal).toBe(192 * MiB);
    expect(roomNeeded({ totalSizeBytes: 0 }).wal).toBe(48 * MiB);
  });

  it('stays close to the source size for a large source', () => {
    const total = 100 * 1024 * MiB;
    const needed = roomNeeded({ totalSizeBytes: total, walSegmentBytes: 16 * MiB }).bytes;
    expect(needed / total).toBeLessThan(1.11);
  });
});
