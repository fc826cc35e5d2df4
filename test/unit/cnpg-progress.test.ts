import { describe, expect, it } from 'vitest';
import { progressText } from '../../src/cli/progress.js';
import { formatInZone, progressOf } from '../../src/http/ui/render.js';
import {
  type BackupRow,
  BackupTracker,
  parseBackupRow,
  pickBackup,
  progressOfRow,
  progressUnreadable,
} from '../../src/targets/cnpg/progress.js';

/** The pure half of a CNPG clone's progress: which backup is ours, its percent/ETA, and who may read it. */

const T0 = Date.parse('2026-12-02T10:00:00Z');

function row(over: Partial<BackupRow> = {}): BackupRow {
  return {
    pid: 100,
    phase: 'streaming database files',
    totalBytes: 1000,
    streamedBytes: 250,
    user: 'replicator',
    applicationName: 'pg_basebackup',
    startedAtMs: T0 + 5000,
    ...over,
  };
}

const want = { user: 'replicator', applicationName: 'pg_basebackup', notBeforeMs: T0 };

describe('parseBackupRow', () => {
  it('reads node-postgres values: bigint as text, timestamptz as a Date, NULLs for a hidden backend', () => {
    expect(
      parseBackupRow({
        pid: 42,
        phase: 'streaming database files',
        backup_total: '31457280',
        backup_streamed: '1048576',
        usename: 'replicator',
        application_name: 'pg_basebackup',
        backend_start: new Date(T0),
      }),
    ).toEqual({
      pid: 42,
      phase: 'streaming database files',
      totalBytes: 31457280,
      streamedBytes: 1048576,
      user: 'replicator',
      applicationName: 'pg_basebackup',
      startedAtMs: T0,
    });
    expect(
      parseBackupRow({
        pid: 42,
        phase: null,
        backup_total: null,
        backup_streamed: null,
        usename: 'replicator',
        application_name: 'pg_basebackup',
        backend_start: null,
      }),
    ).toMatchObject({ phase: null, totalBytes: null, streamedBytes: null, startedAtMs: null });
  });
});

describe('pickBackup', () => {
  it("picks the one backup by the clone's role and application_name that started after the Cluster", () => {
    const ours = row({ pid: 7 });
    const rows = [
      row({ pid: 1, user: 'backup_tool' }),
      row({ pid: 2, applicationName: 'barman' }),
      row({ pid: 3, startedAtMs: T0 - 3_600_000 }), // a nightly backup running since long before
      ours,
    ];
    expect(pickBackup(rows, want)).toEqual({ row: ours });
  });

  it('shows nothing when two backups match, rather than the wrong one', () => {
    const picked = pickBackup([row({ pid: 7 }), row({ pid: 8 })], want);
    expect(picked.row).toBeUndefined();
    expect(picked.why).toMatch(/2 base backups by "replicator".*pids 7, 8/);
  });

  it('keeps following the backup it picked when another one like it starts', () => {
    expect(pickBackup([row({ pid: 7 }), row({ pid: 8 })], { ...want, followedPid: 8 }).row?.pid).toBe(8);
  });

  it('says "hidden" when the only matching backends are hidden from the role (no pg_read_all_stats)', () => {
    const hidden = row({ phase: null, totalBytes: null, streamedBytes: null, startedAtMs: null });
    expect(pickBackup([hidden], want)).toEqual({ why: 'hidden' });
  });

  it('finds nothing (and says nothing) before the backup starts', () => {
    expect(pickBackup([], want)).toEqual({});
  });
});

describe('progressOfRow', () => {
  it('gives percent and bytes, and an ETA from the rate seen since the first bytes', () => {
    const detail = progressOfRow(row({ streamedBytes: 600 }), { atMs: T0, bytes: 200 }, T0 + 4000);
    // 400 bytes in 4 s: 100 B/s; 400 bytes left: 4 s.
    expect(detail).toEqual({ backupPhase: 'streaming database files', copiedBytes: 600, totalBytes: 1000, percent: 60, etaMs: 4000 });
  });

  it('has no percent while the size is unknown (no estimate), and no ETA without a rate', () => {
    expect(progressOfRow(row({ totalBytes: null, streamedBytes: 0, phase: 'waiting for checkpoint to finish' }), undefined, T0)).toEqual({
      backupPhase: 'waiting for checkpoint to finish',
      copiedBytes: 0,
    });
    expect(progressOfRow(row(), undefined, T0)).not.toHaveProperty('etaMs');
  });

  it('never goes past 100%', () => {
    expect(progressOfRow(row({ streamedBytes: 1200 }), undefined, T0).percent).toBe(100);
  });
});

describe('BackupTracker', () => {
  it('reports changes only, then 100% once the backup that reached its end leaves the view', () => {
    const tracker = new BackupTracker(want);
    expect(tracker.observe([], T0)).toEqual({});
    expect(tracker.observe([row({ streamedBytes: 100 })], T0 + 1000).report).toMatchObject({ percent: 10 });
    expect(tracker.observe([row({ streamedBytes: 100 })], T0 + 2000)).toEqual({});
    expect(tracker.observe([row({ streamedBytes: 600 })], T0 + 3000).report).toMatchObject({ percent: 60, etaMs: 2000 });
    expect(tracker.observe([row({ streamedBytes: 1000, phase: 'waiting for wal archiving to finish' })], T0 + 4000).report).toMatchObject({
      percent: 100,
    });
    expect(tracker.observe([], T0 + 5000)).toEqual({
      done: true,
      report: { backupPhase: 'finished', copiedBytes: 1000, totalBytes: 1000, percent: 100 },
    });
  });

  it('a backup that leaves the view before it was seen complete is not reported as done, and a retry is followed', () => {
    const tracker = new BackupTracker(want);
    tracker.observe([row({ pid: 7, streamedBytes: 400 })], T0 + 1000);
    const ended = tracker.observe([], T0 + 2000);
    expect(ended.done).toBeUndefined();
    // No percentage: it may have completed between two polls, or failed.
    expect(ended.report).toEqual({ backupPhase: 'base backup ended', copiedBytes: 400, totalBytes: 1000 });
    expect(ended.note).toMatch(/left pg_stat_progress_basebackup at 40%; if it failed, CloudNativePG retries it/);
    expect(tracker.observe([], T0 + 2500)).toEqual({});
    expect(tracker.observe([row({ pid: 9, streamedBytes: 50 })], T0 + 3000).report).toMatchObject({ percent: 5 });
  });

  it('tells the caller when the backup is hidden from its role', () => {
    expect(new BackupTracker(want).observe([row({ phase: null, startedAtMs: null })], T0)).toEqual({ hidden: true });
  });
});

describe('progressUnreadable', () => {
  const facts = { version: 150004, me: 'watcher', read_all_stats: false, acts_as_backup_role: false };

  it('names the grant that gives progress when the role lacks it', () => {
    expect(progressUnreadable(facts, 'replicator')).toBe(
      `the SQL role "watcher" may not read the statistics of "replicator", the role the clone connects as; GRANT pg_read_all_stats TO "watcher" on the source to see the clone's progress`,
    );
  });

  it('accepts pg_read_all_stats (or a superuser), or the role the clone connects as', () => {
    expect(progressUnreadable({ ...facts, read_all_stats: true }, 'replicator')).toBeUndefined();
    expect(progressUnreadable({ ...facts, acts_as_backup_role: true }, 'replicator')).toBeUndefined();
  });

  it('says the view exists from PostgreSQL 13', () => {
    expect(progressUnreadable({ ...facts, version: 120011, read_all_stats: true }, 'replicator')).toMatch(
      /PostgreSQL 12; pg_stat_progress_basebackup exists from PostgreSQL 13/,
    );
  });
});

describe('the progress line and the status page', () => {
  it("show a CNPG clone's percent, bytes and ETA, and what it waits for before the first byte", () => {
    expect(progressText({ percent: 42, copiedBytes: 42 * 1024 * 1024, totalBytes: 100 * 1024 * 1024, etaMs: 90_000 })).toBe(
      '42% (42.0 MiB of 100.0 MiB), about 1 min 30 s left',
    );
    expect(progressText({ backupPhase: 'waiting for checkpoint to finish', copiedBytes: 0 })).toBe('waiting for checkpoint to finish');
    expect(progressText({ phase: 'Setting up primary' })).toBeUndefined();
  });

  it("the page counts a reported ETA down from when it was reported, and keeps the phase's pace otherwise", () => {
    const at = new Date(T0).toISOString();
    expect(
      progressOf(
        { id: 'r', status: 'running', phase: 'start', phaseStartedAt: at, progress: { at, percent: 50, etaMs: 10_000 } },
        T0 + 4000,
      ),
    ).toEqual({
      percent: 50,
      etaMs: 6000,
    });
    expect(
      progressOf({ id: 'r', status: 'running', phase: 'clone', phaseStartedAt: at, progress: { at, percent: 25 } }, T0 + 4000),
    ).toEqual({
      percent: 25,
      etaMs: 12_000,
    });
  });
});

describe('formatInZone (kept between renders of the status page)', () => {
  it('gives the same text from its cache as when first made, per zone, also past the cache size', () => {
    const iso = '2026-12-07T02:00:00.000Z';
    expect(formatInZone(iso, 'Europe/Berlin')).toBe('2026-12-07 03:00 CET');
    expect(formatInZone(iso, 'Europe/Berlin')).toBe('2026-12-07 03:00 CET');
    expect(formatInZone(iso, 'America/New_York')).toBe('2026-12-06 21:00 GMT-5');
    for (let i = 0; i < 5000; i++) formatInZone(new Date(Date.parse(iso) + i * 60_000).toISOString(), 'UTC');
    expect(formatInZone(iso, 'Europe/Berlin')).toBe('2026-12-07 03:00 CET');
    expect(formatInZone(new Date(Date.parse(iso) + 4999 * 60_000).toISOString(), 'UTC')).toBe('2026-12-10 13:19 UTC');
  });
});
