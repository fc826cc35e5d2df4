import { formatBytes } from '../../config/byte-size.js';

/**
 * How much disk a fresh copy takes, from what preflight learned about the
 * source. A copy is every database (pg_database_size), plus the WAL streamed
 * while pg_basebackup runs: at least the segment the backup starts in, the
 * one its end switches to, and the one the copy opens when it starts. A small
 * source is mostly WAL: 32 MiB of databases made a 62 MiB copy with 16 MiB
 * segments. Ten percent on top covers files outside the databases and WAL
 * written by a busy source during the copy.
 */

const DEFAULT_WAL_SEGMENT_BYTES = 16 * 1024 * 1024;
/** Segments a fresh copy holds at least. */
const WAL_SEGMENTS = 3;
const MARGIN = 1.1;

export interface RoomNeeded {
  bytes: number;
  databases: number;
  wal: number;
}

export function roomNeeded(source: { totalSizeBytes: number; walSegmentBytes?: number | undefined }): RoomNeeded {
  const wal = WAL_SEGMENTS * (source.walSegmentBytes || DEFAULT_WAL_SEGMENT_BYTES);
  return { bytes: Math.ceil((source.totalSizeBytes + wal) * MARGIN), databases: source.totalSizeBytes, wal };
}

/**
 * What a copy that ran out of disk says: which directory's file system is
 * full, how full, what the copy needs, and what to do. The half-made copy is
 * already removed when this is said (pg_basebackup removes its own, the
 * target its staging directory), so the next run starts over on its own.
 */
export function diskFullAdvice(input: {
  /** The directory whose file system filled up: the copy's parent. */
  dir: string;
  program: string;
  evidence: readonly string[];
  space?: { freeBytes: number; totalBytes: number } | undefined;
  needed?: RoomNeeded | undefined;
}): { message: string; hint: string } {
  const { dir, space, needed } = input;
  const state = space
    ? ` (${formatBytes(space.freeBytes)} free of ${formatBytes(space.totalBytes)} after the partial copy was removed)`
    : '';
  const size = needed
    ? `about ${formatBytes(needed.bytes)}: the source's databases (${formatBytes(needed.databases)}) plus the WAL written while it is copied`
    : 'more than the source cluster uses, plus the WAL written while it is copied';
  return {
    message: `the file system holding ${dir} ran out of space while ${input.program} wrote the copy${state}: ${input.evidence.join(' | ')}`,
    hint: `Free space on the file system that holds ${dir}, or move the copy (target.dataDir) to a larger one: the copy needs ${size}. Something else may have used the space during the copy. The partial copy was removed; run the job again once there is room.`,
  };
}
