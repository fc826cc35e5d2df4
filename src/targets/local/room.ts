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
