import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
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

  constructor(options: {
    clock: Clock;
    jobs: readonly string[];
    running: () => number;
    queued: () => number;
    /** Process metrics (memory, CPU, event loop lag); off in tests that build many services. */
    processMetrics?: boolean;
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
    for (const job of options.jobs) {
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

  #success(run: RunRecord): void {
    const finished = Date.parse(run.finishedAt ?? '');
    if (Number.isFinite(finished)) this.#lastSuccess.set({ job: run.job }, finished / 1000);
    const taken = Date.parse(run.snapshot?.takenAt ?? '');
    if (Number.isFinite(taken)) this.#snapshotAt.set(run.job, taken);
  }
}
