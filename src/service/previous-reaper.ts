import type { JobConfig } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { BlueGreenTarget, Clock, Target } from '../ports.js';
import type { JobLocks } from '../runner/lock.js';

/**
 * Removes what blue/green jobs keep only for a while, outside any run: the previous copy once
 * keepPrevious has passed since its swap (also for swaps an earlier process made), a half-made copy
 * left by a run that died, and it finishes a swap whose process died. It holds the job's lock while it
 * works, so it never races a run; a busy job is simply tried again at the next sweep.
 */
export class PreviousReaper {
  readonly #jobs: JobConfig[];
  readonly #locks: JobLocks;
  readonly #targetFor: (job: JobConfig) => Target;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<void> | undefined;

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
    this.#sweeping = this.sweep();
    this.#timer = setInterval(() => {
      this.#sweeping ??= this.sweep().finally(() => {
        this.#sweeping = undefined;
      });
    }, this.#intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#sweeping;
  }

  async sweep(): Promise<void> {
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
      } catch (error) {
        log.warn({ err: error }, 'blue/green clean-up failed; it is tried again at the next sweep');
      } finally {
        lock.release();
      }
    }
  }
}
