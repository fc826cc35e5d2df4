import type { JobConfig } from '../config/types.js';
import { isRefresherError } from '../errors.js';
import { newRunId, newSkippedRun, type SkipReason, type Trigger } from '../run/record.js';
import type { MissedCount } from '../schedule/fire-times.js';
import type { SchedulerActions } from '../schedule/scheduler.js';
import type { ServiceParts } from './parts.js';

/**
 * What happens when the scheduler fires: a scheduled run, or a skipped record
 * (suspended, overlap, missed) that says why none happened.
 */
export class TickDispatcher implements SchedulerActions {
  readonly #parts: ServiceParts;
  /** Tick work waiting for its turn (see #pump). */
  readonly #pending: Array<() => void> = [];
  #next = 0;
  #pumping = false;

  constructor(parts: ServiceParts) {
    this.#parts = parts;
  }

  /**
   * Dispatches a fire time. The work (lock, record, run) happens in a macrotask
   * of its own, so when many jobs are due at once every one is dispatched on
   * time and their records are written one after the other without holding
   * up the timers, the HTTP API or each other's dispatch.
   */
  fire(job: JobConfig, scheduledFor: Date, late: boolean): void {
    const parts = this.#parts;
    if (!parts.accepting()) return;
    this.#enqueue(() => {
      if (!parts.accepting()) return;
      if (parts.board.suspended(job)) parts.track(this.recordSkip(job, 'suspended', scheduledFor, this.#whySuspended(job)));
      else parts.track(this.startScheduled(job, scheduledFor, late ? 'catch-up' : 'schedule'));
    });
  }

  /** Who suspended the job: a person through the API, or the config. */
  #whySuspended(job: JobConfig): string {
    const suspension = this.#parts.board.state(job.name).suspension;
    return suspension?.suspended
      ? `the job was suspended by ${suspension.by} at ${suspension.at}${suspension.reason ? `: ${suspension.reason}` : ''}`
      : 'the job is suspended (suspend: true)';
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
    const { clock, log } = this.#parts;
    const until = clock.now().getTime() + 5;
    while (this.#next < this.#pending.length && clock.now().getTime() < until) {
      const work = this.#pending[this.#next];
      this.#next += 1;
      try {
        work?.();
      } catch (error) {
        log.error({ err: error }, 'handling a scheduled run failed');
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
    const parts = this.#parts;
    if (!parts.accepting()) return;
    parts.track(
      this.recordSkip(
        job,
        'missed',
        newest,
        `${describeCount(count)} scheduled time${count.count === 1 ? '' : 's'} passed while the service was stalled (blocked event loop or a sleeping machine) for longer than startingDeadlineSeconds (${job.startingDeadlineSeconds})`,
        count.count,
      ),
    );
  }

  upcoming(job: JobConfig, at: Date): void {
    if (this.#parts.board.suspended(job)) return;
    this.#parts.notifier.upcoming({ job: job.name, at: at.toISOString() });
  }

  /** Starts the run a fire time asks for; a job still running records an overlap instead. */
  async startScheduled(job: JobConfig, scheduledFor: Date, kind: 'schedule' | 'catch-up', extra: { reason?: string } = {}): Promise<void> {
    const parts = this.#parts;
    if (!parts.accepting()) return;
    const trigger: Trigger = {
      kind,
      by: 'scheduler',
      ...extra,
      scheduledFor: scheduledFor.toISOString(),
      ...(job.schedule ? { schedule: job.schedule } : {}),
      timezone: job.timezone,
    };
    try {
      await parts.startRun(job, trigger, false);
    } catch (error) {
      if (isRefresherError(error) && error.code === 'JOB_BUSY') {
        const holder = parts.runningRunId(job.name);
        await this.recordSkip(job, 'overlap', scheduledFor, `run ${holder ?? '(in another process)'} of this job was still running`);
        return;
      }
      throw error;
    }
  }

  /** Records, counts and notifies a scheduled run that did not happen. */
  async recordSkip(job: JobConfig, reason: SkipReason, scheduledFor: Date, detail: string, missedFireTimes = 0): Promise<void> {
    const { clock, log, metrics, notifier, store, board } = this.#parts;
    const now = clock.now();
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
      target: this.#parts.describe(job),
    });
    log.warn({ job: job.name, reason, scheduledFor, detail }, 'scheduled run skipped');
    metrics.skipped(job.name, reason, missedFireTimes);
    notifier.skipped({ job: job.name, reason, scheduledFor: scheduledFor.toISOString(), detail });
    await store.save(run);
    board.settled(run);
  }
}

/** "3", or "more than 100" when the count stopped at its limit. */
export function describeCount(missed: MissedCount): string {
  return missed.atLeast ? `more than ${missed.count}` : String(missed.count);
}
