import { inspectSource } from '../checks/source.js';
import { databasesToVerify, snapshotSource, verifyCopy } from '../checks/verify.js';
import type { JobConfig, VerifiedDatabase } from '../config/types.js';
import { isRefresherError, PhaseFailure, RefresherError } from '../errors.js';
import { classifyError, FAILURE_HINTS } from '../failures.js';
import type { Logger } from '../observe/logger.js';
import type { Clock, PhaseContext, Release, RunGate, RunStore, SqlConnector, Target } from '../ports.js';
import type { RunEvent } from '../run/events.js';
import type { SourceFacts } from '../run/facts.js';
import {
  beginRun,
  type Cancellation,
  cancelRun,
  copyIsDown,
  DESTRUCTIVE_PHASES,
  failRun,
  interruptRun,
  newRun,
  newRunId,
  PHASES,
  type PhaseDetail,
  type PhaseName,
  pauseRun,
  type RunError,
  type RunRecord,
  resumePoint,
  resumeRun,
  skipPhase,
  startPhase,
  succeedPhase,
  succeedRun,
  type Trigger,
} from '../run/record.js';
import type { JobLock, JobLocks } from './lock.js';

/**
 * Drives one run through the phases. The run record is saved before and after
 * every phase, so a crash at any point leaves a record that says which phase
 * was under way. Phases share what they learn through `RunState`, and
 * everything a later phase needs is also in the record, so a restarted
 * service can resume from it.
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

/**
 * Phases a target can redo from their start after the process running them
 * died or stopped, so an unfinished run may go on from there. Local: starting
 * the copy (pg_ctl start is idempotent) and verifying it (read-only). A phase
 * not listed here (teardown, clone) leaves the run interrupted instead.
 */
export const RESUMABLE_PHASES: Readonly<Record<string, ReadonlySet<PhaseName>>> = {
  local: new Set<PhaseName>(['start', 'verify']),
  // CNPG: waiting for the new Cluster to become healthy only watches it, and verifying only reads.
  cnpg: new Set<PhaseName>(['start', 'verify']),
};

export function resumablePhases(job: JobConfig): ReadonlySet<PhaseName> {
  return RESUMABLE_PHASES[job.target.kind] ?? new Set();
}

interface RunState {
  job: JobConfig;
  target: Target;
  facts?: SourceFacts;
  databases?: VerifiedDatabase[];
  /** Whether the target has completed the source's credentials (done in preflight; again before a resumed phase). */
  sourceResolved?: boolean;
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
  async start(job: JobConfig, trigger: Trigger, options: { dryRun?: boolean } = {}): Promise<StartedRun> {
    if (job.suspend && !job.allowManualWhenSuspended && (trigger.kind === 'cli' || trigger.kind === 'http')) {
      throw new RefresherError('USAGE', `job "${job.name}" is suspended and its config does not allow manual runs while suspended`, {
        hint: 'Set suspend: false, or allowManualWhenSuspended: true, on the job.',
      });
    }
    const { clock, store } = this.#deps;
    const now = clock.now();
    const id = newRunId(now);
    const lock = this.#deps.locks.acquire(job.name, id, now);
    let slot: Release | undefined;
    try {
      const target = this.#deps.targetFor(job);
      slot = this.#deps.gate?.tryAcquire(job);
      const run = newRun({
        id,
        job: job.name,
        trigger,
        dryRun: options.dryRun ?? false,
        now,
        source: { host: job.source.host, port: job.source.port, user: job.source.user },
        target: target.describe(),
        queued: this.#deps.gate !== undefined && slot === undefined,
      });
      await store.save(run);
      return this.#launch(run, { job, target }, lock, slot);
    } catch (error) {
      slot?.();
      lock.release();
      throw error;
    }
  }

  /**
   * Takes up a run that an earlier process left unfinished, from the phase
   * resumePoint() allows (see RESUMABLE_PHASES). Throws when it may not be resumed.
   */
  async resume(record: RunRecord, job: JobConfig): Promise<StartedRun> {
    const point = resumePoint(record, resumablePhases(job));
    if (!point.ok) throw new RefresherError('USAGE', `run ${record.id} cannot be resumed: ${point.reason}`);
    const { clock, store } = this.#deps;
    const now = clock.now();
    const lock = this.#deps.locks.acquire(job.name, record.id, now);
    let slot: Release | undefined;
    try {
      const target = this.#deps.targetFor(job);
      slot = this.#deps.gate?.tryAcquire(job);
      const resumed = resumeRun(record, now, point.phase);
      const run: RunRecord = this.#deps.gate !== undefined && slot === undefined ? { ...resumed, status: 'queued' } : resumed;
      await store.save(run);
      this.#deps.log.info({ job: job.name, runId: run.id, fromPhase: point.phase }, 'resuming an unfinished run');
      return this.#launch(run, { job, target }, lock, slot);
    } catch (error) {
      slot?.();
      lock.release();
      throw error;
    }
  }

  #launch(run: RunRecord, state: RunState, lock: JobLock, slot: Release | undefined): StartedRun {
    const abort = new AbortController();
    this.#aborts.set(run.id, abort);
    this.#wakes.set(run.id, new AbortController());
    const done = this.#drive(run, state, abort.signal, slot).finally(() => {
      this.#aborts.delete(run.id);
      this.#cancels.delete(run.id);
      this.#wakes.delete(run.id);
      this.#active.delete(run.id);
      lock.release();
    });
    this.#active.set(run.id, done);
    return { run, done };
  }

  async run(job: JobConfig, trigger: Trigger, options: { dryRun?: boolean } = {}): Promise<RunRecord> {
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

  async #drive(initial: RunRecord, state: RunState, signal: AbortSignal, slot: Release | undefined): Promise<RunRecord> {
    let release = slot;
    try {
      const admitted = await this.#admit(initial, state, signal, (r) => {
        release = r;
      });
      if (admitted.status !== 'running' || admitted.paused) return admitted;
      return await this.#phases(admitted, state, signal);
    } finally {
      release?.();
    }
  }

  /** Waits in the gate's queue when the run is queued; returns the run begun, or stopped (paused or interrupted) while waiting. */
  async #admit(run: RunRecord, state: RunState, signal: AbortSignal, onSlot: (release: Release) => void): Promise<RunRecord> {
    const { clock, store, gate } = this.#deps;
    if (run.status !== 'queued') return run;
    try {
      if (!gate) throw new Error('a queued run needs a gate');
      const wake = this.#wakes.get(run.id)?.signal;
      onSlot(await gate.acquire(state.job, AbortSignal.any([signal, this.#pause.signal, ...(wake ? [wake] : [])])));
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

  async #phases(initial: RunRecord, state: RunState, signal: AbortSignal): Promise<RunRecord> {
    const { clock, store } = this.#deps;
    const log = this.#deps.log.child({ job: initial.job, runId: initial.id });
    let run = initial;
    this.#emit({ type: 'run-started', run });
    log.info({ trigger: run.trigger, dryRun: run.dryRun, target: run.target.summary, resumed: run.resumed?.at(-1) }, 'run started');

    for (const phase of PHASES) {
      if (run.phases.find((p) => p.name === phase)?.status !== 'pending') continue;
      if (run.dryRun && (DESTRUCTIVE_PHASES.has(phase) || phase === 'verify')) {
        run = skipPhase(run, phase, 'dry run: nothing is changed');
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
      run = startPhase(run, phase, clock.now());
      await store.save(run);
      this.#emit({ type: 'phase-started', run, phase });
      const phaseLog = log.child({ phase });
      phaseLog.info(`${phase} started`);
      const ctx: PhaseContext = {
        runId: run.id,
        run,
        log: phaseLog,
        signal,
        progress: (detail) => this.#emit({ type: 'progress', run, phase, detail }),
      };
      try {
        const { detail, record } = await this.#execute(phase, run, state, ctx);
        run = succeedPhase(record, phase, clock.now(), detail);
        phaseLog.info({ durationMs: run.phases.find((p) => p.name === phase)?.durationMs }, `${phase} succeeded`);
      } catch (error) {
        const runError = toRunError(phase, error, signal);
        const partial = error instanceof PhaseOutcomeError ? error.record : run;
        run = failRun(partial, runError, clock.now());
        phaseLog.error({ failureClass: runError.class, hint: runError.hint, details: runError.details }, runError.message);
      }
      await store.save(run);
      this.#emit({ type: 'phase-finished', run, phase });
      if (run.status !== 'running') break;
    }
    if (run.status === 'running') {
      run = succeedRun(run, clock.now());
      await store.save(run);
    }
    if (!run.dryRun && state.target.recordOutcome) {
      const finished = run;
      await state.target
        .recordOutcome(finished, { runId: finished.id, run: finished, log, signal, progress: () => undefined })
        .catch((error: unknown) => log.warn({ err: error }, 'could not record the outcome on the target'));
    }
    log.info({ status: run.status, durationMs: run.durationMs }, 'run finished');
    this.#emit({ type: 'run-finished', run });
    return run;
  }

  /**
   * A resumed run skips preflight, where the target completes the source's
   * credentials (CNPG reads them from Secrets); do that before the first phase
   * that talks to the source. A failing check fails the phase.
   */
  async #resolveSourceForResume(state: RunState, ctx: PhaseContext): Promise<void> {
    if (state.sourceResolved || !state.target.resolveSource) return;
    const resolved = await state.target.resolveSource(state.job.source, ctx);
    const failing = resolved.checks.filter((c) => !c.ok && c.severity !== 'warning');
    if (failing.length > 0) {
      throw new PhaseFailure(failing[0]?.failureClass ?? 'unknown', failing.map((c) => `${c.name}: ${c.message}`).join('; '));
    }
    state.job = { ...state.job, source: resolved.source };
    state.sourceResolved = true;
  }

  async #execute(
    phase: PhaseName,
    run: RunRecord,
    state: RunState,
    ctx: PhaseContext,
  ): Promise<{ detail?: PhaseDetail; record: RunRecord }> {
    const { sql, clock } = this.#deps;
    switch (phase) {
      case 'preflight': {
        const resolved = state.target.resolveSource ? await state.target.resolveSource(state.job.source, ctx) : undefined;
        if (resolved) state.job = { ...state.job, source: resolved.source };
        state.sourceResolved = true;
        const unresolved = resolved?.checks.filter((c) => !c.ok) ?? [];
        // Without its credentials the source cannot be asked anything meaningful.
        const source = unresolved.length > 0 ? { checks: [] } : await inspectSource(state.job, sql);
        const checks = [...(resolved?.checks ?? []), ...source.checks];
        if (source.facts) state.facts = source.facts;
        // The target's own checks run even when the source could not be asked: its safety rails matter most.
        checks.push(...(await state.target.preflight(source.facts, ctx)));
        const record = { ...run, preflight: checks };
        const failing = checks
          .filter((c) => !c.ok && c.severity !== 'warning')
          .sort((a, b) => Number(b.failureClass === 'unsafe-target') - Number(a.failureClass === 'unsafe-target'));
        if (failing.length > 0) {
          const first = failing[0];
          throw new PhaseOutcomeError(
            record,
            new PhaseFailure(first?.failureClass ?? 'unknown', failing.map((c) => `${c.name}: ${c.message}`).join('; '), {
              details: failing.map((c) => `${c.name}: ${c.message}`),
            }),
          );
        }
        return {
          record,
          detail: {
            checks: checks.length,
            sourceMajorVersion: source.facts?.majorVersion,
            sourceSystemIdentifier: source.facts?.systemIdentifier,
          },
        };
      }
      case 'snapshot': {
        await this.#resolveSourceForResume(state, ctx);
        const databases = await databasesToVerify(state.job, sql);
        state.databases = databases;
        const figures = await snapshotSource(state.job, databases, sql);
        return {
          record: { ...run, snapshot: { takenAt: clock.now().toISOString(), databases: figures } },
          detail: { databases: figures.map((f) => f.database) },
        };
      }
      case 'teardown':
        return { record: run, detail: await state.target.teardown(ctx) };
      case 'clone':
        return { record: run, detail: await state.target.clone(ctx) };
      case 'start':
        return { record: run, detail: await state.target.start(ctx) };
      case 'verify': {
        await this.#resolveSourceForResume(state, ctx);
        // A resumed run verifies exactly the databases its snapshot covered.
        const fromSnapshot = run.snapshot && state.job.verify.databases.length === 0 ? run.snapshot.databases : undefined;
        const databases =
          state.databases ??
          fromSnapshot?.map((f) => ({ name: f.database, requiredTables: [] })) ??
          (await databasesToVerify(state.job, sql));
        const owner = state.job.verify.owner ?? state.target.defaultOwner?.();
        const verification = await verifyCopy({
          job: owner ? { ...state.job, verify: { ...state.job.verify, owner } } : state.job,
          databases,
          sourceFigures: run.snapshot?.databases ?? [],
          target: state.target,
          sql,
        });
        const record = { ...run, verification };
        if (!verification.ok) {
          const failing = [...verification.databases.flatMap((d) => d.checks), ...verification.checks].filter((c) => !c.ok);
          throw new PhaseOutcomeError(
            record,
            new PhaseFailure('verification-failed', failing.map((c) => `${c.name}: ${c.message}`).join('; '), {
              details: failing.map((c) => `${c.name}: ${c.message}`),
            }),
          );
        }
        return { record, detail: { databases: verification.databases.length } };
      }
    }
  }
}

/** A phase failed, but produced record fields (checks, verification) that belong in the record anyway. */
class PhaseOutcomeError extends Error {
  readonly record: RunRecord;
  override readonly cause: PhaseFailure;

  constructor(record: RunRecord, cause: PhaseFailure) {
    super(cause.message);
    this.record = record;
    this.cause = cause;
  }
}

function toRunError(phase: PhaseName, error: unknown, signal: AbortSignal): RunError {
  const inner = error instanceof PhaseOutcomeError ? error.cause : error;
  if (signal.aborted) {
    return {
      phase,
      class: 'interrupted',
      message: `stopped during ${phase}: ${String(signal.reason?.message ?? signal.reason)}`,
      hint: FAILURE_HINTS.interrupted,
    };
  }
  if (inner instanceof PhaseFailure) {
    return {
      phase,
      class: inner.failureClass,
      message: inner.message,
      hint: inner.hint ?? FAILURE_HINTS[inner.failureClass],
      ...(inner.details.length ? { details: [...inner.details] } : {}),
    };
  }
  const failureClass = classifyError(inner);
  const message = inner instanceof Error ? inner.message : String(inner);
  return {
    phase,
    class: failureClass,
    message: isRefresherError(inner) ? inner.message : `${phase} failed: ${message}`,
    hint: (inner instanceof RefresherError && inner.hint) || FAILURE_HINTS[failureClass],
  };
}
