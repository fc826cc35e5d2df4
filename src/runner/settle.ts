import type { JobConfig } from '../config/types.js';
import { isRefresherError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import type { Clock, RunStore, Target } from '../ports.js';
import { currentPhase, interruptRun, type RunRecord, TERMINAL_RUN_STATUSES } from '../run/record.js';
import type { JobLock, JobLocks } from './lock.js';

/**
 * What the process that takes a job's lock owes the run that held it before
 * and died (kill -9, OOM, a lost node): its record, left `running`, is marked
 * interrupted as of the moment it was last known alive (the lock's heartbeat),
 * and the target's leftovers are cleaned up. Whoever takes the lock does this,
 * the CLI as much as the service, so no record stays `running` for good and
 * no child process keeps holding the source.
 */

/** The latest moment the record or the heartbeat shows the run alive. */
export function lastAliveAt(run: RunRecord, heartbeat: Date | undefined): Date {
  const times = [run.createdAt, run.startedAt, ...run.phases.flatMap((p) => [p.startedAt, p.finishedAt])]
    .filter((t): t is string => t !== undefined)
    .map((t) => Date.parse(t));
  if (heartbeat) times.push(heartbeat.getTime());
  return new Date(Math.max(...times));
}

export function interruptedByDeath(run: RunRecord, lastAlive: Date, pid: number | undefined): RunRecord {
  const phase = currentPhase(run)?.name;
  const who = pid === undefined ? 'the process running it' : `the process running it (pid ${pid})`;
  return interruptRun(
    run,
    lastAliveAt(run, lastAlive),
    `${who} stopped${phase ? ` during ${phase}` : ''} without finishing the run; it was last seen alive at ${lastAliveAt(run, lastAlive).toISOString()}`,
  );
}

export interface SettleInput {
  store: RunStore;
  clock: Clock;
  log: Logger;
  lock: JobLock;
  target: Target | undefined;
  /** A run being resumed under this lock is not settled here. */
  resuming?: string;
}

/** Settles the dead holder's run, if any, and cleans up the target. Returns the record it settled. */
export async function settlePrevious(input: SettleInput): Promise<RunRecord | undefined> {
  const { lock, store, log } = input;
  let settled: RunRecord | undefined;
  const previous = lock.previous;
  if (previous && previous.holder.runId !== input.resuming) {
    const record = await store.get(previous.holder.runId).catch(() => undefined);
    if (record && !TERMINAL_RUN_STATUSES.has(record.status)) {
      settled = interruptedByDeath(record, previous.lastAlive, previous.holder.pid);
      await store.save(settled);
      log.warn({ job: record.job, runId: record.id, lastAlive: settled.finishedAt }, 'marked a run whose process died interrupted');
    }
  }
  if (input.target?.recover) {
    await input.target.recover(log).catch((error: unknown) => log.warn({ err: error }, 'could not clean up after an earlier run'));
  }
  return settled;
}

/**
 * Takes the job's lock for a moment, when no live process holds it, so that
 * `settle` can settle the run of a holder that died. Returns whether it could.
 */
export async function settleStaleLock(input: {
  job: JobConfig;
  locks: JobLocks;
  clock: Clock;
  targetFor(job: JobConfig): Target;
  settle(lock: JobLock, target: Target): Promise<void>;
}): Promise<boolean> {
  let lock: JobLock;
  try {
    lock = input.locks.acquire(input.job.name, 'recovery', input.clock.now());
  } catch (error) {
    if (isRefresherError(error) && error.code === 'JOB_BUSY') return false;
    throw error;
  }
  try {
    await input.settle(lock, input.targetFor(input.job));
    return true;
  } finally {
    lock.release();
  }
}
