import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { FileRunStore } from '../../src/history/file-store.js';
import { silentLogger } from '../../src/observe/logger.js';
import { ServiceMetrics } from '../../src/observe/metrics.js';
import { newRun, newRunId, newSkippedRun, type RunRecord, succeedRun } from '../../src/run/record.js';
import { FollowerView } from '../../src/service/follower-view.js';
import { JobBoard } from '../../src/service/job-board.js';

/**
 * A follower's view of the leader's work (src/service/follower-view.ts), read from a real history store
 * that "the leader" (the test) writes: the metrics and the job board follow it at each look, and the
 * next fire time is the one after the newest scheduled record.
 */

const root = mkdtempSync(path.join(os.tmpdir(), 'dbr-follower-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const views: FollowerView[] = [];
afterEach(() => {
  for (const v of views.splice(0)) v.stop();
});

const config = parseConfig(
  `stateDir: state
jobs:
  - name: qa
    schedule: "0 * * * *"
    source: { host: 127.0.0.1, port: 1, user: replicator, password: { env: PW } }
    target: { kind: local, dataDir: copies/qa, port: 2 }
    verify: { databases: [{ name: app }] }
`,
  { source: 'test.yaml', baseDir: root, env: { PW: 'x' } },
);

const base = { source: { host: '127.0.0.1', port: 1 }, target: { kind: 'local', summary: 'copies/qa' } } as Pick<
  RunRecord,
  'source' | 'target'
>;

function succeeded(at: Date, scheduledFor?: string): RunRecord {
  const run = newRun({
    id: newRunId(at),
    job: 'qa',
    trigger: scheduledFor ? { kind: 'schedule', scheduledFor } : { kind: 'http' },
    dryRun: false,
    now: at,
    ...base,
  });
  const phasesDone = { ...run, phases: run.phases.map((p) => ({ ...p, status: 'succeeded' as const })) };
  return { ...succeedRun(phasesDone, new Date(at.getTime() + 5000)), snapshot: { takenAt: at.toISOString() } } as RunRecord;
}

async function gauge(metrics: ServiceMetrics, line: string): Promise<number | undefined> {
  const found = (await metrics.render()).split('\n').find((l) => l.startsWith(`${line} `));
  return found ? Number(found.slice(line.length + 1)) : undefined;
}

describe('FollowerView', () => {
  it('follows the shared history: last run, last success, data age, job board, next fire time', async () => {
    const now = new Date('2026-12-02T10:20:00Z');
    const clock = { now: () => now };
    const store = new FileRunStore(path.join(root, 'history-1'));
    const board = new JobBoard(clock);
    let view: FollowerView | undefined;
    const metrics = new ServiceMetrics({
      clock,
      jobs: ['qa'],
      running: () => 0,
      queued: () => 0,
      nextRun: (job) => view?.nextRun(job),
    });
    view = new FollowerView({ config, store, board, metrics, clock, log: silentLogger() }, 60_000);
    views.push(view);

    view.start();
    await view.refresh();
    expect(await gauge(metrics, 'db_refresher_last_success_timestamp_seconds{job="qa"}')).toBe(0);
    // Nothing scheduled yet: the fire after the time this replica began following.
    expect(await gauge(metrics, 'db_refresher_next_run_timestamp_seconds{job="qa"}')).toBe(Date.parse('2026-12-02T11:00:00Z') / 1000);

    // The leader runs the 11:00 fire (it succeeds), then skips 12:00 (overlap).
    const run = succeeded(new Date('2026-12-02T11:00:01Z'), '2026-12-02T11:00:00.000Z');
    await store.save(run);
    const skipped = newSkippedRun({
      id: newRunId(new Date('2026-12-02T12:00:00Z')),
      job: 'qa',
      trigger: { kind: 'schedule', scheduledFor: '2026-12-02T12:00:00.000Z' },
      now: new Date('2026-12-02T12:00:00Z'),
      reason: 'overlap',
      ...base,
    });
    await store.save(skipped);
    await view.refresh();
    const finished = Date.parse(run.finishedAt ?? '') / 1000;
    expect(await gauge(metrics, 'db_refresher_last_success_timestamp_seconds{job="qa"}')).toBe(finished);
    expect(await gauge(metrics, 'db_refresher_last_run_timestamp_seconds{job="qa",result="succeeded"}')).toBe(finished);
    expect(await gauge(metrics, 'db_refresher_next_run_timestamp_seconds{job="qa"}')).toBe(Date.parse('2026-12-02T13:00:00Z') / 1000);
    expect(board.state('qa').lastSuccess?.id).toBe(run.id);
    expect(board.state('qa').lastRun?.id).toBe(skipped.id);

    // A run under way shows as the job's current run; once it ends, as its last run.
    const running = newRun({
      id: newRunId(new Date('2026-12-02T13:00:01Z')),
      job: 'qa',
      trigger: { kind: 'http' },
      dryRun: false,
      now: new Date('2026-12-02T13:00:01Z'),
      ...base,
    });
    await store.save(running);
    await view.refresh();
    expect(board.state('qa').current?.id).toBe(running.id);
    const failed = { ...running, status: 'failed', finishedAt: '2026-12-02T13:10:00.000Z' } as RunRecord;
    await store.save(failed);
    await view.refresh();
    expect(board.state('qa').current).toBeUndefined();
    expect(board.state('qa').lastRun?.id).toBe(running.id);
    expect(await gauge(metrics, 'db_refresher_last_run_timestamp_seconds{job="qa",result="failed"}')).toBe(
      Date.parse('2026-12-02T13:10:00Z') / 1000,
    );

    // Leading now: the follower's next fire time is no longer offered.
    view.stop();
    expect(view.nextRun('qa')).toBeUndefined();
  });
});
