import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { DestinationStats } from '../notify/outbox.js';
import type { Clock } from '../ports.js';
import type { RunEvent } from '../run/events.js';
import type { RunRecord, SkipReason } from '../run/record.js';

/**
 * Prometheus metrics of the service, on a registry of its own (never the
 * global one, so two services in one test process do not collide). Fed by run
 * events and by the scheduler's skips; the data age is computed at scrape time.
 * Dry runs change nothing, so they do not count as refreshes here.
 */

const RESULTS = ['succeeded', 'failed', 'interrupted', 'cancelled'] as const;
const SKIP_REASONS: readonly SkipReason[] = ['overlap', 'suspended', 'missed'];
const NOTIFY_OUTCOMES = ['delivered', 'failed', 'dropped'] as const;

/** What `db_refresher_job_info` says about a job: the labels alerts and dashboards join on. */
export interface JobInfo {
  job: string;
  targetKind: string;
  namespace?: string;
  cluster?: string;
  schedule?: string;
  strategy?: string;
  /** Longest gap between consecutive fire times (seconds), for the stale-copy alert; none for manual jobs. */
  intervalSeconds?: number;
}

export class ServiceMetrics {
  readonly registry = new Registry();
  readonly #clock: Clock;
  readonly #snapshotAt = new Map<string, number>();
  readonly #runs: Counter<'job' | 'result'>;
  readonly #duration: Histogram<'job' | 'result'>;
  readonly #phaseDuration: Histogram<'job' | 'phase' | 'result'>;
  readonly #lastSuccess: Gauge<'job'>;
  readonly #skipped: Counter<'job' | 'reason'>;
  readonly #missed: Counter<'job'>;
  readonly #lateness: Histogram;
  readonly #lastRun: Gauge<'job' | 'result'>;
  readonly #downtime: Histogram<'job'>;
  readonly #failures: Counter<'job' | 'phase' | 'class'>;
  readonly #lastRunAt = new Map<string, number>();

  constructor(options: {
    clock: Clock;
    jobs: readonly string[];
    running: () => number;
    queued: () => number;
    /** Process metrics (memory, CPU, event loop lag); off in tests that build many services. */
    processMetrics?: boolean;
    /** Labels of db_refresher_job_info and the schedule intervals; by default only the job names are known. */
    jobInfo?: readonly JobInfo[];
    /** The fire time the scheduler is waiting for; one in the past means a tick never came. */
    nextRun?: (job: string) => Date | undefined;
    /** Delivery counters per notification target (the outbox's own). */
    notifications?: () => Record<string, Pick<DestinationStats, 'delivered' | 'failed' | 'dropped'>>;
    /** This replica's pod name and whether it leads; undefined without leader election. */
    leader?: () => { pod: string; leading: boolean } | undefined;
    version?: string;
  }) {
    this.#clock = options.clock;
    const registers = [this.registry];
    this.#runs = new Counter({
      name: 'db_refresher_runs_total',
      help: 'Finished refresh runs by job and result (succeeded, failed, interrupted); dry runs are not counted',
      labelNames: ['job', 'result'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'db_refresher_run_duration_seconds',
      help: 'Duration of finished refresh runs, from the first phase to the end (time queued is not included)',
      labelNames: ['job', 'result'],
      buckets: [5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800],
      registers,
    });
    this.#phaseDuration = new Histogram({
      name: 'db_refresher_phase_duration_seconds',
      help: 'Duration of run phases by job, phase and result',
      labelNames: ['job', 'phase', 'result'],
      buckets: [0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 21600],
      registers,
    });
    this.#lastSuccess = new Gauge({
      name: 'db_refresher_last_success_timestamp_seconds',
      help: 'Unix time the last successful refresh of the job finished',
      labelNames: ['job'],
      registers,
    });
    const snapshotAt = this.#snapshotAt;
    const clock = this.#clock;
    new Gauge({
      name: 'db_refresher_data_age_seconds',
      help: "Age of the copy's data: seconds since the source snapshot of the job's last successful refresh",
      labelNames: ['job'],
      registers,
      collect() {
        const now = clock.now().getTime();
        for (const [job, at] of snapshotAt) this.set({ job }, Math.max(0, (now - at) / 1000));
      },
    });
    new Gauge({
      name: 'db_refresher_runs_running',
      help: 'Runs under way now',
      registers,
      collect() {
        this.set(options.running());
      },
    });
    new Gauge({
      name: 'db_refresher_runs_queued',
      help: 'Runs waiting for a free slot (server.maxConcurrentRuns, server.maxConcurrentRunsPerSource)',
      registers,
      collect() {
        this.set(options.queued());
      },
    });
    this.#skipped = new Counter({
      name: 'db_refresher_skipped_runs_total',
      help: 'Scheduled runs that did not happen, by reason: overlap (still running), suspended, missed (service down past the deadline)',
      labelNames: ['job', 'reason'],
      registers,
    });
    this.#missed = new Counter({
      name: 'db_refresher_missed_runs_total',
      help: 'Scheduled fire times that passed unhandled while the service was down or stalled (each counted once)',
      labelNames: ['job'],
      registers,
    });
    this.#lateness = new Histogram({
      name: 'db_refresher_tick_lateness_seconds',
      help: 'How late scheduled ticks reached the service after their fire time (event loop load)',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    });
    this.#lastRun = new Gauge({
      name: 'db_refresher_last_run_timestamp_seconds',
      help: 'Unix time the last refresh of the job with this result finished; 0 when none has',
      labelNames: ['job', 'result'],
      registers,
    });
    this.#downtime = new Histogram({
      name: 'db_refresher_target_downtime_seconds',
      help: "How long each refresh left the job's copy unreachable (recreate: teardown to start; blueGreen: the swap)",
      labelNames: ['job'],
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 900, 1800, 3600, 7200, 21600],
      registers,
    });
    this.#failures = new Counter({
      name: 'db_refresher_run_failures_total',
      help: 'Failed refresh runs by job, the phase that failed and the failure class (wal-senders-exhausted, pg-hba-rejected, …)',
      labelNames: ['job', 'phase', 'class'],
      registers,
    });
    new Gauge({
      name: 'db_refresher_build_info',
      help: 'Always 1; the version of db-refresher and of Node.js it runs on',
      labelNames: ['version', 'node'],
      registers,
    }).set({ version: options.version ?? 'unknown', node: process.versions.node }, 1);
    const info = new Gauge({
      name: 'db_refresher_job_info',
      help: 'Always 1 per configured job; its target and schedule as labels',
      labelNames: ['job', 'target_kind', 'namespace', 'cluster', 'schedule', 'strategy'],
      registers,
    });
    const interval = new Gauge({
      name: 'db_refresher_schedule_interval_seconds',
      help: "Longest gap between two consecutive fire times of the job's schedule; how old a copy may get when every run succeeds",
      labelNames: ['job'],
      registers,
    });
    for (const j of options.jobInfo ?? []) {
      info.set(
        {
          job: j.job,
          target_kind: j.targetKind,
          namespace: j.namespace ?? '',
          cluster: j.cluster ?? '',
          schedule: j.schedule ?? '',
          strategy: j.strategy ?? 'recreate',
        },
        1,
      );
      if (j.intervalSeconds !== undefined) interval.set({ job: j.job }, j.intervalSeconds);
    }
    const nextRun = options.nextRun;
    const jobs = options.jobs;
    new Gauge({
      name: 'db_refresher_next_run_timestamp_seconds',
      help: 'Unix time of the scheduled fire the service is waiting for; in the past, a tick never came',
      labelNames: ['job'],
      registers,
      collect() {
        this.reset();
        if (!nextRun) return;
        for (const job of jobs) {
          const at = nextRun(job);
          if (at) this.set({ job }, at.getTime() / 1000);
        }
      },
    });
    const notifications = options.notifications;
    new Counter({
      name: 'db_refresher_notifications_total',
      help: 'Notifications by target and outcome: delivered, failed (gave up after retries or a permanent error), dropped (queue full or shut down)',
      labelNames: ['target', 'outcome'],
      registers,
      collect() {
        if (!notifications) return;
        // The outbox owns the counts (they only grow); the counter mirrors them at each scrape.
        this.reset();
        for (const [target, stats] of Object.entries(notifications())) {
          for (const outcome of NOTIFY_OUTCOMES) this.inc({ target, outcome }, stats[outcome]);
        }
      },
    });
    const leader = options.leader;
    new Gauge({
      name: 'db_refresher_leader',
      help: '1 on the replica that holds the leader lease, 0 on the others (absent without leader election)',
      labelNames: ['pod'],
      registers,
      collect() {
        this.reset();
        const state = leader?.();
        if (state) this.set({ pod: state.pod }, state.leading ? 1 : 0);
      },
    });
    for (const job of options.jobs) {
      // Present from the start, so an alert sees a job that never succeeded (0) instead of no series.
      this.#lastSuccess.set({ job }, 0);
      for (const result of RESULTS) this.#lastRun.set({ job, result }, 0);
      for (const result of RESULTS) this.#runs.inc({ job, result }, 0);
      for (const reason of SKIP_REASONS) this.#skipped.inc({ job, reason }, 0);
      this.#missed.inc({ job }, 0);
    }
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }

  onRunEvent(event: RunEvent): void {
    const { run } = event;
    if (run.dryRun) return;
    if (event.type === 'phase-finished') {
      const phase = run.phases.find((p) => p.name === event.phase);
      if (phase?.durationMs !== undefined && (phase.status === 'succeeded' || phase.status === 'failed')) {
        this.#phaseDuration.observe({ job: run.job, phase: phase.name, result: phase.status }, phase.durationMs / 1000);
      }
    } else if (event.type === 'run-finished') {
      if (run.status !== 'succeeded' && run.status !== 'failed' && run.status !== 'interrupted' && run.status !== 'cancelled') return;
      this.#runs.inc({ job: run.job, result: run.status });
      this.#recordLastRun(run);
      if (run.status === 'failed' && run.error) this.#failures.inc({ job: run.job, phase: run.error.phase, class: run.error.class });
      const down = downtimeMs(run);
      if (down !== undefined) this.#downtime.observe({ job: run.job }, down / 1000);
      // The record's own figure: from start to finish, without the wait in the queue.
      if (run.durationMs !== undefined) this.#duration.observe({ job: run.job, result: run.status }, Math.max(0, run.durationMs) / 1000);
      if (run.status === 'succeeded') this.#success(run);
    }
  }

  /** A run record written without events: an interrupted run found at startup. */
  onRecord(run: RunRecord): void {
    this.onRunEvent({ type: 'run-finished', run });
  }

  skipped(job: string, reason: SkipReason, missedFireTimes = 0): void {
    this.#skipped.inc({ job, reason });
    if (missedFireTimes > 0) this.#missed.inc({ job }, missedFireTimes);
  }

  tickLateness(ms: number): void {
    this.#lateness.observe(Math.max(0, ms) / 1000);
  }

  /** Seeds the success gauges from history at startup. */
  seedLastSuccess(run: RunRecord): void {
    if (run.status === 'succeeded' && !run.dryRun) this.#success(run);
  }

  /** Seeds the last-run gauges from history at startup: one finished record per result, any order. */
  seedLastRun(run: RunRecord): void {
    if (!run.dryRun) this.#recordLastRun(run);
  }

  #recordLastRun(run: RunRecord): void {
    if (run.status !== 'succeeded' && run.status !== 'failed' && run.status !== 'interrupted') return;
    const finished = Date.parse(run.finishedAt ?? '');
    if (!Number.isFinite(finished)) return;
    // History is seeded in any order: keep the newest.
    const key = `${run.job}\u0000${run.status}`;
    if (finished <= (this.#lastRunAt.get(key) ?? 0)) return;
    this.#lastRunAt.set(key, finished);
    this.#lastRun.set({ job: run.job, result: run.status }, finished / 1000);
  }

  #success(run: RunRecord): void {
    const finished = Date.parse(run.finishedAt ?? '');
    if (Number.isFinite(finished)) this.#lastSuccess.set({ job: run.job }, finished / 1000);
    const taken = Date.parse(run.snapshot?.takenAt ?? '');
    if (Number.isFinite(taken)) this.#snapshotAt.set(run.job, taken);
  }
}

/**
 * How long a finished run left the copy unreachable, from its phases: from the
 * start of the first phase that takes the copy away (teardown, or a
 * blue/green swap) to the end of the last phase that brings it back (start,
 * open, swap). None when the copy was never taken away, or never came back
 * (a failed run: the copy is still down, not a finished outage).
 */
export function downtimeMs(run: RunRecord): number | undefined {
  if (run.status !== 'succeeded') return undefined;
  const down = run.phases.find((p) => DOWN_PHASES.has(p.name) && p.status === 'succeeded');
  const upPhases = run.phases.filter((p) => UP_PHASES.has(p.name) && p.status === 'succeeded');
  const up = upPhases[upPhases.length - 1];
  const from = Date.parse(down?.startedAt ?? '');
  const to = Date.parse(up?.finishedAt ?? '');
  return Number.isFinite(from) && Number.isFinite(to) && to >= from ? to - from : undefined;
}

// Phase names as strings: blue/green and the private window add phases the record's union may not list yet.
const DOWN_PHASES: ReadonlySet<string> = new Set(['teardown', 'swap']);
const UP_PHASES: ReadonlySet<string> = new Set(['start', 'open', 'swap']);
