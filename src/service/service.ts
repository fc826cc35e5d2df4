import type { FastifyInstance } from 'fastify';
import { systemClock } from '../clock.js';
import { buildRunner } from '../composition-root.js';
import type { Config, JobConfig } from '../config/types.js';
import { ConfigError, isRefresherError, RefresherError } from '../errors.js';
import { createRunStore } from '../history/create.js';
import { buildApp } from '../http/app.js';
import type { ApiBackend } from '../http/backend.js';
import { LiveFeed, type LiveListener, runUpdate } from '../http/live-feed.js';
import {
  type CancelOutcome,
  type CurrentRun,
  type JobDetail,
  type JobListItem,
  type JobSuspension,
  jobDetail,
  jobListItem,
} from '../http/views.js';
import type { Logger } from '../observe/logger.js';
import { ServiceMetrics } from '../observe/metrics.js';
import type { Clock, Notifier, RunStore } from '../ports.js';
import type { RunEvent } from '../run/events.js';
import { interruptRun, newRunId, newSkippedRun, type RunRecord, resumePoint, type SkipReason, type Trigger } from '../run/record.js';
import { JobLocks } from '../runner/lock.js';
import { resumePolicy } from '../runner/phases/index.js';
import type { Runner } from '../runner/runner.js';
import type { startCronTicker } from '../schedule/cron-ticker.js';
import { type MissedCount, planCatchUp, scheduleWarnings } from '../schedule/fire-times.js';
import { Scheduler, type SchedulerActions, type Timers } from '../schedule/scheduler.js';
import { createTarget } from '../targets/create.js';
import { ConcurrencyGate } from './gate.js';
import { JobBoard } from './job-board.js';
import { cancelRun, effectiveJob, setSuspension } from './run-control.js';

/**
 * `db-refresher serve`: the scheduler, the HTTP API, the run store, the runner
 * and shutdown, wired together. One instance lives from start() to stop().
 *
 * start(): history is read once per job to seed job status and metrics, runs
 * an earlier process left unfinished are resumed or marked interrupted, fire
 * times missed while the service was down are caught up or recorded as
 * missed, and then the scheduler starts.
 *
 * stop(): triggers are refused (503), the scheduler stops, every run stops at
 * its next phase boundary (bounded by server.shutdownGraceSeconds, after
 * which phases are aborted), notifications are flushed, the HTTP server closes.
 */

export interface ServiceOptions {
  config: Config;
  log: Logger;
  env?: NodeJS.ProcessEnv;
  clock?: Clock;
  /** Overrides the store server.history chooses (tests). */
  store?: RunStore;
  notifier?: Notifier;
  timers?: Timers;
  startTicker?: typeof startCronTicker;
  /** Process metrics (memory, CPU) on /metrics; on in `serve`. */
  processMetrics?: boolean;
}

/** How many of a job's newest records are read at startup (status, resumption, the last scheduled time). */
const HISTORY_SCAN = 25;

export class RefresherService implements ApiBackend, SchedulerActions {
  readonly app: FastifyInstance;
  readonly config: Config;
  readonly store: RunStore;
  readonly runner: Runner;
  readonly scheduler: Scheduler;
  readonly metrics: ServiceMetrics;
  /** Changes as they happen, for the SSE stream and long polls. */
  readonly feed = new LiveFeed();
  readonly board = new JobBoard((job) => this.#publishJob(job));
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #notifier: Notifier;
  readonly #gate: ConcurrencyGate;
  readonly #locks: JobLocks;
  readonly #env: NodeJS.ProcessEnv;
  readonly #jobs: Map<string, JobConfig>;
  readonly #descriptions = new Map<string, string>();
  readonly #warnings = new Map<string, { day: number; warnings: string[] }>();
  readonly #background = new Set<Promise<unknown>>();
  /** Tick work waiting for its turn (see #pump). */
  readonly #pending: Array<() => void> = [];
  #next = 0;
  #pumping = false;
  #accepting = true;
  #started = false;
  #stopping: Promise<void> | undefined;

  static async create(options: ServiceOptions): Promise<RefresherService> {
    checkServerConfig(options.config);
    const store = options.store ?? (await createRunStore(options.config, options.log, options.env));
    return new RefresherService(options, store);
  }

  private constructor(options: ServiceOptions, store: RunStore) {
    const { config, log } = options;
    this.config = config;
    this.store = store;
    this.#log = log;
    this.#clock = options.clock ?? systemClock;
    this.#env = options.env ?? process.env;
    this.#jobs = new Map(config.jobs.map((j) => [j.name, j]));
    this.#locks = new JobLocks(config.stateDir);
    this.#gate = new ConcurrencyGate({ global: config.server.maxConcurrentRuns, perSource: config.server.maxConcurrentRunsPerSource });
    this.metrics = new ServiceMetrics({
      clock: this.#clock,
      jobs: config.jobs.map((j) => j.name),
      running: () => this.#gate.running,
      queued: () => this.#gate.queued,
      processMetrics: options.processMetrics ?? false,
    });
    const built = buildRunner(config, log, {
      env: this.#env,
      store,
      gate: this.#gate,
      clock: this.#clock,
      ...(options.notifier ? { notifier: options.notifier } : {}),
      listeners: [
        (event: RunEvent) => this.board.onRunEvent(event),
        (event: RunEvent) => this.metrics.onRunEvent(event),
        (event: RunEvent) => this.#publishRun(event),
      ],
    });
    this.runner = built.runner;
    this.#notifier = built.notifier;
    this.scheduler = new Scheduler({
      jobs: config.jobs,
      clock: this.#clock,
      log,
      actions: this,
      leadMinutes: (job) => upcomingLeads(config, job),
      onTick: (lateMs) => this.metrics.tickLateness(lateMs),
      ...(options.timers ? { timers: options.timers } : {}),
      ...(options.startTicker ? { startTicker: options.startTicker } : {}),
    });
    this.app = buildApp({
      backend: this,
      tokens: config.server.tokens,
      log,
      bodyLimitBytes: config.server.bodyLimitBytes,
    });
  }

  // ── lifecycle ────────────────────────────────────────────────────────────

  /** Reads history, resumes or interrupts unfinished runs, catches up missed fire times, starts the scheduler. */
  async start(): Promise<void> {
    if (this.#started) throw new Error('the service was already started');
    this.#started = true;
    for (const { jobs, warning } of this.scheduler.warnings()) {
      const named =
        jobs.length > 10 ? { jobs: jobs.slice(0, 10), moreJobs: jobs.length - 10 } : jobs.length === 1 ? { job: jobs[0] } : { jobs };
      this.#log.warn(named, `schedule: ${warning}`);
    }
    const jobs = this.config.jobs;
    // A bounded number of jobs at a time: the Kubernetes store makes one request per job.
    const CONCURRENCY = 16;
    for (let i = 0; i < jobs.length; i += CONCURRENCY) {
      await Promise.all(jobs.slice(i, i + CONCURRENCY).map((job) => this.#recoverJob(job)));
    }
    if (this.#accepting) this.scheduler.start();
    this.#log.info(
      { jobs: jobs.length, scheduled: jobs.filter((j) => j.schedule && !j.suspend).length, history: this.config.server.history.kind },
      'scheduler started',
    );
  }

  /** Listens on server.host:server.port (or the given port); returns the address. */
  async listen(override: { host?: string; port?: number } = {}): Promise<string> {
    const host = override.host ?? this.config.server.host;
    const port = override.port ?? this.config.server.port;
    let address: string;
    try {
      address = await this.app.listen({ host, port });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const why =
        code === 'EADDRINUSE' ? 'the address is in use by another process' : code === 'EACCES' ? 'permission denied' : String(error);
      throw new RefresherError('CONFIG_INVALID', `cannot listen on ${host}:${port}: ${why}`, {
        hint: 'Set server.host and server.port in the config to a free address (port 0 picks any free port).',
      });
    }
    this.#log.info({ address }, 'HTTP API listening');
    return address;
  }

  /** Stops cleanly; safe to call more than once (later calls wait for the first). */
  stop(reason = 'the service is shutting down'): Promise<void> {
    this.#stopping ??= this.#stop(reason);
    return this.#stopping;
  }

  async #stop(reason: string): Promise<void> {
    const graceMs = this.config.server.shutdownGraceSeconds * 1000;
    const deadline = Date.now() + graceMs;
    this.#accepting = false;
    this.#log.info({ reason, graceSeconds: this.config.server.shutdownGraceSeconds, active: this.runner.activeCount }, 'shutting down');
    await this.scheduler.stop();
    this.runner.pauseAll(reason);
    if (!(await settlesWithin(this.#settled(), graceMs))) {
      this.#log.warn({ active: this.runner.activeCount }, 'grace period over: stopping the phases still running');
      this.runner.abortAll(`${reason}; the shutdown grace period of ${this.config.server.shutdownGraceSeconds} s ran out`);
      // Aborted phases end quickly (child processes are killed); bounded anyway.
      await settlesWithin(this.#settled(), 15_000);
    }
    await this.#notifier.flush(Math.max(1000, deadline - Date.now()));
    await this.app.close();
    this.#log.info('stopped');
  }

  async #settled(): Promise<void> {
    await this.runner.idle();
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  #track<T>(work: Promise<T>): void {
    const tracked = work.catch((error: unknown) => this.#log.error({ err: error }, 'background work failed'));
    this.#background.add(tracked);
    void tracked.finally(() => this.#background.delete(tracked));
  }

  // ── startup: history, resumption, catch-up ──────────────────────────────

  async #recoverJob(job: JobConfig): Promise<void> {
    let records: RunRecord[];
    try {
      records = await this.store.list(job.name, { limit: HISTORY_SCAN });
    } catch (error) {
      this.#log.error({ err: error, job: job.name }, 'could not read run history; this job starts without it');
      return;
    }
    this.board.seed(job.name, records);
    try {
      const suspension = await this.store.getSuspension(job.name);
      if (suspension) this.board.suspension(job.name, suspension);
    } catch (error) {
      this.#log.error({ err: error, job: job.name }, "could not read the job's suspension from history; the config's suspend applies");
    }
    const lastSuccess = records.find((r) => r.status === 'succeeded' && !r.dryRun);
    if (lastSuccess) this.metrics.seedLastSuccess(lastSuccess);
    const busy = await this.#takeUpUnfinished(job, records);
    if (!busy) await this.#catchUp(job, records);
  }

  /** Resumes the newest unfinished run when safe, marks the others interrupted. Returns whether the job is now busy. */
  async #takeUpUnfinished(job: JobConfig, records: readonly RunRecord[]): Promise<boolean> {
    const unfinished = records.filter((r) => r.status === 'running' || r.status === 'queued');
    let busy = false;
    for (const record of unfinished) {
      const holder = this.#locks.holder(job.name);
      if (holder?.runId === record.id) {
        // Another live process (`db-refresher run`) is doing this run: leave it alone.
        this.#log.info({ job: job.name, runId: record.id, pid: holder.pid }, 'run in progress in another process');
        busy = true;
        continue;
      }
      // Shutting down already: leave it as it is for the next start.
      if (!this.#accepting) continue;
      const point = busy ? undefined : resumePoint(record, resumePolicy(job.target.kind));
      let reason = 'the service stopped during this run, and a newer unfinished run of the job was taken up instead';
      if (point?.ok) {
        try {
          this.#follow(await this.runner.resume(record, job));
          busy = true;
          continue;
        } catch (error) {
          this.#log.warn({ err: error, job: job.name, runId: record.id }, 'could not resume the run');
          reason = `the service stopped during this run, and it could not be resumed: ${error instanceof Error ? error.message : String(error)}`;
        }
      } else if (point) {
        reason = point.reason;
      }
      const run = interruptRun(record, this.#clock.now(), reason);
      await this.store.save(run);
      this.#log.warn({ job: job.name, runId: run.id, reason }, 'marked an unfinished run interrupted');
      this.board.settled(run);
      this.metrics.onRecord(run);
      this.#notifier.runEvent({ type: 'run-finished', run });
    }
    return busy;
  }

  /** Handles the fire times that passed while the service was down, as a Kubernetes CronJob with startingDeadlineSeconds would. */
  async #catchUp(job: JobConfig, records: readonly RunRecord[]): Promise<void> {
    const schedule = this.scheduler.schedule(job.name);
    if (!schedule || this.#suspended(job) || !job.schedule) return;
    const last = records
      .filter((r) => r.trigger.scheduledFor)
      .reduce<RunRecord | undefined>((a, b) => ((a?.trigger.scheduledFor ?? '') >= (b.trigger.scheduledFor ?? '') ? a : b), undefined);
    if (!last?.trigger.scheduledFor) return; // Never ran on a schedule: nothing can have been missed.
    if ((last.trigger.schedule ?? job.schedule) !== job.schedule || (last.trigger.timezone ?? job.timezone) !== job.timezone) {
      this.#log.info(
        { job: job.name, was: last.trigger.schedule, now: job.schedule },
        'schedule changed: earlier fire times are not caught up',
      );
      return;
    }
    const now = this.#clock.now();
    const decision = planCatchUp(schedule, new Date(last.trigger.scheduledFor), now, job.startingDeadlineSeconds);
    const count = describeCount(decision.action === 'none' ? { count: 0, atLeast: false } : decision.missed);
    switch (decision.action) {
      case 'none':
        return;
      case 'run': {
        this.#log.info(
          { job: job.name, scheduledFor: decision.scheduledFor, missed: decision.missed },
          'catching up a missed scheduled run',
        );
        const older = decision.missed.count - 1;
        if (older > 0) this.metrics.skipped(job.name, 'missed', older);
        await this.#startScheduled(job, decision.scheduledFor, 'catch-up', {
          reason: `scheduled for ${decision.scheduledFor.toISOString()}, while the service was not running${older > 0 ? ` (${count} fire times passed; only the newest runs)` : ''}`,
        });
        return;
      }
      case 'missed':
        await this.#recordSkip(
          job,
          'missed',
          decision.scheduledFor,
          `${count} scheduled time${decision.missed.count === 1 ? '' : 's'} passed while the service was not running; the newest was ${decision.ageSeconds} s ago, more than startingDeadlineSeconds (${job.startingDeadlineSeconds})`,
          decision.missed.count,
        );
        return;
    }
  }

  // ── scheduler actions ───────────────────────────────────────────────────

  /**
   * Dispatches a fire time. The work (lock, record, run) happens in a macrotask
   * of its own, so when many jobs are due at once every one is dispatched on
   * time and their records are written one after the other without holding
   * up the timers, the HTTP API or each other's dispatch.
   */
  fire(job: JobConfig, scheduledFor: Date, late: boolean): void {
    if (!this.#accepting) return;
    this.#enqueue(() => {
      if (!this.#accepting) return;
      const suspension = this.board.state(job.name).suspension;
      if (this.#suspended(job)) {
        const why = suspension?.suspended
          ? `the job was suspended by ${suspension.by} at ${suspension.at}${suspension.reason ? `: ${suspension.reason}` : ''}`
          : 'the job is suspended (suspend: true)';
        this.#track(this.#recordSkip(job, 'suspended', scheduledFor, why));
      } else this.#track(this.#startScheduled(job, scheduledFor, late ? 'catch-up' : 'schedule'));
    });
  }

  #enqueue(work: () => void): void {
    this.#pending.push(work);
    if (!this.#pumping) {
      this.#pumping = true;
      setImmediate(() => this.#pump());
    }
  }

  /** Does queued tick work for at most ~5 ms per turn of the event loop, so timers and requests get in between. */
  #pump(): void {
    const until = performance.now() + 5;
    while (this.#next < this.#pending.length && performance.now() < until) {
      const work = this.#pending[this.#next];
      this.#next += 1;
      try {
        work?.();
      } catch (error) {
        this.#log.error({ err: error }, 'handling a scheduled run failed');
      }
    }
    if (this.#next < this.#pending.length) {
      setImmediate(() => this.#pump());
      return;
    }
    this.#pending.length = 0;
    this.#next = 0;
    this.#pumping = false;
  }

  missed(job: JobConfig, newest: Date, count: MissedCount): void {
    if (!this.#accepting) return;
    this.#track(
      this.#recordSkip(
        job,
        'missed',
        newest,
        `${describeCount(count)} scheduled time${count.count === 1 ? '' : 's'} passed while the service was stalled (blocked event loop or a sleeping machine) for longer than startingDeadlineSeconds (${job.startingDeadlineSeconds})`,
        count.count,
      ),
    );
  }

  upcoming(job: JobConfig, at: Date): void {
    if (this.#suspended(job)) return;
    this.#notifier.upcoming({ job: job.name, at: at.toISOString() });
  }

  async #startScheduled(job: JobConfig, scheduledFor: Date, kind: 'schedule' | 'catch-up', extra: { reason?: string } = {}): Promise<void> {
    if (!this.#accepting) return;
    const trigger: Trigger = {
      kind,
      by: 'scheduler',
      ...extra,
      scheduledFor: scheduledFor.toISOString(),
      ...(job.schedule ? { schedule: job.schedule } : {}),
      timezone: job.timezone,
    };
    try {
      await this.#start(job, trigger, false);
    } catch (error) {
      if (isRefresherError(error) && error.code === 'JOB_BUSY') {
        const holder = this.runningRunId(job.name);
        await this.#recordSkip(job, 'overlap', scheduledFor, `run ${holder ?? '(in another process)'} of this job was still running`);
        return;
      }
      throw error;
    }
  }

  async #recordSkip(job: JobConfig, reason: SkipReason, scheduledFor: Date, detail: string, missedFireTimes = 0): Promise<void> {
    const now = this.#clock.now();
    const run = newSkippedRun({
      id: newRunId(now),
      job: job.name,
      trigger: {
        kind: 'schedule',
        by: 'scheduler',
        scheduledFor: scheduledFor.toISOString(),
        ...(job.schedule ? { schedule: job.schedule } : {}),
        timezone: job.timezone,
      },
      now,
      reason,
      detail,
      source: { host: job.source.host, port: job.source.port, user: job.source.user },
      target: this.#describe(job),
    });
    this.#log.warn({ job: job.name, reason, scheduledFor, detail }, 'scheduled run skipped');
    this.metrics.skipped(job.name, reason, missedFireTimes);
    this.#notifier.skipped({ job: job.name, reason, scheduledFor: scheduledFor.toISOString(), detail });
    await this.store.save(run);
    this.board.settled(run);
  }

  // ── runs ─────────────────────────────────────────────────────────────────

  async #start(job: JobConfig, trigger: Trigger, dryRun: boolean): Promise<RunRecord> {
    const started = await this.runner.start(job, trigger, { dryRun });
    this.#follow(started);
    return started.run;
  }

  #follow(started: { run: RunRecord; done: Promise<RunRecord> }): void {
    this.board.holding(started.run);
    this.#track(
      started.done.then(
        (run) => this.board.settled(run),
        (error: unknown) => {
          this.#log.error({ err: error, job: started.run.job, runId: started.run.id }, 'the run stopped without a final record');
          this.board.settled({ ...started.run, status: 'failed' });
        },
      ),
    );
  }

  #describe(job: JobConfig): RunRecord['target'] {
    return createTarget(this.config, job, { env: this.#env }).describe();
  }

  // ── live feed ────────────────────────────────────────────────────────────

  #publishJob(name: string): void {
    const job = this.#jobs?.get(name);
    if (!job || this.feed.listeners === 0) return;
    this.feed.publish({ type: 'job', data: this.jobListItem(job) });
  }

  #publishRun(event: RunEvent): void {
    if (this.feed.listeners === 0) return;
    const extra =
      event.type === 'progress'
        ? { phase: event.phase, progress: { ...event.detail, at: this.#clock.now().toISOString() } }
        : event.type === 'phase-started' || event.type === 'phase-finished'
          ? { phase: event.phase }
          : {};
    this.feed.publish({ type: 'run', data: runUpdate(event.run, event.type, extra) });
  }

  // ── ApiBackend ───────────────────────────────────────────────────────────

  jobs(): readonly JobConfig[] {
    return this.config.jobs;
  }

  job(name: string): JobConfig | undefined {
    const job = this.#jobs.get(name);
    return job && effectiveJob(job, this.board.state(name));
  }

  jobListItem(job: JobConfig): JobListItem {
    return jobListItem(job, this.board.state(job.name), this.scheduler.nextRun(job));
  }

  jobDetail(job: JobConfig): JobDetail {
    let summary = this.#descriptions.get(job.name);
    if (summary === undefined) {
      summary = this.#describe(job).summary;
      this.#descriptions.set(job.name, summary);
    }
    return jobDetail({
      job,
      state: this.board.state(job.name),
      targetSummary: summary,
      nextRuns: this.scheduler.nextRuns(job, 5),
      warnings: this.#scheduleWarnings(job),
    });
  }

  #scheduleWarnings(job: JobConfig): string[] {
    const schedule = this.scheduler.schedule(job.name);
    if (!schedule) return [];
    const day = Math.floor(this.#clock.now().getTime() / 86_400_000);
    const cached = this.#warnings.get(job.name);
    if (cached?.day === day) return cached.warnings;
    const warnings = scheduleWarnings(schedule, new Date(day * 86_400_000));
    this.#warnings.set(job.name, { day, warnings });
    return warnings;
  }

  listRuns(job: string, options: { limit: number; before?: string }): Promise<RunRecord[]> {
    return this.store.list(job, options);
  }

  getRun(id: string): Promise<RunRecord | undefined> {
    return this.store.get(id);
  }

  async trigger(job: JobConfig, input: { by: string; reason?: string; dryRun: boolean }): Promise<RunRecord> {
    if (!this.#accepting) throw new RefresherError('JOB_BUSY', 'the service is shutting down');
    return this.#start(job, { kind: 'http', by: input.by, ...(input.reason ? { reason: input.reason } : {}) }, input.dryRun);
  }

  currentRun(job: string): CurrentRun | undefined {
    return this.board.state(job).current;
  }

  runningRunId(job: string): string | undefined {
    return this.board.state(job).current?.id ?? this.#locks.holder(job)?.runId;
  }

  accepting(): boolean {
    return this.#accepting;
  }

  async readiness(): Promise<{ ready: boolean; checks: Record<string, { ok: boolean; message?: string }> }> {
    const first = this.config.jobs[0]?.name ?? 'none';
    let store: { ok: boolean; message?: string };
    try {
      await settlesWithin(this.store.list(first, { limit: 1 }), 3000, true);
      store = { ok: true };
    } catch (error) {
      store = { ok: false, message: `run store not reachable: ${error instanceof Error ? error.message : String(error)}` };
    }
    const checks = {
      config: { ok: true },
      store,
      scheduler: this.scheduler.running ? { ok: true } : { ok: false, message: this.#accepting ? 'starting' : 'stopped' },
      accepting: this.#accepting ? { ok: true } : { ok: false, message: 'shutting down' },
    };
    return { ready: Object.values(checks).every((c) => c.ok), checks };
  }

  cancel(id: string, input: { by: string; reason?: string }): Promise<CancelOutcome> {
    return cancelRun({
      id,
      cancellation: { ...input, at: this.#clock.now().toISOString() },
      store: this.store,
      runner: this.runner,
      holderPid: (job, runId) => {
        const holder = this.#locks.holder(job);
        return holder?.runId === runId ? holder.pid : undefined;
      },
    });
  }

  setSuspended(job: JobConfig, input: { suspended: boolean; by: string; reason?: string }): Promise<JobSuspension> {
    return setSuspension({
      job,
      suspension: { ...input, at: this.#clock.now().toISOString() },
      store: this.store,
      apply: (suspension) => this.board.suspension(job.name, suspension),
    });
  }

  /** Suspended now: through the API, else by the config. */
  #suspended(job: JobConfig): boolean {
    return effectiveJob(job, this.board.state(job.name)).suspend;
  }

  subscribe(listener: LiveListener): () => void {
    return this.feed.subscribe(listener);
  }

  async metricsText(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.metrics.contentType, body: await this.metrics.render() };
  }
}

/** Whether `work` settled within `ms`; with `rejectOnTimeout`, a timeout throws instead. */
async function settlesWithin(work: Promise<unknown>, ms: number, rejectOnTimeout = false): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve, reject) => {
    timer = setTimeout(() => (rejectOnTimeout ? reject(new Error(`no answer within ${ms} ms`)) : resolve(false)), ms);
  });
  try {
    return await Promise.race([work.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function describeCount(missed: MissedCount): string {
  return missed.atLeast ? `more than ${missed.count}` : String(missed.count);
}

/** Lead times (minutes) of the job's notification targets that subscribe to upcoming notices. */
export function upcomingLeads(config: Config, job: JobConfig): number[] {
  const leads = new Set<number>();
  for (const name of job.notify) {
    const target = config.notifications[name];
    if (target?.events.includes('upcoming')) leads.add(target.upcomingLeadMinutes);
  }
  return [...leads];
}

/** Server rules that need the resolved secrets: token length, and distinct token values. */
function checkServerConfig(config: Config): void {
  const problems: string[] = [];
  const seen = new Map<string, number>();
  config.server.tokens.forEach((t, i) => {
    const value = t.token.reveal();
    if (value.length < 16)
      problems.push(
        `server.tokens[${i}].token (${t.token.origin}): is ${value.length} characters; use at least 16 (e.g. openssl rand -hex 32)`,
      );
    const other = seen.get(value);
    if (other !== undefined)
      problems.push(`server.tokens[${i}].token: the same token as server.tokens[${other}]; each holder needs their own`);
    seen.set(value, i);
  });
  if (problems.length > 0) throw new ConfigError(config.path, problems);
}
