import { type RunRecord, TERMINAL_RUN_STATUSES } from '../run/record.js';

/**
 * What history retention (`server.history.keepRuns`) may delete, for both
 * stores. Never an unfinished record (however old: a long refresh can be
 * older than the skipped ticks recorded while it ran, and whoever takes the
 * job's lock next must still find it to settle it), and never the job's
 * newest successful refresh: the age of the copy's data, the status page and
 * the stale-copy alert are read from it, and skipped or failed runs recorded
 * after it must not make it look as if the job never succeeded. Pure.
 */

/** A refresh that made the copy the job has now (a dry run changes nothing). */
export function isSuccess(run: Pick<RunRecord, 'status' | 'dryRun'>): boolean {
  return run.status === 'succeeded' && !run.dryRun;
}

/** The newest successful refresh among records listed newest first. */
export function newestSuccessId(newestFirst: readonly RunRecord[]): string | undefined {
  return newestFirst.find(isSuccess)?.id;
}

/** Whether retention may delete `run`, given the id of the job's newest successful refresh. */
export function mayPrune(run: Pick<RunRecord, 'id' | 'status'>, newestSuccess: string | undefined): boolean {
  return TERMINAL_RUN_STATUSES.has(run.status) && run.id !== newestSuccess;
}
