import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RefresherError } from '../../src/errors.js';
import { FileRunStore } from '../../src/history/file-store.js';
import { newRun, newRunId, type RunRecord, startPhase } from '../../src/run/record.js';
import { JobLocks } from '../../src/runner/lock.js';

let stateDir: string;

beforeEach(() => {
  stateDir = mkdtempSync(path.join(tmpdir(), 'dbr-state-'));
});

afterEach(() => {
  rmSync(stateDir, { recursive: true, force: true });
});

const BASE = Date.parse('2024-03-01T00:00:00.000Z');

function runAt(job: string, minutes: number): RunRecord {
  const now = new Date(BASE + minutes * 60_000);
  return newRun({
    id: newRunId(now),
    job,
    trigger: { kind: 'schedule', scheduledFor: now.toISOString() },
    dryRun: false,
    now,
    source: { host: 'db.example.com', port: 5432, user: 'replicator' },
    target: {
      kind: 'local',
      summary: `local data directory /srv/${job}`,
      details: { dataDir: `/srv/${job}` },
      steps: { teardown: 't', clone: 'c', start: 's' },
    },
  });
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

describe('FileRunStore', () => {
  it('get returns what save wrote', async () => {
    const store = new FileRunStore(stateDir);
    const run = runAt('qa', 0);
    await store.save(run);
    expect(await store.get(run.id)).toEqual(run);
  });

  it('a second save replaces the record instead of adding one', async () => {
    const store = new FileRunStore(stateDir);
    const run = runAt('qa', 0);
    await store.save(run);
    const later = startPhase(run, 'preflight', new Date(BASE + 1000));
    await store.save(later);
    expect((await store.get(run.id))?.phases[0]?.status).toBe('running');
    expect(await store.list('qa')).toHaveLength(1);
  });

  it('finds a run whatever job it belongs to', async () => {
    const store = new FileRunStore(stateDir);
    const qa = runAt('qa', 0);
    const reports = runAt('reports', 1);
    await store.save(qa);
    await store.save(reports);
    expect((await store.get(reports.id))?.job).toBe('reports');
    expect((await store.get(qa.id))?.job).toBe('qa');
  });

  it('get of an unknown id is undefined, with or without any history', async () => {
    const store = new FileRunStore(stateDir);
    expect(await store.get('20240301T000000000Z-abcdef')).toBeUndefined();
    await store.save(runAt('qa', 0));
    expect(await store.get('20990101T000000000Z-abcdef')).toBeUndefined();
  });

  it.each(['', 'latest', '../../etc/passwd', '../qa/20240301T000000000Z-abcdef', '20240301T000000000Z-ABCDEF', '20240301T000000000Z'])(
    'get of the malformed id %j is undefined',
    async (id) => {
      const store = new FileRunStore(stateDir);
      await store.save(runAt('qa', 0));
      expect(await store.get(id)).toBeUndefined();
    },
  );

  it('get does not read a JSON file outside the run history through a crafted id', async () => {
    const store = new FileRunStore(stateDir);
    await store.save(runAt('qa', 0));
    // runs/qa/../../outside.json is <stateDir>/outside.json: an id is not a path.
    writeFileSync(path.join(stateDir, 'outside.json'), JSON.stringify(runAt('elsewhere', 1)));
    expect(await store.get('../../outside')).toBeUndefined();
  });

  it('lists newest first, whatever order the runs were saved in', async () => {
    const store = new FileRunStore(stateDir);
    const runs = [runAt('qa', 30), runAt('qa', 0), runAt('qa', 60 * 24), runAt('qa', 10)];
    for (const run of runs) await store.save(run);
    const ids = (await store.list('qa')).map((r) => r.id);
    expect(ids).toEqual([runs[2], runs[0], runs[3], runs[1]].map((r) => r?.id));
  });

  it('lists only the given job', async () => {
    const store = new FileRunStore(stateDir);
    await store.save(runAt('qa', 0));
    await store.save(runAt('reports', 1));
    const listed = await store.list('qa');
    expect(listed.map((r) => r.job)).toEqual(['qa']);
    expect(await store.list('nobody')).toEqual([]);
  });

  it('limit keeps the newest runs, and before pages to older ones', async () => {
    const store = new FileRunStore(stateDir);
    const runs = [0, 1, 2, 3, 4].map((m) => runAt('qa', m));
    for (const run of runs) await store.save(run);
    const ids = runs.map((r) => r.id);

    expect((await store.list('qa', { limit: 2 })).map((r) => r.id)).toEqual([ids[4], ids[3]]);
    // "before" is exclusive: the page continues after the last id seen.
    expect((await store.list('qa', { limit: 2, before: ids[3] })).map((r) => r.id)).toEqual([ids[2], ids[1]]);
    expect((await store.list('qa', { before: ids[1] })).map((r) => r.id)).toEqual([ids[0]]);
    expect(await store.list('qa', { before: ids[0] })).toEqual([]);
  });

  it('lists at most 50 runs by default', async () => {
    const store = new FileRunStore(stateDir);
    const runs = Array.from({ length: 53 }, (_, m) => runAt('qa', m));
    for (const run of runs) await store.save(run);
    const listed = await store.list('qa');
    expect(listed).toHaveLength(50);
    expect(listed[0]?.id).toBe(runs[52]?.id);
    expect(listed[49]?.id).toBe(runs[3]?.id);
  });

  it('leaves only the final .json files after saving', async () => {
    const store = new FileRunStore(stateDir);
    const run = runAt('qa', 0);
    await store.save(run);
    await store.save(startPhase(run, 'preflight', new Date(BASE + 1000)));
    await store.save(runAt('qa', 1));
    const files = filesUnder(stateDir);
    expect(files.every((f) => f.endsWith('.json'))).toBe(true);
    expect(files.some((f) => f.includes('.tmp'))).toBe(false);
    expect(files).toHaveLength(2);
    // Each file is complete JSON.
    for (const f of files) expect(() => JSON.parse(readFileSync(path.join(stateDir, f), 'utf8'))).not.toThrow();
  });

  it('ignores a temporary file a crash left behind, and sweep removes it', async () => {
    const store = new FileRunStore(stateDir);
    const run = runAt('qa', 0);
    await store.save(run);
    const leftover = path.join(stateDir, 'runs', 'qa', `${runAt('qa', 5).id}.json.12345.tmp`);
    writeFileSync(leftover, '{"half":');
    expect((await store.list('qa')).map((r) => r.id)).toEqual([run.id]);
    await store.sweep();
    expect(existsSync(leftover)).toBe(false);
    expect(await store.get(run.id)).toEqual(run);
  });
  it('get finds a run another process saved, and forgets one deleted behind its back', async () => {
    const reader = new FileRunStore(stateDir);
    const writer = new FileRunStore(stateDir);
    const first = runAt('qa', 0);
    await writer.save(first);
    expect(await reader.get(first.id)).toEqual(first);
    // Known now; a second run of another job, saved after the reader's scan, is found too.
    const second = runAt('other', 1);
    await writer.save(second);
    expect(await reader.get(second.id)).toEqual(second);
    rmSync(path.join(stateDir, 'runs', 'qa', `${first.id}.json`));
    expect(await reader.get(first.id)).toBeUndefined();
  });

  it('keeps the newest keepRuns finished records of a job, and never an unfinished one', async () => {
    const store = new FileRunStore(stateDir, { keepRuns: 3 });
    const running = runAt('qa', 0); // a long refresh, older than everything after it
    await store.save(running);
    const skipped = [1, 2, 3, 4, 5, 6].map((m): RunRecord => ({ ...runAt('qa', m), status: 'skipped' }));
    for (const run of skipped) await store.save(run);
    await store.save({ ...runAt('other', 0), status: 'failed' });
    const newestThree = skipped
      .slice(3)
      .reverse()
      .map((r) => r.id);
    expect((await store.list('qa')).map((r) => r.id)).toEqual([...newestThree, running.id]);
    expect(await store.list('other')).toHaveLength(1);
    // Once it finishes (failed), the old run is the oldest beyond the limit and goes too.
    await store.save({ ...running, status: 'failed' });
    expect((await store.list('qa')).map((r) => r.id)).toEqual(newestThree);
  });

  it("never prunes the job's newest successful refresh, however many records come after it; older ones go", async () => {
    const store = new FileRunStore(stateDir, { keepRuns: 2 });
    const older = { ...runAt('ok', 0), status: 'succeeded' as const };
    const newest = { ...runAt('ok', 1), status: 'succeeded' as const };
    const dry = { ...runAt('ok', 2), status: 'succeeded' as const, dryRun: true };
    await store.save(older);
    await store.save(newest);
    await store.save(dry);
    const skipped = [3, 4, 5].map((m): RunRecord => ({ ...runAt('ok', m), status: 'skipped' }));
    for (const run of skipped) await store.save(run);
    expect((await store.list('ok')).map((r) => r.id)).toEqual([skipped[2]?.id, skipped[1]?.id, newest.id]);
    // A fresh store (another process) finds it, and keeps it too.
    const other = new FileRunStore(stateDir, { keepRuns: 2 });
    expect((await other.lastSuccess('ok'))?.id).toBe(newest.id);
    await other.save({ ...runAt('ok', 6), status: 'failed' });
    expect((await other.list('ok')).map((r) => r.id)).toContain(newest.id);
  });
});

describe('JobLocks', () => {
  const now = new Date('2024-03-01T03:00:00.000Z');

  function busyError(fn: () => unknown): RefresherError {
    try {
      fn();
    } catch (error) {
      expect(error).toBeInstanceOf(RefresherError);
      return error as RefresherError;
    }
    throw new Error('expected JOB_BUSY');
  }

  it('a second acquire of the same job fails with JOB_BUSY naming the running run', () => {
    const locks = new JobLocks(stateDir);
    const lock = locks.acquire('qa', 'run-one', now);
    const error = busyError(() => locks.acquire('qa', 'run-two', now));
    expect(error.code).toBe('JOB_BUSY');
    expect(error.message).toContain('run-one');
    expect(error.message).toContain('"qa"');
    expect(error.message).not.toContain('run-two');
    lock.release();
  });

  it('the lock holds across separate JobLocks on the same state directory (CLI and service)', () => {
    const first = new JobLocks(stateDir);
    const lock = first.acquire('qa', 'run-one', now);
    const error = busyError(() => new JobLocks(stateDir).acquire('qa', 'run-two', now));
    expect(error.code).toBe('JOB_BUSY');
    expect(error.message).toContain('run-one');
    // The lock also stores the holder's process start time (a reused pid is not the holder).
    expect(new JobLocks(stateDir).holder('qa')).toMatchObject({ pid: process.pid, runId: 'run-one', since: now.toISOString() });
    lock.release();
  });

  it('release lets the job be acquired again, and removes the lock file', () => {
    const locks = new JobLocks(stateDir);
    locks.acquire('qa', 'run-one', now).release();
    expect(locks.holder('qa')).toBeUndefined();
    expect(existsSync(path.join(stateDir, 'locks', 'qa.lock'))).toBe(false);
    const again = locks.acquire('qa', 'run-two', now);
    expect(locks.holder('qa')?.runId).toBe('run-two');
    again.release();
  });

  it('takes over a lock whose process is gone', () => {
    const dir = path.join(stateDir, 'locks');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'qa.lock');
    writeFileSync(file, JSON.stringify({ pid: 2147483646, runId: 'crashed-run', since: '2024-02-29T03:00:00.000Z' }));

    const locks = new JobLocks(stateDir);
    expect(locks.holder('qa')).toBeUndefined();
    const lock = locks.acquire('qa', 'run-new', now);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ pid: process.pid, runId: 'run-new', since: now.toISOString() });
    expect(busyError(() => locks.acquire('qa', 'run-third', now)).message).toContain('run-new');
    lock.release();
  });

  it('different jobs do not block each other', () => {
    const locks = new JobLocks(stateDir);
    const qa = locks.acquire('qa', 'run-qa', now);
    const reports = locks.acquire('reports', 'run-reports', now);
    expect(locks.holder('qa')?.runId).toBe('run-qa');
    expect(locks.holder('reports')?.runId).toBe('run-reports');
    qa.release();
    // Releasing one job leaves the other held.
    expect(busyError(() => locks.acquire('reports', 'x', now)).code).toBe('JOB_BUSY');
    reports.release();
  });
});
