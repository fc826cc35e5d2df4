import type { JobConfig } from '../config/types.js';
import type { RunRecord } from '../run/record.js';
import type { CurrentRun, JobDetail, JobListItem } from './views.js';

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
  /** With leader election: where writes go (see forward.ts); without, every write is handled here. */
  forwardTo?(): 'self' | { url: string; leader: string } | 'none';
}
