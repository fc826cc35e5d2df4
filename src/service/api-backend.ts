import type { JobConfig } from '../config/types.js';
import { RefresherError } from '../errors.js';
import { stateDirWritable } from '../history/state-dir.js';
import type { ApiBackend } from '../http/backend.js';
import { type LiveListener, runUpdate } from '../http/live-feed.js';
import {
  type CancelOutcome,
  type CurrentRun,
  type JobDetail,
  type JobListItem,
  type JobSuspension,
  jobDetail,
  jobListItem,
} from '../http/views.js';
import type { RunEvent } from '../run/events.js';
import type { RunRecord } from '../run/record.js';
import { scheduleWarnings } from '../schedule/fire-times.js';
import type { ServiceParts } from './parts.js';
import { cancelRun, effectiveJob, setSuspension } from './run-control.js';
import { settlesWithin } from './settle.js';

/** What the HTTP API asks of the service: jobs, runs, triggers, cancel, suspend, live changes, readiness and metrics. */
export class ServiceApi implements ApiBackend {
  readonly #parts: ServiceParts;
  readonly #jobs: Map<string, JobConfig>;
  readonly #descriptions = new Map<string, string>();
  readonly #warnings = new Map<string, { day: number; warnings: string[] }>();

  constructor(parts: ServiceParts) {
    this.#parts = parts;
    this.#jobs = new Map(parts.config.jobs.map((j) => [j.name, j]));
  }

  jobs(): readonly JobConfig[] {
    return this.#parts.config.jobs;
  }

  /** The job as the service treats it now: the config with the suspension set through the API applied. */
  job(name: string): JobConfig | undefined {
    const job = this.#jobs.get(name);
    return job && effectiveJob(job, this.#parts.board.state(name));
  }

  jobListItem(job: JobConfig): JobListItem {
    return jobListItem(job, this.#parts.board.state(job.name), this.#parts.scheduler.nextRun(job));
  }

  jobDetail(job: JobConfig): JobDetail {
    let summary = this.#descriptions.get(job.name);
    if (summary === undefined) {
      summary = this.#parts.describe(job).summary;
      this.#descriptions.set(job.name, summary);
    }
    return jobDetail({
      job,
      state: this.#parts.board.state(job.name),
      targetSummary: summary,
      nextRuns: this.#parts.scheduler.nextRuns(job, 5),
      warnings: this.#scheduleWarnings(job),
    });
  }

  /** Worked out once a day per job: they look a year ahead. */
  #scheduleWarnings(job: JobConfig): string[] {
    const schedule = this.#parts.scheduler.schedule(job.name);
    if (!schedule) return [];
    const day = Math.floor(this.#parts.clock.now().getTime() / 86_400_000);
    const cached = this.#warnings.get(job.name);
    if (cached?.day === day) return cached.warnings;
    const warnings = scheduleWarnings(schedule, new Date(day * 86_400_000));
    this.#warnings.set(job.name, { day, warnings });
    return warnings;
  }

  listRuns(job: string, options: { limit: number; before?: string }): Promise<RunRecord[]> {
    return this.#parts.store.list(job, options);
  }

  getRun(id: string): Promise<RunRecord | undefined> {
    return this.#parts.store.get(id);
  }

  async trigger(job: JobConfig, input: { by: string; reason?: string; dryRun: boolean; operation?: 'rollback' }): Promise<RunRecord> {
    if (!this.#parts.accepting())
      throw new RefresherError('SHUTTING_DOWN', 'the service is shutting down and takes no new runs; try again when it is back');
    return this.#parts.startRun(
      job,
      { kind: 'http', by: input.by, ...(input.reason ? { reason: input.reason } : {}) },
      input.dryRun,
      input.operation,
    );
  }

  currentRun(job: string): CurrentRun | undefined {
    return this.#parts.board.state(job).current;
  }

  runningRunId(job: string): string | undefined {
    return this.#parts.runningRunId(job);
  }

  accepting(): boolean {
    return this.#parts.accepting();
  }

  async readiness(): Promise<{ ready: boolean; checks: Record<string, { ok: boolean; message?: string }> }> {
    const { config, store: runStore, scheduler } = this.#parts;
    const accepting = this.#parts.accepting();
    const first = config.jobs[0]?.name ?? 'none';
    let store: { ok: boolean; message?: string };
    try {
      await settlesWithin(runStore.list(first, { limit: 1 }), 3000, true);
      store = { ok: true };
    } catch (error) {
      store = { ok: false, message: `run store not reachable: ${error instanceof Error ? error.message : String(error)}` };
    }
    const { leadership } = this.#parts;
    const checks = {
      config: { ok: true },
      store,
      stateDir: await stateDirWritable(config.stateDir),
      // Only the leader schedules; a follower is ready to serve the API.
      scheduler:
        scheduler.running || !leadership.leading
          ? { ok: true, ...(scheduler.running ? {} : { message: 'not leading: the leader schedules' }) }
          : { ok: false, message: accepting ? 'starting' : 'stopped' },
      accepting: accepting ? { ok: true } : { ok: false, message: 'shutting down' },
      leader: leadership.readiness(),
    };
    return { ready: Object.values(checks).every((c) => c.ok), checks };
  }

  cancel(id: string, input: { by: string; reason?: string }): Promise<CancelOutcome> {
    const { store, runner, locks, clock } = this.#parts;
    return cancelRun({
      id,
      cancellation: { ...input, at: clock.now().toISOString() },
      store,
      runner,
      holderPid: (job, runId) => {
        const holder = locks.holder(job);
        return holder?.runId === runId ? holder.pid : undefined;
      },
    });
  }

  setSuspended(job: JobConfig, input: { suspended: boolean; by: string; reason?: string }): Promise<JobSuspension> {
    const { store, board, clock } = this.#parts;
    return setSuspension({
      job,
      suspension: { ...input, at: clock.now().toISOString() },
      store,
      apply: (suspension) => board.suspension(job.name, suspension),
    });
  }

  subscribe(listener: LiveListener): () => void {
    return this.#parts.feed.subscribe(listener);
  }

  /** A job's state changed (job board): its list row goes to whoever watches. */
  publishJob(name: string): void {
    const job = this.#jobs.get(name);
    const { feed } = this.#parts;
    if (!job || feed.listeners === 0) return;
    feed.publish({ type: 'job', data: this.jobListItem(job) });
  }

  /** A run moved (runner event): the update goes to whoever watches. */
  publishRun(event: RunEvent): void {
    const { feed, clock } = this.#parts;
    if (feed.listeners === 0) return;
    const extra =
      event.type === 'progress'
        ? { phase: event.phase, progress: { ...event.detail, at: clock.now().toISOString() } }
        : event.type === 'phase-started' || event.type === 'phase-finished'
          ? { phase: event.phase }
          : {};
    feed.publish({ type: 'run', data: runUpdate(event.run, event.type, extra) });
  }

  forwardTo(): 'self' | { url: string; leader: string } | 'none' {
    return this.#parts.leadership.forwardTo();
  }

  async metricsText(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.#parts.metrics.contentType, body: await this.#parts.metrics.render() };
  }
}
