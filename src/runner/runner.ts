import { refusesManualRuns } from '../config/job-rules.js';
import type { JobConfig } from '../config/types.js';
import { RefresherError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import type { Clock, PhaseContext, Release, RunGate, RunStore, SqlConnector, Target } from '../ports.js';
import type { RunEvent } from '../run/events.js';
import { redactRunError, secretValuesOf } from '../run/evidence.js';
import {
  beginRun,
  type Cancellation,
  cancelRun,
  copyIsDown,
  failRun,
  interruptRun,
  newRun,
  newRunId,
  pauseRun,
  type RunOperation,
  type RunRecord,
  resumePoint,
  resumeRun,
  skipPhase,
  startPhase,
  succeedPhase,
  succeedRun,
  type Trigger,
} from '../run/record.js';
import { TARGET_DOWN, targetLeftDown } from '../run/target-down.js';
import { prepareRun, type RunContext } from './context.js';
import type { JobLock, JobLocks } from './lock.js';
import { isBlueGreen } from './phases/blue-green.js';
import { PHASE_TABLE, phasesFor, resumePolicy } from './phases/index.js';
import type { Phase, PhaseResult } from './phases/phase.js';
import { toRunError } from './run-error.js';
import { settlePrevious, settleStaleLock } from './settle.js';

/**
 * Drives one run through the phase table (./phases). The run record is saved
 * before and after every phase, so a crash at any point leaves a record that
 * says which phase was under way; everything a later phase needs is in the
 * record or in the run context, so a restarted service can resume from it.
 */

export interface RunnerDeps {
  store: RunStore;
  locks: JobLocks;
  sql: SqlConnector;
  clock: Clock;
  log: Logger;
  targetFor(job: JobConfig): Target;
  onEvent?(event: RunEvent): void;
  gate?: RunGate;
}

export interface StartedRun {
  run: RunRecord;
  done: Promise<RunRecord>;
}

export class Runner {
  readonly #deps: RunnerDeps;
  readonly #aborts = new Map<string, AbortController>();
  readonly #active = new Map<string, Promise<RunRecord>>();
  /** Runs someone cancelled: each stops at its next phase boundary (a queued one at once). */
  readonly #cancels = new Map<string, Cancellation>();
  /** Per run: aborted by cancel(), so a queued run stops waiting for its slot. */
  readonly #wakes = new Map<string, AbortController>();
  /** Aborted by pauseAll(): runs stop at their next phase boundary, queued runs stop waiting. */
  readonly #pause = new AbortController();

  constructor(deps: RunnerDeps) {
    this.#deps = deps;
  }

  /**
   * Takes the job's lock and starts a run (queued first when the gate has no
   * free slot); `done` settles with the record when the run finishes or pauses.
   * Throws JOB_BUSY when the job is already running or queued.
   */
  async start(job: JobConfig, trigger: Trigger, options: { dryRun?: boolean; operation?: RunOperation } = {}): Promise<StartedRun> {
    if (refusesManualRuns(job) && (trigger.kind === 'cli' || trigger.kind === 'http')) {
      throw new RefresherError('JOB_SUSPENDED', `job "${job.name}" is suspended and does not allow manual runs while suspended`, {
        hint: 'Set suspend: false, or allowManualWhenSuspended: true, on the job.',
      });
    }
    const now = this.#deps.clock.now();
    const id = newRunId(now);
    return this.#open(job, id, now, (target, queued) =>
      newRun({
        id,
        job: job.name,
        trigger,
        dryRun: options.dryRun ?? false,
        now,
        source: { host: job.source.host, port: job.source.port, user: job.source.user },
        target: target.describe(),
        queued,
        phases: phasesFor(job, options.operation),
        ...(options.operation ? { operation: options.operation } : {}),
      }),
    );
  }

  /**
   * Takes up a run that an earlier process left unfinished, from the phase
   * resumePoint() allows (see each phase's `resumable`). Throws when it may not be resumed.
   */
  async resume(record: RunRecord, job: JobConfig): Promise<StartedRun> {
    const point = resumePoint(record, resumePolicy(job.target.kind));
    if (!point.ok) throw new RefresherError('USAGE', `run ${record.id} cannot be resumed: ${point.reason}`);
    const now = this.#deps.clock.now();
    const started = await this.#open(
      job,
      record.id,
      now,
      (_target, queued) => {
        const resumed = resumeRun(record, now, point.phase);
        return queued ? { ...resumed, status: 'queued' } : resumed;
      },
      record,
    );
    this.#deps.log.info({ job: job.name, runId: record.id, fromPhase: point.phase }, 'resuming an unfinished run');
    return started;
  }

  /** Takes the job's lock and a slot if one is free, saves the record `build` makes, and launches the run. */
  async #open(
    job: JobConfig,
    id: string,
    now: Date,
    build: (target: Target, queued: boolean) => RunRecord,
    resuming?: RunRecord,
  ): Promise<StartedRun> {
    const { gate, locks, store } = this.#deps;
    const lock = locks.acquire(job.name, id, now);
    let slot: Release | undefined;
    try {
      const target = this.#deps.targetFor(job);
      if (resuming) {
        const refusal = await target.resumeRefusal?.(resuming);
        if (refusal) throw new RefresherError('USAGE', `run ${resuming.id} cannot be resumed: ${refusal}`);
      }
      await this.#settle(lock, target, resuming?.id);
      slot = gate?.tryAcquire(job);
      const run = build(target, gate !== undefined && slot === undefined);
      await store.save(run);
      if (run.status === 'queued') this.#emit({ type: 'run-queued', run });
      return this.#launch(run, job, target, lock, slot);
    } catch (error) {
      slot?.();
      lock.release();
      throw error;
    }
  }

  /** Settles the run of a dead lock holder and cleans up after it (see settle.ts). */
  async #settle(lock: JobLock, target: Target, resuming?: string): Promise<void> {
    const settled = await settlePrevious({ ...this.#deps, lock, target, ...(resuming ? { resuming } : {}) });
    if (settled) this.#emit({ type: 'run-finished', run: settled });
  }

  /** When no live process holds the job's lock: settles the run of a holder that died, and cleans up after it. */
  settleStale(job: JobConfig): Promise<boolean> {
    return settleStaleLock({ ...this.#deps, job, settle: (lock, target) => this.#settle(lock, target) });
  }

  #launch(run: RunRecord, job: JobConfig, target: Target, lock: JobLock, slot: Release | undefined): StartedRun {
    const abort = new AbortController();
    this.#aborts.set(run.id, abort);
    this.#wakes.set(run.id, new AbortController());
    const done = this.#drive(run, job, target, abort.signal, slot).finally(() => {
      this.#aborts.delete(run.id);
      this.#cancels.delete(run.id);
      this.#wakes.delete(run.id);
      this.#active.delete(run.id);
      lock.release();
    });
    this.#active.set(run.id, done);
    return { run, done };
  }

  async run(job: JobConfig, trigger: Trigger, options: { dryRun?: boolean; operation?: RunOperation } = {}): Promise<RunRecord> {
    return (await this.start(job, trigger, options)).done;
  }

  /**
   * Cancels a run this runner is doing: it stops at its next phase boundary
   * (a queued run stops waiting at once) and ends `cancelled`. False when the
   * run is not this runner's, or has already ended.
   */
  cancel(runId: string, cancellation: Cancellation): boolean {
    if (!this.#aborts.has(runId)) return false;
    if (!this.#cancels.has(runId)) {
      this.#cancels.set(runId, cancellation);
      this.#wakes.get(runId)?.abort(new Error(`cancelled by ${cancellation.by}`));
    }
    return true;
  }

  /** Asks every running phase to stop (used on shutdown). */
  abortAll(reason: string): void {
    for (const abort of this.#aborts.values()) abort.abort(new Error(reason));
  }

  /**
   * Stops every run at its next phase boundary (used on shutdown): the phase
   * under way finishes, the record is saved with `paused`, and `done` settles.
   * Queued runs stop waiting. No new phase starts afterwards.
   */
  pauseAll(reason: string): void {
    if (!this.#pause.signal.aborted) this.#pause.abort(new Error(reason));
  }

  /** Runs started by this runner that have not settled yet. */
  get activeCount(): number {
    return this.#active.size;
  }

  /** Settles when every run started so far has finished or paused. */
  async idle(): Promise<void> {
    while (this.#active.size > 0) await Promise.allSettled([...this.#active.values()]);
  }

  #emit(event: RunEvent): void {
    try {
      this.#deps.onEvent?.(event);
    } catch (error) {
      // A broken listener (display, notifier) must never fail a refresh.
      this.#deps.log.warn({ err: error }, 'run event listener failed');
    }
  }

  async #drive(initial: RunRecord, job: JobConfig, target: Target, signal: AbortSignal, slot: Release | undefined): Promise<RunRecord> {
    let release = slot;
    try {
      const admitted = await this.#admit(initial, job, signal, (r) => {
        release = r;
      });
      if (admitted.status !== 'running' || admitted.paused) return admitted;
      const { sql, clock } = this.#deps;
      const log = this.#deps.log.child({ job: admitted.job, runId: admitted.id });
      this.#emit({ type: 'run-started', run: admitted });
      log.info(
        { trigger: admitted.trigger, dryRun: admitted.dryRun, target: admitted.target.summary, resumed: admitted.resumed?.at(-1) },
        'run started',
      );
      const ctx = await prepareRun({ job, target, sql, clock, log, signal, run: admitted });
      return await this.#phases(admitted, ctx);
    } finally {
      release?.();
    }
  }

  /** Waits in the gate's queue when the run is queued; returns the run begun, or stopped (paused or interrupted) while waiting. */
  async #admit(run: RunRecord, job: JobConfig, signal: AbortSignal, onSlot: (release: Release) => void): Promise<RunRecord> {
    const { clock, store, gate } = this.#deps;
    if (run.status !== 'queued') return run;
    try {
      if (!gate) throw new Error('a queued run needs a gate');
      const wake = this.#wakes.get(run.id)?.signal;
      onSlot(await gate.acquire(job, AbortSignal.any([signal, this.#pause.signal, ...(wake ? [wake] : [])])));
    } catch (error) {
      const cancel = this.#cancels.get(run.id);
      if (cancel) {
        const stopped = cancelRun(run, clock.now(), cancel);
        await store.save(stopped);
        this.#emit({ type: 'run-finished', run: stopped });
        return stopped;
      }
      const reason = String((signal.reason ?? this.#pause.signal.reason ?? error)?.message ?? error);
      const stopped = signal.aborted
        ? interruptRun(run, clock.now(), `stopped while queued: ${reason}`)
        : pauseRun(run, clock.now(), `stopped while queued: ${reason}`);
      await store.save(stopped);
      if (stopped.status === 'interrupted') this.#emit({ type: 'run-finished', run: stopped });
      return stopped;
    }
    const begun = beginRun(run, clock.now());
    await store.save(begun);
    return begun;
  }

  /** Walks the phase table from the first pending phase; pauses between phases when asked. */
  async #phases(initial: RunRecord, ctx: RunContext): Promise<RunRecord> {
    const { clock, store } = this.#deps;
    const { log } = ctx;
    let run = initial;
    for (const phase of PHASE_TABLE) {
      if (run.phases.find((p) => p.name === phase.name)?.status !== 'pending') continue;
      if (run.dryRun && !phase.runsInDryRun) {
        run = skipPhase(run, phase.name, 'dry run: nothing is changed');
        continue;
      }
      const cancel = this.#cancels.get(run.id);
      if (cancel) {
        run = cancelRun(run, clock.now(), cancel);
        await store.save(run);
        log.warn({ cancelledBy: cancel.by, reason: cancel.reason, copyIsDown: copyIsDown(run) }, 'run cancelled');
        break;
      }
      if (this.#pause.signal.aborted) {
        run = pauseRun(run, clock.now(), String(this.#pause.signal.reason?.message ?? this.#pause.signal.reason));
        await store.save(run);
        log.info({ nextPhase: run.paused?.nextPhase }, 'run paused between phases');
        return run;
      }
      run = await this.#phase(phase, run, ctx);
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
    this.#emit({ type: 'run-finished', run });
    return run;
  }

  /**
   * Saves the record or stops the run with an error that says what happened:
   * without a record, a crash could not be repaired by the next run, so no
   * further phase may start. The record stays as last saved; whoever takes
   * the job's lock next marks it interrupted.
   */
  async #save(run: RunRecord, consequence: string): Promise<void> {
    try {
      await this.#deps.store.save(run);
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      this.#deps.log.error({ runId: run.id, err: error }, 'could not save the run record');
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
  async #failureNote(run: RunRecord, ctx: RunContext, targetContext: PhaseContext, message: string): Promise<string> {
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
  async #phase(phase: Phase, before: RunRecord, ctx: RunContext): Promise<RunRecord> {
    const { clock } = this.#deps;
    const name = phase.name;
    const started = startPhase(before, name, clock.now());
    // A phase starts only once the record says so: a kill during it must leave a record that says where it stopped.
    await this.#save(started, `${name} was not started`);
    this.#emit({ type: 'phase-started', run: started, phase: name });
    const log = ctx.log.child({ phase: name });
    log.info(`${name} started`);
    const targetContext: PhaseContext = {
      runId: started.id,
      run: started,
      log,
      signal: ctx.signal,
      progress: (detail) => this.#emit({ type: 'progress', run: started, phase: name, detail }),
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
      run = failRun(run, { ...runError, message: await this.#failureNote(run, ctx, targetContext, runError.message) }, clock.now());
      log.error({ failureClass: runError.class, hint: runError.hint, details: runError.details }, runError.message);
    }
    await this.#save(run, `${name} ${result.ok ? 'succeeded' : 'failed'}, and no later phase was started`);
    this.#emit({ type: 'phase-finished', run, phase: name });
    return run;
  }
}
