import type { JobConfig } from '../config/types.js';
import { downtimeOf } from '../notify/render/message.js';
import type { JobSuspension } from '../ports.js';
import { type RunRecord, type RunStatus, TERMINAL_RUN_STATUSES, type Trigger } from '../run/record.js';

/**
 * What the API returns, built from records and config by pure functions.
 * Nothing here reads a Secret: job views list host, port, schedule and the
 * target's description (which by contract holds no secrets), and run records
 * serialize any Secret as its placeholder anyway.
 */

export interface RunSummary {
  id: string;
  job: string;
  status: RunStatus;
  dryRun: boolean;
  trigger: Trigger;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  durationMs?: number;
  /** The phase under way or last reached. */
  phase?: string;
  error?: { phase: string; class: string; message: string };
  skip?: RunRecord['skip'];
  paused?: RunRecord['paused'];
  /** When the source snapshot was taken: the age of the copy's data starts here. */
  snapshotTakenAt?: string;
  /** From the start of teardown to the end of start: how long the copy was unavailable. */
  downtimeMs?: number;
  /** Set when someone cancelled the run (POST /api/v1/runs/{id}/cancel). */
  cancelled?: RunRecord['cancelled'];
}

export function summarizeRun(run: RunRecord): RunSummary {
  const current =
    run.phases.find((p) => p.status === 'running') ??
    [...run.phases].reverse().find((p) => p.status === 'succeeded' || p.status === 'failed');
  return {
    id: run.id,
    job: run.job,
    status: run.status,
    dryRun: run.dryRun,
    trigger: run.trigger,
    createdAt: run.createdAt,
    ...(run.startedAt ? { startedAt: run.startedAt } : {}),
    ...(run.finishedAt ? { finishedAt: run.finishedAt } : {}),
    ...(run.durationMs !== undefined ? { durationMs: run.durationMs } : {}),
    ...(current ? { phase: current.name } : {}),
    ...(run.error ? { error: { phase: run.error.phase, class: run.error.class, message: run.error.message } } : {}),
    ...(run.skip ? { skip: run.skip } : {}),
    ...(run.paused ? { paused: run.paused } : {}),
    ...(run.snapshot ? { snapshotTakenAt: run.snapshot.takenAt } : {}),
    ...downtime(run),
    ...(run.cancelled ? { cancelled: run.cancelled } : {}),
  };
}

function downtime(run: RunRecord): { downtimeMs?: number } {
  const { downtimeMs } = downtimeOf(run);
  return downtimeMs !== undefined ? { downtimeMs } : {};
}

/** The run record as the API shows it: everything, with its links. */
export function runView(
  run: RunRecord,
  current?: CurrentRun,
): RunRecord & { links: { self: string; job: string }; live?: Pick<CurrentRun, 'phase' | 'progress'> } {
  // A record can be saved finished a moment before the board hears of it: a finished run is never live.
  const live =
    current?.id === run.id && !TERMINAL_RUN_STATUSES.has(run.status) ? { phase: current.phase, progress: current.progress } : undefined;
  return { ...run, ...(live ? { live } : {}), links: { self: runPath(run.id), job: `/api/v1/jobs/${run.job}` } };
}

export const runPath = (id: string) => `/api/v1/runs/${id}`;

export interface JobState {
  /** The run holding the job now (queued or running), if any. */
  current?: CurrentRun | undefined;
  lastRun?: RunSummary | undefined;
  lastSuccess?: RunSummary | undefined;
  /** Suspended or resumed through the API (kept in the history store); overrides the config's `suspend`. */
  suspension?: JobSuspension | undefined;
}

export type { JobSuspension };

/**
 * The run holding a job, as it is right now: the phase under way and the
 * latest progress its target reported (pg_basebackup's percentage for a local
 * copy, the Cluster's phase for CloudNativePG). Live only: not in the run record.
 */
export interface CurrentRun {
  id: string;
  status: RunStatus;
  phase?: string | undefined;
  /** When the phase under way began (for an ETA from the progress percentage). */
  phaseStartedAt?: string | undefined;
  progress?: { at: string; [detail: string]: unknown } | undefined;
}

export interface JobListItem {
  name: string;
  schedule: string | null;
  timezone: string;
  suspended: boolean;
  targetKind: string;
  nextRunAt: string | null;
  current: {
    id: string;
    status: RunStatus;
    phase: string | null;
    phaseStartedAt: string | null;
    progress: { at: string; [detail: string]: unknown } | null;
  } | null;
  lastRun: {
    id: string;
    status: RunStatus;
    dryRun: boolean;
    finishedAt: string | null;
    durationMs: number | null;
    downtimeMs: number | null;
    errorClass: string | null;
  } | null;
  /** When the source snapshot of the last successful refresh was taken: the copy's data is this old. */
  dataTakenAt: string | null;
}

/** Whether a job is suspended now: the state set through the API overrides the config until resumed. */
export function effectiveSuspend(job: JobConfig, state: JobState): boolean {
  return state.suspension ? state.suspension.suspended : job.suspend;
}

export function jobListItem(job: JobConfig, state: JobState, nextRunAt: Date | undefined): JobListItem {
  const last = state.lastRun;
  const current = state.current;
  const suspended = effectiveSuspend(job, state);
  return {
    name: job.name,
    schedule: job.schedule ?? null,
    timezone: job.timezone,
    suspended,
    targetKind: job.target.kind,
    nextRunAt: suspended ? null : (nextRunAt?.toISOString() ?? null),
    current: current
      ? {
          id: current.id,
          status: current.status,
          phase: current.phase ?? null,
          phaseStartedAt: current.phaseStartedAt ?? null,
          progress: current.progress ?? null,
        }
      : null,
    lastRun: last
      ? {
          id: last.id,
          status: last.status,
          dryRun: last.dryRun,
          finishedAt: last.finishedAt ?? null,
          durationMs: last.durationMs ?? null,
          downtimeMs: last.downtimeMs ?? null,
          errorClass: last.error?.class ?? null,
        }
      : null,
    dataTakenAt: state.lastSuccess?.snapshotTakenAt ?? null,
  };
}

export interface JobDetail {
  name: string;
  description: string | null;
  schedule: string | null;
  timezone: string;
  suspended: boolean;
  /** Set when the job was suspended or resumed through the API (this overrides the config's `suspend`). */
  suspension: JobSuspension | null;
  allowManualWhenSuspended: boolean;
  startingDeadlineSeconds: number;
  source: { host: string; port: number };
  target: { kind: string; summary: string };
  nextRuns: string[];
  warnings: string[];
  current: CurrentRun | null;
  lastRun: RunSummary | null;
  lastSuccess: RunSummary | null;
  links: { runs: string };
}

export function jobDetail(input: {
  job: JobConfig;
  state: JobState;
  targetSummary: string;
  nextRuns: readonly Date[];
  warnings: readonly string[];
}): JobDetail {
  const { job, state } = input;
  return {
    name: job.name,
    description: job.description ?? null,
    schedule: job.schedule ?? null,
    timezone: job.timezone,
    suspended: effectiveSuspend(job, state),
    suspension: state.suspension ?? null,
    allowManualWhenSuspended: job.allowManualWhenSuspended,
    startingDeadlineSeconds: job.startingDeadlineSeconds,
    source: { host: job.source.host, port: job.source.port },
    target: { kind: job.target.kind, summary: input.targetSummary },
    nextRuns: effectiveSuspend(job, state) ? [] : input.nextRuns.map((d) => d.toISOString()),
    warnings: [...input.warnings],
    current: state.current ?? null,
    lastRun: state.lastRun ?? null,
    lastSuccess: state.lastSuccess ?? null,
    links: { runs: `/api/v1/jobs/${job.name}/runs` },
  };
}

/** What asking to cancel a run led to. */
export type CancelOutcome =
  | { outcome: 'cancelling'; run: RunRecord; message: string }
  | { outcome: 'finished'; run: RunRecord }
  | { outcome: 'elsewhere'; run: RunRecord; message: string }
  | { outcome: 'not-found' };
