/**
 * The phase table: the steps of every refresh, in order.
 *
 * Glossary
 * - run: one execution of a job, from preflight to verification. The runner
 *   drives it through the phases below.
 * - phase: one step of a run. Each is an object in its own file in this folder:
 *   its name, whether it changes the target, whether a dry run runs it, for
 *   which target kinds a restarted service may take a run up again at it, what
 *   `plan` says it does, and one function from the run context to a result
 *   (a patch to the record plus the phase's detail, or a classified failure).
 * - target: the copy each run replaces (a local data directory, a CNPG
 *   Cluster), behind the Target port (src/ports.ts). Target-specific phases
 *   call one of its methods; the target keeps nothing between them.
 * - record: the run record (src/run/record.ts), saved before and after every
 *   phase, so a crash leaves a record that says where the run stood and a
 *   restarted service can resume from it.
 *
 * Design: the runner knows nothing about any one phase. It (walk.ts) walks this table:
 * skips what a dry run does not run, pauses between phases on shutdown, marks
 * the phase started (saved), calls its `run`, then merges the patch and marks
 * it succeeded or failed (saved). Adding a phase is one new file here plus one
 * line in PHASE_TABLE; its name joins the record's vocabulary (PHASES in
 * src/run/record.ts, which the published webhook schema lists), and a test
 * checks that the two agree.
 */
import type { JobConfig } from '../../config/types.js';
import type { PhaseName, ResumePolicy, RunOperation, TargetDescription } from '../../run/record.js';
import { cleanupPrevious } from './cleanup-previous.js';
import { clone } from './clone.js';
import { cloneBeside } from './clone-beside.js';
import { mask } from './mask.js';
import { neutralise } from './neutralise.js';
import { open } from './open.js';
import type { Phase, TargetKind } from './phase.js';
import { preflight } from './preflight.js';
import { prepare } from './prepare.js';
import { rollback } from './rollback.js';
import { snapshot } from './snapshot.js';
import { start } from './start.js';
import { swap } from './swap.js';
import { teardown } from './teardown.js';
import { verify } from './verify.js';

export const PHASE_TABLE: readonly Phase[] = [
  preflight,
  snapshot,
  teardown,
  clone,
  cloneBeside,
  start,
  neutralise,
  prepare,
  mask,
  open,
  verify,
  swap,
  cleanupPrevious,
  rollback,
];

/** The phases a run of this job goes through, in order. */
export function phasesFor(job: JobConfig, operation: RunOperation = 'refresh'): PhaseName[] {
  return PHASE_TABLE.filter((p) => (p.appliesTo ? p.appliesTo(job, operation) : operation === 'refresh')).map((p) => p.name);
}

/** Which phases a run on this kind of target may be taken up again at, and which ones change the target. */
export function resumePolicy(kind: TargetKind): ResumePolicy {
  return {
    resumable: new Set<PhaseName>(PHASE_TABLE.filter((p) => p.resumable[kind]).map((p) => p.name)),
    changesTarget: new Set<PhaseName>(PHASE_TABLE.filter((p) => p.changesTarget).map((p) => p.name)),
  };
}

/** What each phase will do, in words, for `plan`. */
export function planSteps(job: JobConfig, target: TargetDescription): Array<{ phase: PhaseName; action: string; destructive: boolean }> {
  const applies = new Set(phasesFor(job));
  return PHASE_TABLE.filter((p) => applies.has(p.name)).map((p) => ({
    phase: p.name,
    action: p.plan(job, target),
    destructive: p.changesTarget,
  }));
}
