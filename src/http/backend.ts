import type { JobConfig } from '../config/types.js';
import type { RunRecord } from '../run/record.js';
import type { LiveListener } from './live-feed.js';
import type { CancelOutcome, CurrentRun, JobDetail, JobListItem, JobSuspension } from './views.js';

/** What the API needs from the service. */
export interface ApiBackend {
  jobs(): readonly JobConfig[];
  job(name: string): JobConfig | undefined;
  jobListItem(job: JobConfig): JobListItem;
  jobDetail(job: JobConfig): JobDetail;
  listRuns(job: string, options: { limit: number; before?: string }): Promise<RunRecord[]>;
  getRun(id: string): Promise<RunRecord | undefined>;
  /** Starts a run; throws JOB_BUSY (with the running run's id in `runningRunId`) and the like. */
  /** Starts a run now; `operation: rollback` switches a blueGreen job back to its previous copy. */
  trigger(job: JobConfig, input: { by: string; reason?: string; dryRun: boolean; operation?: 'rollback' }): Promise<RunRecord>;
  /** The run holding the job now, if any. */
  runningRunId(job: string): string | undefined;
  /** The run holding the job, live: phase and progress (see CurrentRun). */
  currentRun(job: string): CurrentRun | undefined;
  /** False once shutdown began: triggers get 503. */
  accepting(): boolean;
  readiness(): Promise<{ ready: boolean; checks: Record<string, { ok: boolean; message?: string }> }>;
  metricsText(): Promise<{ contentType: string; body: string }>;
  /**
   * Cancels a run at its next safe point: `cancelling` with what that means
   * for the copy, `finished` when it had already ended, `elsewhere` when
   * another process does it, `not-found`.
   */
  cancel(id: string, input: { by: string; reason?: string }): Promise<CancelOutcome>;
  /** Suspends or resumes a job, kept in the history store; overrides the config's `suspend` until changed again. */
  setSuspended(job: JobConfig, input: { suspended: boolean; by: string; reason?: string }): Promise<JobSuspension>;
  /** Hears every live change (SSE, long polls); returns the unsubscribe function. */
  subscribe(listener: LiveListener): () => void;
  /** With leader election: where writes go (see forward.ts); without, every write is handled here. */
  forwardTo?(): 'self' | { url: string; leader: string } | 'none';
}
