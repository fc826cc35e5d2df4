import { randomBytes } from 'node:crypto';
import { FAILURE_HINTS, type FailureClass } from '../failures.js';
import type { MaskingRecord } from '../mask/record.js';
import type { Check, DatabaseFigures, Verification } from './facts.js';
import { TARGET_DOWN, targetLeftDown } from './target-down.js';

/**
 * The run record and its transitions. Pure: each function takes a record and
 * returns a new one, and refuses transitions that make no sense (finishing a
 * phase that never started, finishing a run twice), the way pg-boss guards
 * its job states.
 */

export const PHASES = [
  'preflight',
  'snapshot',
  'teardown',
  'clone',
  'clone-beside',
  'start',
  'neutralise',
  'prepare',
  'mask',
  'open',
  'verify',
  'swap',
  'cleanup-previous',
  'rollback',
] as const;

/** The phases of a refresh with strategy recreate: what a record holds when newRun() is not told otherwise. */
export const RECREATE_PHASES: readonly PhaseName[] = [
  'preflight',
  'snapshot',
  'teardown',
  'clone',
  'start',
  'neutralise',
  'prepare',
  'mask',
  'open',
  'verify',
];

/** What a run does: refresh the copy (the default), or switch back to the previous copy of a blueGreen job. */
export type RunOperation = 'refresh' | 'rollback';
export type PhaseName = (typeof PHASES)[number];

/**
 * What a target kind allows when a run is taken up again (from the phase
 * table, src/runner/phases): the phases it may resume at, and the phases that
 * change the target (after which the old copy may be gone).
 */
export interface ResumePolicy {
  resumable: ReadonlySet<PhaseName>;
  changesTarget: ReadonlySet<PhaseName>;
}

export interface TargetDescription {
  kind: string;
  /** One line for people, e.g. "local data directory /srv/qa on 127.0.0.1:5433". */
  summary: string;
  /** Structured details for plan output and the run record. No secrets. */
  details: Record<string, unknown>;
  /** What the target-specific phases will do, in words, for `plan`. */
  steps: { teardown: string; clone: string; start: string };
}

/** Anything a phase wants recorded about what it did. */
export type PhaseDetail = Record<string, unknown>;

/** Why a scheduled run did not happen. */
export type SkipReason = 'overlap' | 'suspended' | 'missed';

export type PhaseStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped';
/**
 * queued: accepted, waiting for a free slot (server.maxConcurrentRuns, per source);
 * skipped: a scheduled run that did not happen (overlap, suspended, missed): no phase ran.
 */
export const RUN_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'interrupted', 'skipped', 'cancelled'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const TERMINAL_RUN_STATUSES: ReadonlySet<RunStatus> = new Set(['succeeded', 'failed', 'interrupted', 'skipped', 'cancelled']);

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
  /** For scheduled runs: the schedule and zone that produced scheduledFor, so a changed schedule is not mistaken for missed runs. */
  schedule?: string;
  timezone?: string;
}

export interface RunError {
  phase: PhaseName;
  class: FailureClass;
  message: string;
  hint: string;
  /** Evidence: the log lines or checks behind the classification. */
  details?: string[];
  /** Set when the run ended after teardown began and before a new copy started: the target has no copy (TARGET_DOWN). */
  targetDown?: string;
}

export interface RunRecord {
  schemaVersion: 1;
  id: string;
  job: string;
  trigger: Trigger;
  dryRun: boolean;
  /** Set on a rollback run (`db-refresher rollback`); absent on a refresh. */
  operation?: 'rollback';
  status: RunStatus;
  createdAt: string;
  /** When the first phase could start (after waiting in the queue). */
  startedAt?: string;
  finishedAt?: string;
  /** From startedAt to finishedAt: the refresh itself, without the wait in the queue (as the duration metric). */
  durationMs?: number;
  /** How long the run waited in the queue for a free slot (server.maxConcurrentRuns); 0 when it started at once. */
  queuedMs?: number;
  source: { host: string; port: number; user: string };
  target: TargetDescription;
  phases: PhaseRecord[];
  preflight?: Check[];
  /** Source figures taken just before teardown; the age of the copy's data starts at takenAt. */
  snapshot?: { takenAt: string; databases: DatabaseFigures[] };
  /** What the mask phase changed: per table, rows masked, duration and strategy per column. Never a value. */
  masking?: MaskingRecord;
  verification?: Verification;
  error?: RunError;
  /** Why a skipped run did not happen. */
  skip?: { reason: SkipReason; detail?: string };
  /**
   * Set when the service stopped the run between two phases (shutdown): the
   * record is consistent and the run can go on from `nextPhase` when the
   * service starts again, if that phase is safe to resume.
   */
  paused?: { at: string; reason: string; nextPhase: PhaseName };
  /** Each time a restarted service took the run up again, and from which phase. */
  resumed?: Array<{ at: string; fromPhase: PhaseName }>;
  /** Who cancelled the run, when and why (POST /api/v1/runs/{id}/cancel); the run stops at its next safe point. */
  cancelled?: Cancellation;
  /** Set by a history store that dropped the bulky parts (checks, figures, details) of an older record. */
  compacted?: boolean;
}

/** What newRunId makes. Lock holders that are not runs (start-up recovery, the previous-copy sweep) do not match. */
export const RUN_ID_PATTERN = /^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{6}$/;

export function isRunId(id: string): boolean {
  return RUN_ID_PATTERN.test(id);
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
  /** Waits for a free slot before its first phase. */
  queued?: boolean;
  /** The phases this run goes through (the job's strategy and the operation decide); default RECREATE_PHASES. */
  phases?: readonly PhaseName[];
  operation?: RunOperation;
}): RunRecord {
  const createdAt = input.now.toISOString();
  return {
    schemaVersion: 1,
    id: input.id,
    job: input.job,
    trigger: input.trigger,
    dryRun: input.dryRun,
    ...(input.operation === 'rollback' ? { operation: 'rollback' as const } : {}),
    status: input.queued ? 'queued' : 'running',
    createdAt,
    ...(input.queued ? {} : { startedAt: createdAt }),
    source: input.source,
    target: input.target,
    phases: (input.phases ?? RECREATE_PHASES).map((name) => ({ name, status: 'pending' })),
  };
}

/** A scheduled run that did not happen: terminal at once, every phase skipped with the reason. */
export function newSkippedRun(input: {
  id: string;
  job: string;
  trigger: Trigger;
  now: Date;
  reason: SkipReason;
  detail?: string;
  source: RunRecord['source'];
  target: TargetDescription;
}): RunRecord {
  const at = input.now.toISOString();
  const why = input.detail ? `${input.reason}: ${input.detail}` : input.reason;
  return {
    schemaVersion: 1,
    id: input.id,
    job: input.job,
    trigger: input.trigger,
    dryRun: false,
    status: 'skipped',
    createdAt: at,
    finishedAt: at,
    durationMs: 0,
    source: input.source,
    target: input.target,
    phases: PHASES.map((name) => ({ name, status: 'skipped', reason: why })),
    skip: { reason: input.reason, ...(input.detail ? { detail: input.detail } : {}) },
  };
}

/** A queued run got its slot. */
export function beginRun(run: RunRecord, now: Date): RunRecord {
  if (run.status !== 'queued') throw new TransitionError(`run ${run.id} is ${run.status}, not queued`);
  return { ...run, status: 'running', startedAt: now.toISOString(), queuedMs: now.getTime() - Date.parse(run.createdAt) };
}

/** The first phase still to do, if any. */
export function nextPhase(run: RunRecord): PhaseName | undefined {
  return run.phases.find((p) => p.status === 'pending' || p.status === 'running')?.name;
}

/** Stops a run between two phases (service shutdown). It stays unfinished, marked with where it can go on. */
export function pauseRun(run: RunRecord, now: Date, reason: string): RunRecord {
  assertRunning(run);
  const running = run.phases.find((p) => p.status === 'running');
  if (running) throw new TransitionError(`phase ${running.name} is running; a run can only pause between phases`);
  const next = nextPhase(run);
  if (!next) throw new TransitionError(`run ${run.id} has no phase left to pause before`);
  return { ...run, paused: { at: now.toISOString(), reason, nextPhase: next } };
}

/**
 * Where a run left unfinished by a previous process can go on, given the
 * phases its target can safely redo. A phase that was running when the
 * process died is redone from its start, so it must be one of those.
 */
export function resumePoint(run: RunRecord, policy: ResumePolicy): { ok: true; phase: PhaseName } | { ok: false; reason: string } {
  if (TERMINAL_RUN_STATUSES.has(run.status)) return { ok: false, reason: `run is already ${run.status}` };
  const next = nextPhase(run);
  if (!next) return { ok: false, reason: 'no phase was left to run' };
  const running = run.phases.find((p) => p.status === 'running');
  const where = running ? `while ${next} was running` : run.status === 'queued' ? 'before the run started' : `before ${next}`;
  if (run.dryRun && !running && next !== 'preflight') return { ok: false, reason: `the service stopped ${where} of a dry run` };
  if (!policy.resumable.has(next)) {
    const changed = run.phases.some((p) => policy.changesTarget.has(p.name) && (p.status === 'succeeded' || p.status === 'running'));
    const state = changed ? 'the target may be incomplete; run the job again' : 'nothing was changed on the target; run the job again';
    return { ok: false, reason: `the service stopped ${where}, which cannot be resumed safely: ${state}` };
  }
  return { ok: true, phase: next };
}

/** Takes a run up again from its resume point: a phase left running starts over; the pause mark is cleared. */
export function resumeRun(run: RunRecord, now: Date, from: PhaseName): RunRecord {
  assertRunning(run);
  if (nextPhase(run) !== from) throw new TransitionError(`run ${run.id} cannot resume from ${from}`);
  const { paused: _paused, ...rest } = run;
  return {
    ...rest,
    status: 'running',
    phases: run.phases.map((p) =>
      p.status === 'running' ? { name: p.name, status: 'pending', reason: `restarted after an interruption at ${now.toISOString()}` } : p,
    ),
    resumed: [...(run.resumed ?? []), { at: now.toISOString(), fromPhase: from }],
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
  return finish({ ...next, error: withTargetState(next, error) }, 'failed', now);
}

/** Says in the error itself when the target was left without a copy. */
function withTargetState(run: RunRecord, error: RunError): RunError {
  return targetLeftDown(run.phases) ? { ...error, targetDown: TARGET_DOWN } : error;
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
  next = { ...next, error: withTargetState(next, { phase, class: 'interrupted', message: reason, hint: FAILURE_HINTS.interrupted }) };
  return finish(next, 'interrupted', now);
}

/** Who cancelled a run, when and why. */
export interface Cancellation {
  by: string;
  at: string;
  reason?: string;
}

/**
 * A run stopped at a safe point because someone cancelled it: the phases not
 * yet begun are skipped, and the record says who and why.
 */
export function cancelRun(run: RunRecord, now: Date, cancellation: Cancellation): RunRecord {
  const why = `cancelled by ${cancellation.by}${cancellation.reason ? `: ${cancellation.reason}` : ''}`;
  const next: RunRecord = {
    ...run,
    cancelled: cancellation,
    phases: run.phases.map((p) => (p.status === 'pending' ? { ...p, status: 'skipped', reason: why } : p)),
  };
  return finish(next, 'cancelled', now);
}

/** Whether stopping the run now leaves the target without a copy: teardown began and no new copy was started. */
export function copyIsDown(run: RunRecord): boolean {
  const teardown = run.phases.find((p) => p.name === 'teardown');
  const start = run.phases.find((p) => p.name === 'start');
  return teardown !== undefined && teardown.status !== 'pending' && teardown.status !== 'skipped' && start?.status !== 'succeeded';
}

function finish(run: RunRecord, status: RunStatus, now: Date): RunRecord {
  assertRunning(run);
  const finishedAt = now.toISOString();
  // A run stopped while queued never started: it waited the whole time and ran for none of it.
  const startedAt = run.startedAt ?? finishedAt;
  const queuedMs = run.queuedMs ?? Date.parse(startedAt) - Date.parse(run.createdAt);
  return { ...run, status, finishedAt, durationMs: now.getTime() - Date.parse(startedAt), queuedMs };
}

/** The phase that was last under way or completed, for resumption and messages. */
export function currentPhase(run: RunRecord): PhaseRecord | undefined {
  return (
    run.phases.find((p) => p.status === 'running') ??
    [...run.phases].reverse().find((p) => p.status !== 'pending' && p.status !== 'skipped')
  );
}
