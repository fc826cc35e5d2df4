import { inspectSource } from '../checks/source.js';
import { databasesToVerify, snapshotSource, verifyCopy } from '../checks/verify.js';
import type { JobConfig, VerifiedDatabase } from '../config/types.js';
import { isRefresherError, PhaseFailure, RefresherError } from '../errors.js';
import { classifyError, FAILURE_HINTS } from '../failures.js';
import type { Logger } from '../observe/logger.js';
import type { Clock, PhaseContext, PhaseDetail, RunStore, SourceFacts, SqlConnector, Target } from '../ports.js';
import type { JobLocks } from './lock.js';
import {
  DESTRUCTIVE_PHASES,
  failRun,
  newRun,
  newRunId,
  PHASES,
  type PhaseName,
  type RunError,
  type RunRecord,
  skipPhase,
  startPhase,
  succeedPhase,
  succeedRun,
  type Trigger,
} from './run-record.js';

/**
 * Drives one run through the phases. The run record is saved before and after
 * every phase, so a crash at any point leaves a record that says which phase
 * was under way. Phases share what they learn through `RunState`, and
 * everything a later phase needs is also in the record, so a restarted
 * service can resume from it.
 */

export type RunEvent =
  | { type: 'run-started'; run: RunRecord }
  | { type: 'phase-started'; run: RunRecord; phase: PhaseName }
  | { type: 'phase-finished'; run: RunRecord; phase: PhaseName }
  | { type: 'progress'; run: RunRecord; phase: PhaseName; detail: Record<string, unknown> }
  | { type: 'run-finished'; run: RunRecord };

export interface RunnerDeps {
  store: RunStore;
  locks: JobLocks;
  sql: SqlConnector;
  clock: Clock;
  log: Logger;
  targetFor(job: JobConfig): Target;
  onEvent?(event: RunEvent): void;
}

interface RunState {
  job: JobConfig;
  target: Target;
  facts?: SourceFacts;
  databases?: VerifiedDatabase[];
}

export interface StartedRun {
  run: RunRecord;
  done: Promise<RunRecord>;
}

export class Runner {
  readonly #deps: RunnerDeps;
  readonly #aborts = new Map<string, AbortController>();

  constructor(deps: RunnerDeps) {
    this.#deps = deps;
  }

  /** Takes the job's lock and starts a run; `done` settles with the finished record and never rejects. */
  async start(job: JobConfig, trigger: Trigger, options: { dryRun?: boolean } = {}): Promise<StartedRun> {
    const { clock, store } = this.#deps;
    const now = clock.now();
    const id = newRunId(now);
    const lock = this.#deps.locks.acquire(job.name, id, now);
    try {
      const target = this.#deps.targetFor(job);
      const run = newRun({
        id,
        job: job.name,
        trigger,
        dryRun: options.dryRun ?? false,
        now,
        source: { host: job.source.host, port: job.source.port, user: job.source.user },
        target: target.describe(),
      });
      await store.save(run);
      this.#emit({ type: 'run-started', run });
      const abort = new AbortController();
      this.#aborts.set(id, abort);
      const done = this.#drive(run, { job, target }, abort.signal).finally(() => {
        this.#aborts.delete(id);
        lock.release();
      });
      return { run, done };
    } catch (error) {
      lock.release();
      throw error;
    }
  }

  async run(job: JobConfig, trigger: Trigger, options: { dryRun?: boolean } = {}): Promise<RunRecord> {
    return (await this.start(job, trigger, options)).done;
  }

  /** Asks every running phase to stop (used on shutdown). */
  abortAll(reason: string): void {
    for (const abort of this.#aborts.values()) abort.abort(new Error(reason));
  }

  #emit(event: RunEvent): void {
    try {
      this.#deps.onEvent?.(event);
    } catch (error) {
      // A broken listener (display, notifier) must never fail a refresh.
      this.#deps.log.warn({ err: error }, 'run event listener failed');
    }
  }

  async #drive(initial: RunRecord, state: RunState, signal: AbortSignal): Promise<RunRecord> {
    const { clock, store } = this.#deps;
    const log = this.#deps.log.child({ job: initial.job, runId: initial.id });
    let run = initial;
    log.info({ trigger: run.trigger, dryRun: run.dryRun, target: run.target.summary }, 'run started');

    for (const phase of PHASES) {
      if (run.dryRun && (DESTRUCTIVE_PHASES.has(phase) || phase === 'verify')) {
        run = skipPhase(run, phase, 'dry run: nothing is changed');
        continue;
      }
      run = startPhase(run, phase, clock.now());
      await store.save(run);
      this.#emit({ type: 'phase-started', run, phase });
      const phaseLog = log.child({ phase });
      phaseLog.info(`${phase} started`);
      const ctx: PhaseContext = {
        runId: run.id,
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
    log.info({ status: run.status, durationMs: run.durationMs }, 'run finished');
    this.#emit({ type: 'run-finished', run });
    return run;
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
        const source = await inspectSource(state.job, sql);
        const checks = [...source.checks];
        if (source.facts) {
          state.facts = source.facts;
          checks.push(...(await state.target.preflight(source.facts, ctx)));
        }
        const record = { ...run, preflight: checks };
        const failing = checks.filter((c) => !c.ok && c.severity !== 'warning');
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
        const databases = state.databases ?? (await databasesToVerify(state.job, sql));
        const verification = await verifyCopy({
          job: state.job,
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
