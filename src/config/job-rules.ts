import type { JobConfig } from './types.js';

/**
 * The suspended-job rule, in one place for the CLI, the HTTP API and the
 * runner: a suspended job runs nothing on schedule, and refuses manual runs
 * unless its config allows them (allowManualWhenSuspended).
 */
export function refusesManualRuns(job: JobConfig): boolean {
  return job.suspend && !job.allowManualWhenSuspended;
}
