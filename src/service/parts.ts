import type { Config, JobConfig } from '../config/types.js';
import type { LiveFeed } from '../http/live-feed.js';
import type { Logger } from '../observe/logger.js';
import type { ServiceMetrics } from '../observe/metrics.js';
import type { Clock, Notifier, RunStore } from '../ports.js';
import type { RunRecord, TargetDescription, Trigger } from '../run/record.js';
import type { JobLocks } from '../runner/lock.js';
import type { Runner } from '../runner/runner.js';
import type { Scheduler } from '../schedule/scheduler.js';
import type { JobBoard } from './job-board.js';
import type { Leadership } from './leadership.js';

/**
 * What the service's roles (start-up recovery, tick dispatch, the API
 * backend) share: the parts the service wires together, and the few things
 * only the service itself decides (whether it still accepts work, which
 * background work it waits for on shutdown).
 */
export interface ServiceParts {
  readonly config: Config;
  readonly store: RunStore;
  readonly runner: Runner;
  readonly scheduler: Scheduler;
  readonly board: JobBoard;
  /** Changes as they happen, for the SSE stream and long polls. */
  readonly feed: LiveFeed;
  readonly metrics: ServiceMetrics;
  readonly notifier: Notifier;
  readonly locks: JobLocks;
  readonly clock: Clock;
  readonly log: Logger;
  /** Whether this replica schedules and runs (always, without leader election). */
  readonly leadership: Leadership;
  /** False once shutdown began. */
  accepting(): boolean;
  /** Work the service waits for before it stops; its failure is logged. */
  track(work: Promise<unknown>): void;
  /** Starts a run and follows it on the job board; throws JOB_BUSY and the like. */
  startRun(job: JobConfig, trigger: Trigger, dryRun: boolean, operation?: 'rollback'): Promise<RunRecord>;
  /** Follows a started (or resumed) run on the job board until it settles. */
  follow(started: { run: RunRecord; done: Promise<RunRecord> }): void;
  describe(job: JobConfig): TargetDescription;
  /** The run holding the job, in this process or another one. */
  runningRunId(job: string): string | undefined;
}
