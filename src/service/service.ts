import type { FastifyInstance } from 'fastify';
import { systemClock } from '../clock.js';
import { buildRunner } from '../composition-root.js';
import { checkServerConfig } from '../config/server-checks.js';
import type { Config, JobConfig } from '../config/types.js';
import { RefresherError } from '../errors.js';
import { createRunStore } from '../history/create.js';
import { buildApp } from '../http/app.js';
import { LiveFeed } from '../http/live-feed.js';
import { type DeliveringNotifier, upcomingLeadMinutes } from '../notify/index.js';
import type { Logger } from '../observe/logger.js';
import { ServiceMetrics } from '../observe/metrics.js';
import type { Clock, Notifier, RunStore } from '../ports.js';
import type { RunEvent } from '../run/events.js';
import type { RunRecord, TargetDescription, Trigger } from '../run/record.js';
import { JobLocks } from '../runner/lock.js';
import type { Runner } from '../runner/runner.js';
import type { startCronTicker } from '../schedule/cron-ticker.js';
import { Scheduler, type Timers } from '../schedule/scheduler.js';
import { createTarget } from '../targets/create.js';
import { packageVersion } from '../version.js';
import { ServiceApi } from './api-backend.js';
import { TickDispatcher } from './dispatch.js';
import { ExternalRuns } from './external-runs.js';
import { FollowerView } from './follower-view.js';
import { ConcurrencyGate } from './gate.js';
import { JobBoard } from './job-board.js';
import { createLeadership, fencedStore, type Leadership, soleReplica } from './leadership.js';
import { jobInfo } from './metrics-info.js';
import type { ServiceParts } from './parts.js';
import { PreviousReaper } from './previous-reaper.js';
import { StartupRecovery } from './recovery.js';
import { settlesWithin } from './settle.js';

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

/** How often the service looks for runs of other processes that died holding a job's lock. */
const STALE_LOCK_SWEEP_MS = 5_000;

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
  /** Overrides what server.leaderElection chooses (tests). */
  leadership?: Leadership;
}

/**
 * The service's lifecycle and the parts its roles share. The roles live in
 * their own files: start-up recovery (recovery.ts), tick dispatch
 * (dispatch.ts) and the API backend (api-backend.ts).
 */
export class RefresherService implements ServiceParts {
  readonly app: FastifyInstance;
  readonly config: Config;
  readonly store: RunStore;
  readonly runner: Runner;
  readonly scheduler: Scheduler;
  readonly metrics: ServiceMetrics;
  readonly board: JobBoard;
  readonly feed = new LiveFeed();
  readonly notifier: Notifier;
  readonly locks: JobLocks;
  readonly clock: Clock;
  readonly log: Logger;
  readonly dispatch: TickDispatcher;
  readonly api: ServiceApi;
  readonly leadership: Leadership;
  readonly #recovery: StartupRecovery;
  readonly #gate: ConcurrencyGate;
  readonly #env: NodeJS.ProcessEnv;
  readonly #background = new Set<Promise<unknown>>();
  readonly #reaper: PreviousReaper;
  #accepting = true;
  #started = false;
  #stopping: Promise<void> | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  /** Runs of `db-refresher run` on the same state directory, brought onto the job board. */
  readonly #external: ExternalRuns;
  /** A follower's metrics and job board, read from the shared history (leader election only). */
  readonly #follower: FollowerView;

  static async create(options: ServiceOptions): Promise<RefresherService> {
    checkServerConfig(options.config);
    const leadership =
      options.leadership ??
      (await createLeadership({
        config: options.config,
        clock: options.clock ?? systemClock,
        log: options.log,
        env: options.env ?? process.env,
        port: options.config.server.port,
      }));
    const store = options.store ?? (await createRunStore(options.config, options.log, options.env));
    return new RefresherService(options, fencedStore(store, leadership), leadership);
  }

  private constructor(options: ServiceOptions, store: RunStore, leadership: Leadership) {
    const { config, log } = options;
    this.config = config;
    this.store = store;
    this.leadership = leadership;
    this.log = log;
    this.clock = options.clock ?? systemClock;
    // The board's changes and the runner's events go to the live feed through the API backend (built below).
    this.board = new JobBoard(this.clock, (job) => this.api.publishJob(job));
    this.#env = options.env ?? process.env;
    this.locks = new JobLocks(config.stateDir, this.clock);
    this.#gate = new ConcurrencyGate({ global: config.server.maxConcurrentRuns, perSource: config.server.maxConcurrentRunsPerSource });
    this.metrics = new ServiceMetrics({
      clock: this.clock,
      jobs: config.jobs.map((j) => j.name),
      running: () => this.#gate.running,
      queued: () => this.#gate.queued,
      processMetrics: options.processMetrics ?? false,
      jobInfo: jobInfo(config, this.clock.now()),
      nextRun: (job) => this.scheduler.pendingFire(job) ?? this.#follower.nextRun(job),
      notifications: () => {
        const stats = (this.notifier as Partial<DeliveringNotifier>).stats?.();
        return stats?.destinations ?? {};
      },
      leader: () => leadership.metric(),
      version: packageVersion(),
    });
    const built = buildRunner(config, log, {
      env: this.#env,
      store,
      gate: this.#gate,
      clock: this.clock,
      ...(options.notifier ? { notifier: options.notifier } : {}),
      listeners: [
        (event: RunEvent) => this.board.onRunEvent(event),
        (event: RunEvent) => this.metrics.onRunEvent(event),
        (event: RunEvent) => this.api.publishRun(event),
        (event: RunEvent) => this.#reaper.onRunEvent(event),
      ],
    });
    this.runner = built.runner;
    this.#reaper = new PreviousReaper({
      jobs: config.jobs,
      locks: this.locks,
      targetFor: (job) => createTarget(config, job, { env: this.#env }),
      clock: this.clock,
      log,
    });
    this.notifier = built.notifier;
    this.dispatch = new TickDispatcher(this);
    this.scheduler = new Scheduler({
      jobs: config.jobs,
      clock: this.clock,
      log,
      actions: this.dispatch,
      leadMinutes: (job) => upcomingLeadMinutes(config, job.name),
      onTick: (lateMs) => this.metrics.tickLateness(lateMs),
      ...(options.timers ? { timers: options.timers } : {}),
      ...(options.startTicker ? { startTicker: options.startTicker } : {}),
    });
    this.#recovery = new StartupRecovery(this, this.dispatch);
    this.#external = new ExternalRuns(this);
    this.#follower = new FollowerView(this, (config.server.leaderElection?.leaseDurationSeconds ?? 15) * 1000);
    this.api = new ServiceApi(this);
    this.app = buildApp({
      backend: this.api,
      tokens: config.server.tokens,
      log,
      bodyLimitBytes: config.server.bodyLimitBytes,
    });
  }

  /** Reads history, resumes or interrupts unfinished runs, catches up missed fire times, starts the scheduler. */
  async start(): Promise<void> {
    if (this.#started) throw new Error('the service was already started');
    this.#started = true;
    for (const { jobs, warning } of this.scheduler.warnings()) {
      const named =
        jobs.length > 10 ? { jobs: jobs.slice(0, 10), moreJobs: jobs.length - 10 } : jobs.length === 1 ? { job: jobs[0] } : { jobs };
      this.log.warn(named, `schedule: ${warning}`);
    }
    if (this.leadership === soleReplica) {
      await this.#lead();
      return;
    }
    // Several replicas: the one holding the Lease recovers, schedules and runs, exactly as a restarted
    // service would; one that loses it stops scheduling and stops its runs (their records are the new
    // leader's to settle: fencedStore refuses this replica's writes from then on).
    this.#follower.start();
    this.leadership.start({
      gained: () => {
        this.#follower.stop();
        this.track(this.#lead());
      },
      lost: (reason) => {
        void this.scheduler.stop();
        void this.#reaper.stop();
        this.#external.stop();
        clearInterval(this.#sweeper);
        this.#sweeper = undefined;
        this.runner.abortAll(`this replica lost the leader lease (${reason})`);
        if (this.#accepting) this.#follower.start();
      },
    });
  }

  async #lead(): Promise<void> {
    const jobs = this.config.jobs;
    await this.#recovery.recoverAll(jobs);
    if (!this.#accepting || !this.leadership.leading) return;
    this.scheduler.start();
    this.#sweeper ??= setInterval(() => this.#recovery.sweepStaleLocks(), STALE_LOCK_SWEEP_MS);
    this.#sweeper.unref();
    this.#external.start();
    // After recovery: a resumed run holds its job's lock, so the clean-up never races it.
    this.#reaper.start();
    this.log.info(
      {
        jobs: jobs.length,
        scheduled: jobs.filter((j) => j.schedule && !this.board.suspended(j)).length,
        history: this.config.server.history.kind,
      },
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
    this.log.info({ address }, 'HTTP API listening');
    return address;
  }

  /** Stops cleanly; safe to call more than once (later calls wait for the first). */
  stop(reason = 'the service is shutting down'): Promise<void> {
    this.#stopping ??= this.#stop(reason);
    return this.#stopping;
  }

  async #stop(reason: string): Promise<void> {
    const graceMs = this.config.server.shutdownGraceSeconds * 1000;
    const deadline = this.clock.now().getTime() + graceMs;
    this.#accepting = false;
    clearInterval(this.#sweeper);
    this.#external.stop();
    this.#follower.stop();
    this.log.info({ reason, graceSeconds: this.config.server.shutdownGraceSeconds, active: this.runner.activeCount }, 'shutting down');
    await this.scheduler.stop();
    await this.#reaper.stop();
    this.runner.pauseAll(reason);
    if (!(await settlesWithin(this.#settled(), graceMs))) {
      this.log.warn({ active: this.runner.activeCount }, 'grace period over: stopping the phases still running');
      this.runner.abortAll(`${reason}; the shutdown grace period of ${this.config.server.shutdownGraceSeconds} s ran out`);
      // Aborted phases end quickly (child processes are killed); bounded anyway.
      await settlesWithin(this.#settled(), 15_000);
    }
    await this.notifier.flush(Math.max(1000, deadline - this.clock.now().getTime()));
    // Released only now: a successor must not resume runs this replica is still finishing.
    await this.leadership.stop();
    await this.app.close();
    this.log.info('stopped');
  }

  async #settled(): Promise<void> {
    await this.runner.idle();
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  accepting(): boolean {
    return this.#accepting;
  }

  track(work: Promise<unknown>): void {
    const tracked = work.catch((error: unknown) => this.log.error({ err: error }, 'background work failed'));
    this.#background.add(tracked);
    void tracked.finally(() => this.#background.delete(tracked));
  }

  async startRun(job: JobConfig, trigger: Trigger, dryRun: boolean, operation?: 'rollback'): Promise<RunRecord> {
    // The blue/green clean-up holds the job's lock for a moment; a run waits for it rather than being refused as busy.
    await this.#reaper.waitForJob(job.name, 30_000);
    const started = await this.runner.start(job, trigger, { dryRun, ...(operation ? { operation } : {}) });
    this.follow(started);
    return started.run;
  }

  follow(started: { run: RunRecord; done: Promise<RunRecord> }): void {
    this.board.holding(started.run);
    this.track(
      started.done.then(
        (run) => this.board.settled(run),
        (error: unknown) => {
          this.log.error({ err: error, job: started.run.job, runId: started.run.id }, 'the run stopped without a final record');
          this.board.settled({ ...started.run, status: 'failed' });
        },
      ),
    );
  }

  describe(job: JobConfig): TargetDescription {
    return createTarget(this.config, job, { env: this.#env }).describe();
  }

  runningRunId(job: string): string | undefined {
    return this.board.state(job).current?.id ?? this.locks.holder(job)?.runId;
  }
}
