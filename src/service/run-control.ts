import type { JobConfig } from '../config/types.js';
import { type CancelOutcome, effectiveSuspend, type JobState } from '../http/views.js';
import type { JobSuspension, RunStore } from '../ports.js';
import { type Cancellation, copyIsDown, type RunRecord, TERMINAL_RUN_STATUSES } from '../run/record.js';
import type { Runner } from '../runner/runner.js';

/**
 * What people do to runs and jobs besides starting them: cancel a run, and
 * suspend or resume a job. The suspension is kept in the history store, so it
 * survives restarts, and overrides the config's `suspend` until changed again.
 */

/** What cancelling a run now means for its copy, in words (pure). */
export function cancelMessage(run: RunRecord, target: string): string {
  if (run.status === 'queued') return `run ${run.id} was waiting for a free slot and stops now; nothing was changed on ${target}`;
  const phase = run.phases.find((p) => p.status === 'running')?.name;
  const at = phase ? `when ${phase} ends` : 'before its next phase';
  if (copyIsDown(run) || phase === 'teardown') {
    return `run ${run.id} stops ${at}. The copy is down: teardown has removed it (recreate mode), and no new copy will be started, so ${target} stays unavailable until the job runs again`;
  }
  return `run ${run.id} stops ${at}, before teardown: the current copy on ${target} stays as it is`;
}

export async function cancelRun(input: {
  id: string;
  cancellation: Cancellation;
  store: RunStore;
  runner: Runner;
  /** The pid of another process doing the run (`db-refresher run`), if any. */
  holderPid: (job: string, runId: string) => number | undefined;
}): Promise<CancelOutcome> {
  const run = await input.store.get(input.id);
  if (!run) return { outcome: 'not-found' };
  if (TERMINAL_RUN_STATUSES.has(run.status)) return { outcome: 'finished', run };
  if (input.runner.cancel(run.id, input.cancellation)) {
    return { outcome: 'cancelling', run: { ...run, cancelled: input.cancellation }, message: cancelMessage(run, run.target.summary) };
  }
  const pid = input.holderPid(run.job, run.id);
  return {
    outcome: 'elsewhere',
    run,
    message:
      pid !== undefined
        ? `run ${run.id} is being done by another process (pid ${pid}, e.g. \`db-refresher run\`), not by this service; stop it there (Ctrl-C or SIGTERM)`
        : `run ${run.id} is not under way in this service (it was left unfinished by an earlier process); it is resumed or closed when the service starts`,
  };
}

/** The job as the service treats it now: the config, with the suspension set through the API applied. */
export function effectiveJob(job: JobConfig, state: JobState): JobConfig {
  const suspend = effectiveSuspend(job, state);
  return suspend === job.suspend ? job : { ...job, suspend };
}

export async function setSuspension(input: {
  job: JobConfig;
  suspension: JobSuspension;
  store: RunStore;
  apply: (suspension: JobSuspension) => void;
}): Promise<JobSuspension> {
  // Saved first: what the API answers is what survives a restart.
  await input.store.saveSuspension(input.job.name, input.suspension);
  input.apply(input.suspension);
  return input.suspension;
}
