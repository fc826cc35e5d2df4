import type { JobConfig } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { BlueGreenTarget, Clock, Target } from '../ports.js';
import type { RunEvent } from '../run/events.js';
import type { JobLocks } from '../runner/lock.js';

/**
 * Removes what blue/green jobs keep only for a while, outside any run: the previous copy once
 * keepPrevious has passed since its swap (also for swaps an earlier process made), a half-made copy
 * left by a run that died, and it finishes a swap whose process died. It holds the job's lock while it
 * works, so it never races a run; a busy job is simply tried again at the next sweep.
 *
 * It sweeps at start, every interval, when a blue/green run of this service finishes (its swap just
 * retired a copy), and when the earliest kept copy's keepPrevious ends (reap() reports `keptUntil`),
 * so a previous copy goes at its time rather than up to an interval late.
 */
export class PreviousReaper {
  readonly #jobs: JobConfig[];
  readonly #locks: JobLocks;
  readonly #targetFor: (job: JobConfig) => Target;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  /** The one-shot sweep at the earliest keptUntil. */
  #expiry: NodeJS.Timeout | undefined;
  #sweeping: Promise<void> | undefined;
  #again = false;
  /** The job whose lock the sweep holds right now, and when it lets go. */
  #holding: { job: string; released: Promise<void> } | undefined;

  constructor(input: {
    jobs: JobConfig[];
    locks: JobLocks;
    targetFor: (job: JobConfig) => Target;
    clock: Clock;
    log: Logger;
    intervalMs?: number;
  }) {
    this.#jobs = input.jobs.filter((j) => j.strategy.kind === 'blueGreen');
    this.#locks = input.locks;
    this.#targetFor = input.targetFor;
    this.#clock = input.clock;
    this.#log = input.log;
    this.#intervalMs = input.intervalMs ?? 60_000;
  }

  /** Sweeps once now, then every interval. */
  start(): void {
    if (this.#jobs.length === 0 || this.#timer) return;
    this.#timer = setInterval(() => this.#request(), this.#intervalMs);
    this.#timer.unref();
    this.#request();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    if (this.#expiry) clearTimeout(this.#expiry);
    this.#timer = undefined;
    this.#expiry = undefined;
    await this.#sweeping;
  }

  /**
   * Waits (at most timeoutMs) while a sweep holds this job's lock, so that a run triggered or scheduled
   * at that moment starts right after it instead of being refused as busy by a clean-up.
   */
  async waitForJob(job: string, timeoutMs: number): Promise<void> {
    const holding = this.#holding;
    if (holding?.job !== job) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([holding.released, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  /** A run listener: a finished blue/green run may have retired a copy; learn when it expires. */
  onRunEvent(event: RunEvent): void {
    if (event.type !== 'run-finished' || !this.#timer) return;
    if (!this.#jobs.some((j) => j.name === event.run.job)) return;
    // The run still holds the job's lock while it reports; it lets go right after.
    setTimeout(() => {
      if (this.#timer) this.#request();
    }, 200).unref();
  }

  /** One sweep at a time; a request during a sweep runs one more right after it. */
  #request(): void {
    if (this.#sweeping) {
      this.#again = true;
      return;
    }
    this.#sweeping = this.sweep().finally(() => {
      this.#sweeping = undefined;
      if (this.#again && this.#timer) {
        this.#again = false;
        this.#request();
      }
    });
  }

  #scheduleExpiry(keptUntil: number[]): void {
    if (this.#expiry) clearTimeout(this.#expiry);
    this.#expiry = undefined;
    if (!this.#timer || keptUntil.length === 0) return;
    // A little after the expiry, so the copy is certainly past it; never later than the next interval.
    const delay = Math.max(0, Math.min(...keptUntil) - this.#clock.now().getTime()) + 250;
    if (delay >= this.#intervalMs) return;
    this.#expiry = setTimeout(() => {
      this.#expiry = undefined;
      this.#request();
    }, delay);
    this.#expiry.unref();
  }

  async sweep(): Promise<void> {
    const keptUntil: number[] = [];
    for (const job of this.#jobs) {
      const now = this.#clock.now();
      const id = `reaper-${now.getTime()}`;
      let lock: ReturnType<JobLocks['acquire']>;
      try {
        lock = this.#locks.acquire(job.name, id, now);
      } catch {
        continue; // A run holds the job; its own phases do this work.
      }
      const log = this.#log.child({ job: job.name, task: 'blue/green clean-up' });
      let release = () => {};
      this.#holding = { job: job.name, released: new Promise<void>((resolve) => (release = resolve)) };
      try {
        const target = this.#targetFor(job) as BlueGreenTarget;
        const detail = await target.reap({
          runId: id,
          run: undefined as never,
          log,
          signal: AbortSignal.timeout(15 * 60_000),
          progress: () => undefined,
        });
        const removed = (detail.removed as unknown[] | undefined) ?? [];
        if (removed.length > 0 || detail.finished) log.info(detail, 'blue/green clean-up');
        const until = typeof detail.keptUntil === 'string' ? Date.parse(detail.keptUntil) : Number.NaN;
        if (!Number.isNaN(until)) keptUntil.push(until);
      } catch (error) {
        log.warn({ err: error }, 'blue/green clean-up failed; it is tried again at the next sweep');
      } finally {
        lock.release();
        this.#holding = undefined;
        release();
      }
    }
    this.#scheduleExpiry(keptUntil);
  }
}
