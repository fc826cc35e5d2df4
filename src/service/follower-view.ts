import type { JobConfig } from '../config/types.js';
import type { RunRecord } from '../run/record.js';
import { buildSchedule, nextFireTime } from '../schedule/fire-times.js';
import type { ServiceParts } from './parts.js';

/** Newest records read per job and look: the runs since the last look, in all but a burst. */
const NEWEST = 10;
/** Jobs read at a time: the Kubernetes store makes one request per job. */
const CONCURRENCY = 16;

/**
 * What a follower (a replica that does not hold the leader Lease) knows of the
 * leader's work, read from the shared history store every `intervalMs`: the
 * last-run and last-success gauges, the data age, the job board's last run,
 * last success and current run, and the fire time the leader handles next
 * (the one after the newest scheduled record, or after this replica began
 * following). The leader keeps these current from its own run events; a
 * follower has no events, so without this its /metrics would say what history
 * said when it started, and a Prometheus that takes `max by (job)` or
 * `min by (job)` over replicas would see a stale or silent follower.
 */
type FollowerParts = Pick<ServiceParts, 'config' | 'store' | 'board' | 'metrics' | 'clock' | 'log'>;

export class FollowerView {
  readonly #parts: FollowerParts;
  readonly #intervalMs: number;
  readonly #next = new Map<string, Date>();
  #timer: NodeJS.Timeout | undefined;
  #since = 0;
  #looking: Promise<void> | undefined;
  #lookingSince = 0;

  constructor(parts: FollowerParts, intervalMs: number) {
    this.#parts = parts;
    this.#intervalMs = intervalMs;
  }

  get following(): boolean {
    return this.#timer !== undefined;
  }

  /** Starts reading history: now, then every interval. */
  start(): void {
    if (this.#timer) return;
    this.#since = this.#parts.clock.now().getTime();
    this.#timer = setInterval(() => void this.refresh(), this.#intervalMs);
    this.#timer.unref();
    void this.refresh();
  }

  /** Stops (this replica leads now, or shuts down); the leader's own events take over. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#next.clear();
  }

  /** The scheduled fire the leader should handle next, as history tells; undefined while not following. */
  nextRun(job: string): Date | undefined {
    return this.#timer ? this.#next.get(job) : undefined;
  }

  /**
   * One look at every job's history; a look still under way is waited for, not doubled, unless it has
   * hung for three intervals (a request lost in a partition): then a new one starts beside it.
   */
  refresh(): Promise<void> {
    const now = this.#parts.clock.now().getTime();
    if (this.#looking && now - this.#lookingSince < 3 * this.#intervalMs) return this.#looking;
    const look = this.#lookAll().finally(() => {
      if (this.#looking === look) this.#looking = undefined;
    });
    this.#looking = look;
    this.#lookingSince = now;
    return look;
  }

  async #lookAll(): Promise<void> {
    const jobs = this.#parts.config.jobs;
    for (let i = 0; i < jobs.length && this.#timer; i += CONCURRENCY) {
      await Promise.all(
        jobs
          .slice(i, i + CONCURRENCY)
          .map((job) =>
            this.#look(job).catch((error: unknown) =>
              this.#parts.log.warn(
                { err: error, job: job.name },
                'follower: could not read the run history; metrics keep their last values',
              ),
            ),
          ),
      );
    }
  }

  async #look(job: JobConfig): Promise<void> {
    const { store, metrics } = this.#parts;
    const records = await store.list(job.name, { limit: NEWEST });
    if (!this.#timer) return;
    for (const run of records) metrics.seedLastRun(run);
    const success =
      records.find((r) => r.status === 'succeeded' && !r.dryRun) ??
      (records.length >= NEWEST && store.lastSuccess ? await store.lastSuccess(job.name) : undefined);
    if (success) metrics.seedLastSuccess(success);
    this.#board(job.name, records, success);
    if (job.schedule) {
      const fired = Math.max(this.#since, ...records.map((r) => Date.parse(r.trigger.scheduledFor ?? '')).filter(Number.isFinite));
      const next = nextFireTime(buildSchedule(job.schedule, job.timezone), new Date(fired));
      if (next) this.#next.set(job.name, next);
      else this.#next.delete(job.name);
    }
  }

  /** The job board as history has it: the run under way, the last finished run, the last success. */
  #board(job: string, newestFirst: readonly RunRecord[], success: RunRecord | undefined): void {
    const { board } = this.#parts;
    const state = board.state(job);
    const finished = newestFirst.find((r) => r.status !== 'running' && r.status !== 'queued' && !r.paused);
    const under = newestFirst.find((r) => r.status === 'running' || r.status === 'queued');
    if (success && state.lastSuccess?.id !== success.id && !(finished?.id === success.id)) board.settled(success);
    if (finished && (state.lastRun?.id ?? '') < finished.id) board.settled(finished);
    if (under && state.current?.id !== under.id) board.holding(under);
    if (!under && state.current) state.current = undefined;
  }
}
