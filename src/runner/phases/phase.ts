import type { JobConfig } from '../../config/types.js';
import { PhaseFailure } from '../../errors.js';
import type { FailureClass } from '../../failures.js';
import type { PhaseContext } from '../../ports.js';
import type { Check } from '../../run/facts.js';
import type { PhaseDetail, PhaseName, RunOperation, RunRecord, TargetDescription } from '../../run/record.js';
import type { Learned, RunContext } from '../context.js';

export type TargetKind = JobConfig['target']['kind'];

/** What a phase gets: the run's context, the record as it stood when the phase started, and the context the target's methods take. */
export interface PhaseRun extends RunContext {
  readonly record: RunRecord;
  readonly targetContext: PhaseContext;
}

/** The record fields a phase may fill in. */
export type RecordPatch = Partial<Pick<RunRecord, 'preflight' | 'snapshot' | 'masking' | 'verification'>>;

/**
 * A phase's outcome. A failure keeps its patch: the checks or the verification
 * that made it fail belong in the record too. A phase may also throw (a target
 * call that failed); the runner classifies what it throws.
 */
export type PhaseResult =
  | { ok: true; patch?: RecordPatch; detail?: PhaseDetail; learned?: Learned }
  | { ok: false; patch?: RecordPatch; failure: PhaseFailure };

export interface Phase {
  readonly name: PhaseName;
  /** Whether the phase changes the target (after it, the old copy may be gone). */
  readonly changesTarget: boolean;
  /** Whether a dry run runs it; a dry run changes nothing and verifies nothing. */
  readonly runsInDryRun: boolean;
  /**
   * Whether a restarted service may take a run up again at this phase, for
   * each target kind: the phase can be redone from its start after the process
   * running it died or stopped.
   */
  readonly resumable: Readonly<Record<TargetKind, boolean>>;
  /**
   * Whether a run of this job goes through the phase; default: every refresh. The record lists only
   * the phases that apply (strategy recreate: teardown and clone; blueGreen: clone-beside, swap,
   * cleanup-previous; a rollback run: rollback alone).
   */
  appliesTo?(job: JobConfig, operation: RunOperation): boolean;
  /** What the phase will do, in words, for `plan`. */
  plan(job: JobConfig, target: TargetDescription): string;
  run(ctx: PhaseRun): Promise<PhaseResult>;
}

/** Checks that do not pass and are not mere warnings. */
export function failingChecks(checks: readonly Check[]): Check[] {
  return checks.filter((c) => !c.ok && c.severity !== 'warning');
}

/** Failed checks as one failure: the message names each check, the details list one per line. */
export function checksFailure(failing: readonly Check[], failureClass: FailureClass): PhaseFailure {
  const lines = failing.map((c) => `${c.name}: ${c.message}`);
  return new PhaseFailure(failureClass, lines.join('; '), { details: lines });
}
