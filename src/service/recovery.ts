import type { JobConfig } from '../config/types.js';
import { interruptRun, type RunRecord, resumePoint } from '../run/record.js';
import { resumePolicy } from '../runner/phases/index.js';
import { lastAliveAt } from '../runner/settle.js';
import { planCatchUp } from '../schedule/fire-times.js';
import { describeCount, type TickDispatcher } from './dispatch.js';
import type { ServiceParts } from './parts.js';

/** How many of a job's newest records are read at startup (status, resumption, the last scheduled time). */
const HISTORY_SCAN = 25;
/** Jobs recovered at a time: the Kubernetes store makes one request per job. */
const CONCURRENCY = 16;

/**
 * What the service does at start-up, per job: read its history once (job
 * status, metrics), take up or mark interrupted the runs an earlier process
 * left unfinished, and handle the fire times that passed while it was down.
 */
export class StartupRecovery {
  readonly #parts: ServiceParts;
  readonly #dispatch: TickDispatcher;

  constructor(parts: ServiceParts, dispatch: TickDispatcher) {
    this.#parts = parts;
    this.#dispatch = dispatch;
  }

  async recoverAll(jobs: readonly JobConfig[]): Promise<void> {
    for (let i = 0; i < jobs.length; i += CONCURRENCY) {
      await Promise.all(jobs.slice(i, i + CONCURRENCY).map((job) => this.#recoverJob(job)));
    }
  }

  async #recoverJob(job: JobConfig): Promise<void> {
    const { store, log, board, metrics } = this.#parts;
    let records: RunRecord[];
    try {
      records = await store.list(job.name, { limit: HISTORY_SCAN });
    } catch (error) {
      log.error({ err: error, job: job.name }, 'could not read run history; this job starts without it');
      return;
    }
    const lastSuccess = records.find((r) => r.status === 'succeeded' && !r.dryRun) ?? (await this.#olderSuccess(job, records));
    board.seed(job.name, lastSuccess ? [...records, lastSuccess] : records);
    try {
      const suspension = await store.getSuspension(job.name);
      if (suspension) board.suspension(job.name, suspension);
    } catch (error) {
      log.error({ err: error, job: job.name }, "could not read the job's suspension from history; the config's suspend applies");
    }
    if (lastSuccess) metrics.seedLastSuccess(lastSuccess);
    const busy = await this.#takeUpUnfinished(job, [...records, ...(await this.#olderUnfinished(job, records))]);
    // A run that died holding the lock is settled even when it is older than the records read above.
    if (!busy)
      await this.#parts.runner.settleStale(job).catch((error: unknown) => log.warn({ err: error, job: job.name }, 'could not settle'));
    if (!busy) await this.#catchUp(job, records);
  }

  /**
   * Unfinished records older than the newest HISTORY_SCAN (skipped ticks and short runs pile up in
   * front of a run that died): with no lock naming them, nothing else would ever settle them.
   */
  async #olderUnfinished(job: JobConfig, newest: readonly RunRecord[]): Promise<RunRecord[]> {
    const { store, log } = this.#parts;
    if (!store.unfinished || newest.length < HISTORY_SCAN) return [];
    const seen = new Set(newest.map((r) => r.id));
    try {
      return (await store.unfinished(job.name)).filter((r) => !seen.has(r.id));
    } catch (error) {
      log.warn({ err: error, job: job.name }, 'could not look for unfinished runs among older records');
      return [];
    }
  }

  /** The newest success when it is older than the records read (skipped ticks came after it): the data age starts there. */
  async #olderSuccess(job: JobConfig, newest: readonly RunRecord[]): Promise<RunRecord | undefined> {
    const { store, log } = this.#parts;
    if (!store.lastSuccess || newest.length < HISTORY_SCAN) return undefined;
    return store.lastSuccess(job.name).catch((error: unknown) => {
      log.warn({ err: error, job: job.name }, 'could not look for the last success among older records');
      return undefined;
    });
  }

  /** Settles runs of other processes (`db-refresher run`) that died holding a job's lock while the service runs. */
  sweepStaleLocks(): void {
    const { locks, config, runner, track } = this.#parts;
    for (const name of locks.lockedJobs()) {
      const job = config.jobs.find((j) => j.name === name);
      if (!job || locks.holder(name)) continue;
      track(runner.settleStale(job));
    }
  }

  /** Resumes the newest unfinished run when safe, marks the others interrupted. Returns whether the job is now busy. */
  async #takeUpUnfinished(job: JobConfig, records: readonly RunRecord[]): Promise<boolean> {
    const parts = this.#parts;
    const { log } = parts;
    const unfinished = records.filter((r) => r.status === 'running' || r.status === 'queued');
    let busy = false;
    for (const record of unfinished) {
      const holder = parts.locks.holder(job.name);
      if (holder?.runId === record.id) {
        // Another live process (`db-refresher run`) is doing this run: leave it alone.
        log.info({ job: job.name, runId: record.id, pid: holder.pid }, 'run in progress in another process');
        busy = true;
        continue;
      }
      // Shutting down already: leave it as it is for the next start.
      if (!parts.accepting()) continue;
      const point = busy ? undefined : resumePoint(record, resumePolicy(job.target.kind));
      let reason = 'the service stopped during this run, and a newer unfinished run of the job was taken up instead';
      if (point?.ok) {
        try {
          parts.follow(await parts.runner.resume(record, job));
          busy = true;
          continue;
        } catch (error) {
          log.warn({ err: error, job: job.name, runId: record.id }, 'could not resume the run');
          reason = `the service stopped during this run, and it could not be resumed: ${error instanceof Error ? error.message : String(error)}`;
        }
      } else if (point) {
        reason = point.reason;
      }
      // A process that died holding the lock was last alive at its last heartbeat, not now.
      const beat = parts.locks.heartbeat(job.name);
      const at = beat?.holder.runId === record.id ? lastAliveAt(record, beat.at) : parts.clock.now();
      const run = interruptRun(record, at, reason);
      await parts.store.save(run);
      log.warn({ job: job.name, runId: run.id, reason }, 'marked an unfinished run interrupted');
      parts.board.settled(run);
      parts.metrics.onRecord(run);
      parts.notifier.runEvent({ type: 'run-finished', run });
    }
    return busy;
  }

  /** Handles the fire times that passed while the service was down, as a Kubernetes CronJob with startingDeadlineSeconds would. */
  async #catchUp(job: JobConfig, records: readonly RunRecord[]): Promise<void> {
    const { scheduler, log, clock, metrics, board } = this.#parts;
    const schedule = scheduler.schedule(job.name);
    if (!schedule || board.suspended(job) || !job.schedule) return;
    const last = records
      .filter((r) => r.trigger.scheduledFor)
      .reduce<RunRecord | undefined>((a, b) => ((a?.trigger.scheduledFor ?? '') >= (b.trigger.scheduledFor ?? '') ? a : b), undefined);
    if (!last?.trigger.scheduledFor) return; // Never ran on a schedule: nothing can have been missed.
    if ((last.trigger.schedule ?? job.schedule) !== job.schedule || (last.trigger.timezone ?? job.timezone) !== job.timezone) {
      log.info({ job: job.name, was: last.trigger.schedule, now: job.schedule }, 'schedule changed: earlier fire times are not caught up');
      return;
    }
    const now = clock.now();
    const decision = planCatchUp(schedule, new Date(last.trigger.scheduledFor), now, job.startingDeadlineSeconds);
    const count = describeCount(decision.action === 'none' ? { count: 0, atLeast: false } : decision.missed);
    switch (decision.action) {
      case 'none':
        return;
      case 'run': {
        log.info({ job: job.name, scheduledFor: decision.scheduledFor, missed: decision.missed }, 'catching up a missed scheduled run');
        const older = decision.missed.count - 1;
        if (older > 0) metrics.skipped(job.name, 'missed', older);
        await this.#dispatch.startScheduled(job, decision.scheduledFor, 'catch-up', {
          reason: `scheduled for ${decision.scheduledFor.toISOString()}, while the service was not running${older > 0 ? ` (${count} fire times passed; only the newest runs)` : ''}`,
        });
        return;
      }
      case 'missed':
        await this.#dispatch.recordSkip(
          job,
          'missed',
          decision.scheduledFor,
          `${count} scheduled time${decision.missed.count === 1 ? '' : 's'} passed while the service was not running; the newest was ${decision.ageSeconds} s ago, more than startingDeadlineSeconds (${job.startingDeadlineSeconds})`,
          decision.missed.count,
        );
        return;
    }
  }
}
