import { RefresherError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import type { Clock, PhaseContext, RunStore } from '../ports.js';
import type { RunEvent } from '../run/events.js';
import { redactRunError, secretValuesOf } from '../run/evidence.js';
import {
  type Cancellation,
  cancelRun,
  copyIsDown,
  failRun,
  pauseRun,
  type RunRecord,
  skipPhase,
  startPhase,
  succeedPhase,
  succeedRun,
} from '../run/record.js';
import { TARGET_DOWN, targetLeftDown } from '../run/target-down.js';
import type { RunContext } from './context.js';
import { isBlueGreen } from './phases/blue-green.js';
import { PHASE_TABLE } from './phases/index.js';
import type { Phase, PhaseResult } from './phases/phase.js';
import { toRunError } from './run-error.js';

/**
 * One run's walk through the phase table, once the runner has its lock and
 * slot: each pending phase is saved as started, run, and saved with its
 * outcome; a cancel or a pause takes effect at the boundary between phases.
 */

export interface WalkDeps {
  store: RunStore;
  clock: Clock;
  emit(event: RunEvent): void;
  /** Set once someone cancelled the run: it stops at the next boundary. */
  cancellation(runId: string): Cancellation | undefined;
  /** Aborted when the service stops: the run pauses at the next boundary. */
  pause: AbortSignal;
}

/** Walks the phase table from the first pending phase; pauses between phases when asked. */
export async function walkPhases(deps: WalkDeps, initial: RunRecord, ctx: RunContext): Promise<RunRecord> {
  const { clock, store } = deps;
  const { log } = ctx;
  let run = initial;
  for (const phase of PHASE_TABLE) {
    if (run.phases.find((p) => p.name === phase.name)?.status !== 'pending') continue;
    if (run.dryRun && !phase.runsInDryRun) {
      run = skipPhase(run, phase.name, 'dry run: nothing is changed');
      continue;
    }
    const cancel = deps.cancellation(run.id);
    if (cancel) {
      run = cancelRun(run, clock.now(), cancel);
      await store.save(run);
      log.warn({ cancelledBy: cancel.by, reason: cancel.reason, copyIsDown: copyIsDown(run) }, 'run cancelled');
      break;
    }
    if (deps.pause.aborted) {
      run = pauseRun(run, clock.now(), String(deps.pause.reason?.message ?? deps.pause.reason));
      await store.save(run);
      log.info({ nextPhase: run.paused?.nextPhase }, 'run paused between phases');
      return run;
    }
    run = await runPhase(deps, phase, run, ctx);
    if (run.status !== 'running') break;
  }
  if (run.status === 'running') {
    run = succeedRun(run, clock.now());
    await store.save(run);
  }
  if (!run.dryRun && ctx.target.recordOutcome) {
    const finished = run;
    await ctx.target
      .recordOutcome(finished, { runId: finished.id, run: finished, log, signal: ctx.signal, progress: () => undefined })
      .catch((error: unknown) => log.warn({ err: error }, 'could not record the outcome on the target'));
  }
  log.info({ status: run.status, durationMs: run.durationMs }, 'run finished');
  deps.emit({ type: 'run-finished', run });
  return run;
}

/**
 * Saves the record or stops the run with an error that says what happened:
 * without a record, a crash could not be repaired by the next run, so no
 * further phase may start. The record stays as last saved; whoever takes
 * the job's lock next marks it interrupted.
 */
async function saveOrStop(deps: WalkDeps, log: Logger, run: RunRecord, consequence: string): Promise<void> {
  try {
    await deps.store.save(run);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    log.error({ runId: run.id, err: error }, 'could not save the run record');
    throw new RefresherError('REFRESH_FAILED', `run ${run.id} stopped: its record could not be saved (${why}); ${consequence}`, {
      hint: `Make the state directory or history store writable again; the next run of job "${run.job}" marks this one interrupted.${targetLeftDown(run.phases) ? ` ${TARGET_DOWN}` : ''}`,
      cause: error,
    });
  }
}

/**
 * A blueGreen run that fails before its swap: the target removes the half-made copy and says that the
 * current copy was not changed, which the error then says too (record, CLI output, notifications).
 */
async function failureNote(run: RunRecord, ctx: RunContext, targetContext: PhaseContext, message: string): Promise<string> {
  if (run.dryRun || run.operation === 'rollback' || !isBlueGreen(ctx.target)) return message;
  try {
    const note = await ctx.target.afterFailure(run, targetContext);
    return note ? `${message}; ${note}` : message;
  } catch (error) {
    ctx.log.warn({ err: error }, 'could not remove the half-made copy; the next run removes it');
    return `${message}; the current copy was not changed`;
  }
}

/** Runs one phase: saved as started, run, its patch merged, saved as succeeded or failed. */
async function runPhase(deps: WalkDeps, phase: Phase, before: RunRecord, ctx: RunContext): Promise<RunRecord> {
  const { clock } = deps;
  const name = phase.name;
  const started = startPhase(before, name, clock.now());
  // A phase starts only once the record says so: a kill during it must leave a record that says where it stopped.
  await saveOrStop(deps, ctx.log, started, `${name} was not started`);
  deps.emit({ type: 'phase-started', run: started, phase: name });
  const log = ctx.log.child({ phase: name });
  log.info(`${name} started`);
  const targetContext: PhaseContext = {
    runId: started.id,
    run: started,
    log,
    signal: ctx.signal,
    progress: (detail) => deps.emit({ type: 'progress', run: started, phase: name, detail }),
    facts: ctx.learned.facts,
  };
  let result: PhaseResult | { ok: false; patch?: undefined; failure: unknown };
  try {
    result = await phase.run({ ...ctx, record: started, targetContext });
  } catch (error) {
    result = { ok: false, failure: error };
  }
  let run = { ...started, ...result.patch };
  if (result.ok) {
    Object.assign(ctx.learned, result.learned);
    run = succeedPhase(run, name, clock.now(), result.detail);
    log.info({ durationMs: run.phases.find((p) => p.name === name)?.durationMs }, `${name} succeeded`);
  } else {
    // The evidence is what child programs said: it may quote a secret, so it is redacted before it is recorded or logged.
    const runError = redactRunError(toRunError(name, result.failure, ctx.signal), secretValuesOf(ctx.job));
    run = failRun(run, { ...runError, message: await failureNote(run, ctx, targetContext, runError.message) }, clock.now());
    log.error({ failureClass: runError.class, hint: runError.hint, details: runError.details }, runError.message);
  }
  await saveOrStop(deps, ctx.log, run, `${name} ${result.ok ? 'succeeded' : 'failed'}, and no later phase was started`);
  deps.emit({ type: 'phase-finished', run, phase: name });
  return run;
}
