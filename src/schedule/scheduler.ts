import type { JobConfig } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { Clock } from '../ports.js';
import { type CronTicker, startCronTicker } from './cron-ticker.js';
import { buildSchedule, type MissedCount, nextFireTime, nextFireTimes, type Schedule, scheduleWarnings } from './fire-times.js';

/**
 * The scheduling clock of `serve`: a node-cron task per scheduled job, plus
 * timers for "upcoming" notices. It decides nothing about runs: each fire
 * time goes to SchedulerActions (the service), which starts the run or
 * records why it was skipped.
 */

export interface SchedulerActions {
  /** A fire time arrived (late: node-cron ran it after a stall, within the job's deadline). */
  fire(job: JobConfig, scheduledFor: Date, late: boolean): void;
  /** Fire times that passed unhandled while the process was stalled; the newest is given. */
  missed(job: JobConfig, newest: Date, count: MissedCount): void;
  /** A scheduled run is `leadMinutes` away: the longest lead time of the job's targets that want upcoming notices. */
  upcoming(job: JobConfig, at: Date, leadMinutes: number): void;
}

/** setTimeout and clearTimeout, passed in so tests can drive the upcoming notices with a fake clock. */
export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const realTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** The longest delay setTimeout takes; longer waits are re-armed. */
const MAX_DELAY_MS = 2 ** 31 - 1;

export interface SchedulerDeps {
  jobs: readonly JobConfig[];
  clock: Clock;
  log: Logger;
  actions: SchedulerActions;
  /** Lead times (minutes) of the job's notification targets that want upcoming notices. */
  leadMinutes(job: JobConfig): readonly number[];
  timers?: Timers;
  /** node-cron by default; tests may tick by hand. */
  startTicker?: typeof startCronTicker;
  /** Told how late each tick arrived after its fire time (for the lateness metric). */
  onTick?(lateMs: number): void;
}

export class Scheduler {
  readonly #deps: SchedulerDeps;
  readonly #timers: Timers;
  readonly #schedules = new Map<string, Schedule>();
  readonly #tickers: CronTicker[] = [];
  readonly #upcoming = new Set<unknown>();
  readonly #next = new Map<string, Date | undefined>();
  readonly #missed = new Map<string, { newest: Date; count: number }>();
  /** Per job, the fire time last handled (or when scheduling started): the pending fire is the next one after it. */
  readonly #handledUpTo = new Map<string, Date>();
  #running = false;

  constructor(deps: SchedulerDeps) {
    this.#deps = deps;
    this.#timers = deps.timers ?? realTimers;
    for (const job of deps.jobs) if (job.schedule) this.#schedules.set(job.name, buildSchedule(job.schedule, job.timezone));
  }

  get running(): boolean {
    return this.#running;
  }

  schedule(job: string): Schedule | undefined {
    return this.#schedules.get(job);
  }

  /** Warnings to log at startup (AND of the day fields, DST gaps and overlaps in the next year), once per distinct schedule. */
  warnings(): Array<{ jobs: string[]; warning: string }> {
    const now = this.#deps.clock.now();
    const bySchedule = new Map<string, { schedule: Schedule; jobs: string[] }>();
    for (const [job, s] of this.#schedules) {
      const key = `${s.expression}|${s.timezone}`;
      const entry = bySchedule.get(key) ?? { schedule: s, jobs: [] };
      entry.jobs.push(job);
      bySchedule.set(key, entry);
    }
    return [...bySchedule.values()].flatMap(({ schedule, jobs }) => scheduleWarnings(schedule, now).map((warning) => ({ jobs, warning })));
  }

  /** The next fire time of a job, cached until it passes (GET /api/v1/jobs asks for all of them often). */
  nextRun(job: JobConfig): Date | undefined {
    const s = this.#schedules.get(job.name);
    if (!s || job.suspend) return undefined;
    const now = this.#deps.clock.now();
    const cached = this.#next.get(job.name);
    if (cached && cached.getTime() > now.getTime()) return cached;
    const next = nextFireTime(s, now);
    this.#next.set(job.name, next);
    return next;
  }

  /**
   * The fire time the scheduler is waiting for: the first after the last one
   * it handled. Unlike nextRun() it does not move on by itself, so one in the
   * past means a tick never came (the db_refresher_next_run_timestamp_seconds
   * alert). Undefined while not scheduling.
   */
  pendingFire(job: string): Date | undefined {
    const s = this.#schedules.get(job);
    const from = this.#handledUpTo.get(job);
    return this.#running && s && from ? nextFireTime(s, from) : undefined;
  }

  nextRuns(job: JobConfig, count: number): Date[] {
    const s = this.#schedules.get(job.name);
    if (!s || job.suspend) return [];
    return nextFireTimes(s, this.#deps.clock.now(), count);
  }

  /**
   * One node-cron task per distinct schedule (expression, zone, deadline), not
   * per job: a thousand jobs due at 02:00 Europe/Berlin are one timer that
   * dispatches them all in one go, so none waits for the others' timers.
   */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const startTicker = this.#deps.startTicker ?? startCronTicker;
    const now = this.#deps.clock.now();
    for (const job of this.#schedules.keys()) this.#handledUpTo.set(job, now);
    const groups = new Map<string, { schedule: Schedule; tolerance: number; jobs: JobConfig[] }>();
    for (const job of this.#deps.jobs) {
      const schedule = this.#schedules.get(job.name);
      if (!schedule) continue;
      // Suspended jobs keep their ticker: each tick is recorded as skipped (suspended).
      const key = `${schedule.nodeCronExpression}|${schedule.timezone}|${job.startingDeadlineSeconds}`;
      const group = groups.get(key) ?? { schedule, tolerance: job.startingDeadlineSeconds, jobs: [] };
      group.jobs.push(job);
      groups.set(key, group);
      // The notifier times each target itself once told at the longest lead (see createNotifier).
      const leads = this.#deps.leadMinutes(job);
      if (!job.suspend && leads.length > 0) this.#armUpcoming(job, schedule, Math.max(...leads));
    }
    for (const { schedule, tolerance, jobs } of groups.values()) {
      const first = jobs[0]?.name ?? '';
      this.#tickers.push(
        startTicker({
          name: `db-refresher:${first}${jobs.length > 1 ? `+${jobs.length - 1}` : ''}`,
          schedule,
          toleranceSeconds: tolerance,
          log: this.#deps.log,
          handlers: {
            onTick: (scheduledFor) => {
              for (const job of jobs) this.#fire(job, scheduledFor);
            },
            onMissed: (scheduledFor) => {
              for (const job of jobs) this.#noteMissed(job, scheduledFor);
            },
          },
        }),
      );
    }
  }

  async stop(): Promise<void> {
    this.#running = false;
    for (const handle of this.#upcoming) this.#timers.clear(handle);
    this.#upcoming.clear();
    const tickers = this.#tickers.splice(0);
    await Promise.allSettled(tickers.map((t) => t.stop()));
  }

  #fire(job: JobConfig, scheduledFor: Date): void {
    if (!this.#running) return;
    this.#handled(job.name, scheduledFor);
    const lateMs = this.#deps.clock.now().getTime() - scheduledFor.getTime();
    this.#deps.onTick?.(lateMs);
    this.#deps.log.debug({ job: job.name, scheduledFor, lateMs }, 'tick');
    try {
      this.#deps.actions.fire(job, scheduledFor, lateMs > 1500);
    } catch (error) {
      this.#deps.log.error({ err: error, job: job.name }, 'handling a scheduled run failed');
    }
  }

  /** node-cron reports each missed slot on its own; they are collected and passed on as one. */
  #noteMissed(job: JobConfig, scheduledFor: Date): void {
    if (!this.#running) return;
    this.#handled(job.name, scheduledFor);
    const seen = this.#missed.get(job.name);
    if (seen) {
      seen.count += 1;
      if (scheduledFor > seen.newest) seen.newest = scheduledFor;
      return;
    }
    this.#missed.set(job.name, { newest: scheduledFor, count: 1 });
    setImmediate(() => {
      const batch = this.#missed.get(job.name);
      this.#missed.delete(job.name);
      if (batch && this.#running) this.#deps.actions.missed(job, batch.newest, { count: batch.count, atLeast: false });
    });
  }

  #handled(job: string, at: Date): void {
    const seen = this.#handledUpTo.get(job);
    if (!seen || at > seen) this.#handledUpTo.set(job, at);
  }

  /** Arms a timer for the first fire time more than `lead` minutes away; when it goes off, announces it and arms the next. */
  #armUpcoming(job: JobConfig, schedule: Schedule, lead: number): void {
    if (!this.#running) return;
    const leadMs = lead * 60_000;
    const now = this.#deps.clock.now().getTime();
    const at = nextFireTime(schedule, new Date(now + leadMs));
    if (!at) return;
    const wait = (due: number) => {
      const delay = Math.min(Math.max(0, due - this.#deps.clock.now().getTime()), MAX_DELAY_MS);
      const handle = this.#timers.set(() => {
        this.#upcoming.delete(handle);
        if (!this.#running) return;
        if (this.#deps.clock.now().getTime() < due) {
          wait(due);
          return;
        }
        try {
          this.#deps.actions.upcoming(job, at, lead);
        } catch (error) {
          this.#deps.log.warn({ err: error, job: job.name }, 'sending the upcoming notice failed');
        }
        this.#armUpcoming(job, schedule, lead);
      }, delay);
      this.#upcoming.add(handle);
    };
    wait(at.getTime() - leadMs);
  }
}
