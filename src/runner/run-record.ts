import { randomBytes } from 'node:crypto';
import { FAILURE_HINTS, type FailureClass } from '../failures.js';
import type { Check, DatabaseFigures, PhaseDetail, TargetDescription } from '../ports.js';

/**
 * The run record and its transitions. Pure: each function takes a record and
 * returns a new one, and refuses transitions that make no sense (finishing a
 * phase that never started, finishing a run twice), the way pg-boss guards
 * its job states.
 */

export const PHASES = ['preflight', 'snapshot', 'teardown', 'clone', 'start', 'verify'] as const;
export type PhaseName = (typeof PHASES)[number];

/** Phases after which the old copy is gone: a crash there leaves no target. */
export const DESTRUCTIVE_PHASES: ReadonlySet<PhaseName> = new Set(['teardown', 'clone', 'start']);

export type PhaseStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped';
export type RunStatus = 'running' | 'succeeded' | 'failed' | 'interrupted';
export const TERMINAL_RUN_STATUSES: ReadonlySet<RunStatus> = new Set(['succeeded', 'failed', 'interrupted']);

export interface PhaseRecord {
  name: PhaseName;
  status: PhaseStatus;
  startedAt?: string;
  finishedAt?: string;
  durationMs?: number;
  detail?: PhaseDetail;
  /** Why a phase was skipped (dry run, an earlier failure). */
  reason?: string;
}

export interface Trigger {
  kind: 'cli' | 'http' | 'schedule' | 'catch-up';
  /** Who asked: a user name, a token name, or the scheduler. */
  by?: string;
  reason?: string;
  /** For scheduled runs: the fire time the run belongs to. */
  scheduledFor?: string;
}

export interface RunError {
  phase: PhaseName;
  class: FailureClass;
  message: string;
  hint: string;
  /** Evidence: the log lines or checks behind the classification. */
  details?: string[];
}

export interface DatabaseVerification {
  database: string;
  source?: DatabaseFigures;
  copy?: DatabaseFigures;
  checks: Check[];
}

export interface Verification {
  ok: boolean;
  databases: DatabaseVerification[];
  checks: Check[];
}

export interface RunRecord {
  schemaVersion: 1;
  id: string;
  job: string;
  trigger: Trigger;
  dryRun: boolean;
  status: RunStatus;
  createdAt: string;
  finishedAt?: string;
  durationMs?: number;
  source: { host: string; port: number; user: string };
  target: TargetDescription;
  phases: PhaseRecord[];
  preflight?: Check[];
  /** Source figures taken just before teardown; the age of the copy's data starts at takenAt. */
  snapshot?: { takenAt: string; databases: DatabaseFigures[] };
  verification?: Verification;
  error?: RunError;
}

export function newRunId(now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('.', '');
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

export function newRun(input: {
  id: string;
  job: string;
  trigger: Trigger;
  dryRun: boolean;
  now: Date;
  source: RunRecord['source'];
  target: TargetDescription;
}): RunRecord {
  return {
    schemaVersion: 1,
    id: input.id,
    job: input.job,
    trigger: input.trigger,
    dryRun: input.dryRun,
    status: 'running',
    createdAt: input.now.toISOString(),
    source: input.source,
    target: input.target,
    phases: PHASES.map((name) => ({ name, status: 'pending' })),
  };
}

export class TransitionError extends Error {
  override name = 'TransitionError';
}

function assertRunning(run: RunRecord): void {
  if (TERMINAL_RUN_STATUSES.has(run.status)) throw new TransitionError(`run ${run.id} is already ${run.status}`);
}

function updatePhase(run: RunRecord, name: PhaseName, change: (phase: PhaseRecord) => PhaseRecord): RunRecord {
  return { ...run, phases: run.phases.map((phase) => (phase.name === name ? change(phase) : phase)) };
}

function phaseOf(run: RunRecord, name: PhaseName): PhaseRecord {
  const phase = run.phases.find((p) => p.name === name);
  if (!phase) throw new TransitionError(`run ${run.id} has no phase ${name}`);
  return phase;
}

export function startPhase(run: RunRecord, name: PhaseName, now: Date): RunRecord {
  assertRunning(run);
  const phase = phaseOf(run, name);
  if (phase.status !== 'pending') throw new TransitionError(`phase ${name} is ${phase.status}, not pending`);
  return updatePhase(run, name, (p) => ({ ...p, status: 'running', startedAt: now.toISOString() }));
}

function endPhase(run: RunRecord, name: PhaseName, status: 'succeeded' | 'failed', now: Date, detail?: PhaseDetail): RunRecord {
  assertRunning(run);
  const phase = phaseOf(run, name);
  if (phase.status !== 'running' || !phase.startedAt) throw new TransitionError(`phase ${name} is ${phase.status}, not running`);
  const durationMs = now.getTime() - Date.parse(phase.startedAt);
  return updatePhase(run, name, (p) => ({
    ...p,
    status,
    finishedAt: now.toISOString(),
    durationMs,
    ...(detail && Object.keys(detail).length > 0 ? { detail } : {}),
  }));
}

export function succeedPhase(run: RunRecord, name: PhaseName, now: Date, detail?: PhaseDetail): RunRecord {
  return endPhase(run, name, 'succeeded', now, detail);
}

export function skipPhase(run: RunRecord, name: PhaseName, reason: string): RunRecord {
  assertRunning(run);
  const phase = phaseOf(run, name);
  if (phase.status !== 'pending') throw new TransitionError(`phase ${name} is ${phase.status}, not pending`);
  return updatePhase(run, name, (p) => ({ ...p, status: 'skipped', reason }));
}

/** Fails the running phase and the run; every phase not yet run is marked skipped. */
export function failRun(run: RunRecord, error: RunError, now: Date, detail?: PhaseDetail): RunRecord {
  let next = run;
  if (phaseOf(run, error.phase).status === 'running') next = endPhase(next, error.phase, 'failed', now, detail);
  next = {
    ...next,
    phases: next.phases.map((p) => (p.status === 'pending' ? { ...p, status: 'skipped', reason: `${error.phase} failed` } : p)),
  };
  return finish({ ...next, error }, 'failed', now);
}

export function succeedRun(run: RunRecord, now: Date): RunRecord {
  const unfinished = run.phases.filter((p) => p.status === 'pending' || p.status === 'running');
  if (unfinished.length > 0) throw new TransitionError(`phases not finished: ${unfinished.map((p) => p.name).join(', ')}`);
  return finish(run, 'succeeded', now);
}

/**
 * Marks a run that was left "running" by a process that died. The phase that
 * was running is marked failed, so the record says honestly where it stopped.
 */
export function interruptRun(run: RunRecord, now: Date, reason: string): RunRecord {
  const running = run.phases.find((p) => p.status === 'running');
  const phase = running?.name ?? run.phases.find((p) => p.status === 'pending')?.name ?? 'verify';
  let next: RunRecord = {
    ...run,
    phases: run.phases.map((p) =>
      p.status === 'running'
        ? {
            ...p,
            status: 'failed',
            finishedAt: now.toISOString(),
            ...(p.startedAt ? { durationMs: now.getTime() - Date.parse(p.startedAt) } : {}),
            reason,
          }
        : p.status === 'pending'
          ? { ...p, status: 'skipped', reason }
          : p,
    ),
  };
  next = { ...next, error: { phase, class: 'interrupted', message: reason, hint: FAILURE_HINTS.interrupted } };
  return finish(next, 'interrupted', now);
}

function finish(run: RunRecord, status: RunStatus, now: Date): RunRecord {
  assertRunning(run);
  return { ...run, status, finishedAt: now.toISOString(), durationMs: now.getTime() - Date.parse(run.createdAt) };
}

/** The phase that was last under way or completed, for resumption and messages. */
export function currentPhase(run: RunRecord): PhaseRecord | undefined {
  return (
    run.phases.find((p) => p.status === 'running') ??
    [...run.phases].reverse().find((p) => p.status !== 'pending' && p.status !== 'skipped')
  );
}
