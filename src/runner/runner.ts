import { refusesManualRuns } from '../config/job-rules.js';
import type { JobConfig } from '../config/types.js';
import { RefresherError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import type { Clock, Release, RunGate, RunStore, SqlConnector, Target } from '../ports.js';
import type { RunEvent } from '../run/events.js';
import {
  beginRun,
  type Cancellation,
  cancelRun,
  interruptRun,
  newRun,
  newRunId,
  pauseRun,
  type RunOperation,
  type RunRecord,
  resumePoint,
  resumeRun,
  type Trigger,
} from '../run/record.js';
import { prepareRun } from './context.js';
import type { JobLock, JobLocks } from './lock.js';
import { phasesFor, resumePolicy } from './phases/index.js';
import { settlePrevious, settleStaleLock } from './settle.js';
import { walkPhases } from './walk.js';

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
      return await walkPhases(
        {
          store: this.#deps.store,
          clock,
          emit: (event) => this.#emit(event),
          cancellation: (runId) => this.#cancels.get(runId),
          pause: this.#pause.signal,
        },
        admitted,
        ctx,
      );
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
}
