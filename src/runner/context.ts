import type { JobConfig, VerifiedDatabase } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { Clock, PhaseContext, SqlConnector, Target } from '../ports.js';
import type { Check, SourceFacts } from '../run/facts.js';
import type { RunRecord } from '../run/record.js';

/** What a phase learned that later phases of the same run use, and that the record does not hold as such. */
export interface Learned {
  facts?: SourceFacts;
  databases?: VerifiedDatabase[];
}

/**
 * Everything a run needs, prepared once by prepareRun() for a fresh run and a
 * resumed one alike. Phases read it; what one phase learns for a later one is
 * merged into `learned` by the runner (or is in the record).
 */
export interface RunContext {
  /** The job, with the source's credentials completed by the target when it keeps them (CNPG Secrets). */
  readonly job: JobConfig;
  /** The source as the target resolved it: the checks of that resolution, or what went wrong trying. */
  readonly source: { readonly checks: readonly Check[]; readonly error?: unknown };
  readonly target: Target;
  readonly sql: SqlConnector;
  readonly clock: Clock;
  readonly log: Logger;
  readonly signal: AbortSignal;
  readonly learned: Learned;
}

/**
 * Builds the run context. The target completes the source's credentials here,
 * once, before the first phase; a failure to do so is kept and reported by the
 * first phase that needs the source (preflight in a fresh run, snapshot or
 * verify in a resumed one), as it was before it became part of the context.
 */
export async function prepareRun(input: {
  job: JobConfig;
  target: Target;
  sql: SqlConnector;
  clock: Clock;
  log: Logger;
  signal: AbortSignal;
  run: RunRecord;
}): Promise<RunContext> {
  const { job, target, log, signal, run } = input;
  const base = { target, sql: input.sql, clock: input.clock, log, signal, learned: {} };
  if (!target.resolveSource) return { ...base, job, source: { checks: [] } };
  const ctx: PhaseContext = { runId: run.id, run, log, signal, progress: () => undefined };
  try {
    const resolved = await target.resolveSource(job.source, ctx);
    return { ...base, job: { ...job, source: resolved.source }, source: { checks: resolved.checks } };
  } catch (error) {
    return { ...base, job, source: { checks: [], error } };
  }
}
