import { describe, expect, it } from 'vitest';
import { newRun, newRunId, type RunRecord } from '../../src/runner/run-record.js';
import { JobBoard } from '../../src/service/job-board.js';

function run(job: string, status: RunRecord['status'] = 'running'): RunRecord {
  const now = new Date('2030-01-01T03:00:00Z');
  return {
    ...newRun({
      id: newRunId(now),
      job,
      trigger: { kind: 'schedule', by: 'scheduler' },
      dryRun: false,
      now,
      source: { host: 'db.example.com', port: 5432, user: 'r' },
      target: { kind: 'local', summary: 'local copy', details: {}, steps: { teardown: '', clone: '', start: '' } },
    }),
    status,
  };
}

describe('JobBoard: the run holding a job, live', () => {
  it('follows the phase and the latest progress, clears progress at each new phase, and forgets the run when it ends', () => {
    const board = new JobBoard();
    const r = run('qa');
    board.onRunEvent({ type: 'run-started', run: r });
    expect(board.state('qa').current).toEqual({ id: r.id, status: 'running' });
    board.onRunEvent({ type: 'phase-started', run: r, phase: 'clone' });
    board.onRunEvent({ type: 'progress', run: r, phase: 'clone', detail: { percent: 10 } });
    board.onRunEvent({ type: 'progress', run: r, phase: 'clone', detail: { percent: 55, copiedBytes: 55, totalBytes: 100 } });
    expect(board.state('qa').current).toMatchObject({ phase: 'clone', progress: { percent: 55, copiedBytes: 55, totalBytes: 100 } });
    expect(Date.parse(String(board.state('qa').current?.progress?.at))).not.toBeNaN();
    board.onRunEvent({ type: 'phase-started', run: r, phase: 'start' });
    expect(board.state('qa').current).toMatchObject({ phase: 'start' });
    expect(board.state('qa').current?.progress).toBeUndefined();
    board.onRunEvent({ type: 'run-finished', run: { ...r, status: 'succeeded' } });
    expect(board.state('qa').current).toBeUndefined();
    expect(board.state('qa').lastRun).toMatchObject({ id: r.id, status: 'succeeded' });
  });

  it('ignores events of a run that does not hold the job', () => {
    const board = new JobBoard();
    const holder = run('qa');
    const stranger = run('qa');
    board.onRunEvent({ type: 'run-started', run: holder });
    board.onRunEvent({ type: 'phase-started', run: stranger, phase: 'verify' });
    board.onRunEvent({ type: 'progress', run: stranger, phase: 'verify', detail: { percent: 99 } });
    expect(board.state('qa').current).toEqual({ id: holder.id, status: 'running' });
  });
});
