import { describe, expect, it } from 'vitest';
import type { RunRecord } from '../../src/run/record.js';
import { JobBoard } from '../../src/service/job-board.js';
import { started } from '../fixtures/notify/samples.js';

let serial = 0;
/** A running run of job qa, each with its own id. */
function run(): RunRecord {
  serial += 1;
  return started(undefined, `20300101T030000000Z-${serial.toString(16).padStart(6, '0')}`);
}

describe('JobBoard: the run holding a job, live', () => {
  it('follows the phase and the latest progress, clears progress at each new phase, and forgets the run when it ends', () => {
    const board = new JobBoard();
    const r = run();
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
    const holder = run();
    const stranger = run();
    board.onRunEvent({ type: 'run-started', run: holder });
    board.onRunEvent({ type: 'phase-started', run: stranger, phase: 'verify' });
    board.onRunEvent({ type: 'progress', run: stranger, phase: 'verify', detail: { percent: 99 } });
    expect(board.state('qa').current).toEqual({ id: holder.id, status: 'running' });
  });
});
