import { randomBytes } from 'node:crypto';
import { systemClock } from '../clock.js';
import type { Config, JobConfig, NotificationTarget, NotifyEvent } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { Clock, Notifier } from '../ports.js';
import type { RunEvent } from '../run/events.js';
import type { SkipReason } from '../run/record.js';
import { type DeliveryResult, type Destination, Outbox, type OutboxOptions, type OutboxStats } from './outbox.js';
import { renderGeneric } from './render/generic.js';
import { type JobFacts, type MessageFacts, runFacts, skippedFacts, testFacts, upcomingFacts } from './render/message.js';
import { renderSlack } from './render/slack.js';
import { renderTeams } from './render/teams.js';

/**
 * The notifier: turns run events, skipped and upcoming scheduled runs into
 * messages for each notification target a job names, in the format the
 * target's kind asks for, and hands them to the outbox. Calls return at once
 * and never throw; delivery happens in the background.
 */

export interface DeliveringNotifier extends Notifier {
  /** Delivery counters per notification target, for metrics. */
  stats(): OutboxStats;
  /** Sends a sample `test` message to one target and reports the outcome (`db-refresher notify-test`). */
  sendTest(target: string): Promise<DeliveryResult>;
}

export interface NotifierOptions {
  outbox?: Partial<OutboxOptions>;
  clock?: Clock;
}

/** The request body for a target's kind. */
export function renderFor(kind: NotificationTarget['kind'], facts: MessageFacts): string {
  switch (kind) {
    case 'slack':
      return JSON.stringify(renderSlack(facts));
    case 'teams':
      return JSON.stringify(renderTeams(facts));
    case 'generic':
      return JSON.stringify(renderGeneric(facts));
  }
}

export function jobFacts(job: JobConfig): JobFacts {
  return { name: job.name, description: job.description, schedule: job.schedule, timezone: job.timezone };
}

/**
 * The lead times, in minutes, of the targets that want `upcoming` for a job,
 * longest first. The scheduler calls `notifier.upcoming({job, at})` at
 * `at - max(lead)` (or earlier); each target is then told at its own lead time.
 */
export function upcomingLeadMinutes(config: Config, jobName: string): number[] {
  const job = config.jobs.find((j) => j.name === jobName);
  if (!job) return [];
  const leads = job.notify.flatMap((name) => {
    const target = config.notifications[name];
    return target?.events.includes('upcoming') ? [target.upcomingLeadMinutes] : [];
  });
  return [...new Set(leads)].sort((a, b) => b - a);
}

/**
 * A target's one-line summary from config alone, for events that have no run
 * record (skipped, upcoming). Kept here rather than asking the target module:
 * notifications and targets do not depend on each other.
 */
function describeTargetOf(job: JobConfig): { kind: string; summary: string } {
  const { target } = job;
  switch (target.kind) {
    case 'local':
      return { kind: 'local', summary: `local data directory ${target.dataDir}, served on ${target.host}:${target.port}` };
    case 'cnpg':
      return { kind: 'cnpg', summary: `CloudNativePG Cluster ${target.namespace}/${target.clusterName}` };
  }
}

export function createNotifier(config: Config, log: Logger, options: NotifierOptions = {}): DeliveringNotifier {
  const clock = options.clock ?? systemClock;
  const notifyLog = log.child({ component: 'notify' });
  const destinations: Destination[] = Object.entries(config.notifications).map(([name, target]) => ({
    name,
    url: target.url,
    signingSecret: target.kind === 'generic' ? target.secret : undefined,
  }));
  const outbox = new Outbox(destinations, notifyLog, { now: () => clock.now(), ...options.outbox });
  /** Upcoming announcements by target|job|at: waiting for their target's lead time, or sent. Keeps a repeated call from announcing twice. */
  const upcomingSeen = new Map<string, NodeJS.Timeout | 'sent'>();
  const UPCOMING_MEMORY = 1000;

  const jobsByName = new Map(config.jobs.map((j) => [j.name, j]));
  const jobNamed = (name: string) => jobsByName.get(name);

  /**
   * Sends to every target of the job that subscribes to the event; `build` makes the facts for one target.
   * `dryRun`: only targets that opt in with notifyDryRuns hear about dry runs.
   */
  function dispatch(jobName: string, event: NotifyEvent, build: (target: NotificationTarget) => MessageFacts, dryRun = false): void {
    const job = jobNamed(jobName);
    if (!job) {
      notifyLog.debug({ job: jobName, event }, 'no such job in the config; nothing to notify');
      return;
    }
    for (const name of job.notify) {
      const target = config.notifications[name];
      if (!target?.events.includes(event)) continue;
      if (dryRun && !target.notifyDryRuns) continue;
      deliver(name, target, build(target));
    }
  }

  function deliver(name: string, target: NotificationTarget, facts: MessageFacts): Promise<DeliveryResult> {
    return outbox.send(name, { id: facts.id, event: facts.event, job: facts.job.name, body: renderFor(target.kind, facts) });
  }

  /** Never lets an exception out: a notifier problem must not reach the runner or the scheduler. */
  function guarded(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      notifyLog.error({ error: error instanceof Error ? error.message : String(error), what }, 'could not prepare a notification');
    }
  }

  return {
    runEvent(event: RunEvent): void {
      if (event.type !== 'run-queued' && event.type !== 'run-started' && event.type !== 'run-finished') return;
      guarded(event.type, () => {
        const { run } = event;
        // Skipped scheduled runs are announced by the scheduler through skipped(), not as failures here.
        if (event.type === 'run-finished' && run.status === 'skipped') return;
        const kind: 'queued' | 'started' | 'succeeded' | 'failed' =
          event.type === 'run-queued'
            ? 'queued'
            : event.type === 'run-started'
              ? 'started'
              : run.status === 'succeeded'
                ? 'succeeded'
                : 'failed';
        const job = jobNamed(run.job);
        if (!job) return;
        const facts = runFacts({ event: kind, run, job: jobFacts(job), publicUrl: config.publicUrl, now: clock.now() });
        dispatch(run.job, kind, () => facts, run.dryRun);
      });
    },

    skipped(input: { job: string; reason: SkipReason; scheduledFor?: string; detail?: string }): void {
      guarded('skipped', () => {
        const job = jobNamed(input.job);
        if (!job) return;
        const facts = skippedFacts({
          job: jobFacts(job),
          target: describeTargetOf(job),
          reason: input.reason,
          scheduledFor: input.scheduledFor,
          detail: input.detail,
          now: clock.now(),
        });
        dispatch(input.job, 'skipped', () => facts);
      });
    },

    upcoming(input: { job: string; at: string }): void {
      guarded('upcoming', () => {
        const job = jobNamed(input.job);
        const at = Date.parse(input.at);
        if (!job || Number.isNaN(at)) return;
        const target = describeTargetOf(job);
        for (const name of job.notify) {
          const settings = config.notifications[name];
          if (!settings?.events.includes('upcoming')) continue;
          const key = `${name}|${job.name}|${input.at}`;
          if (upcomingSeen.has(key)) continue;
          const send = () => {
            upcomingSeen.set(key, 'sent');
            // Forget the oldest announcements; the scheduler never repeats one that far back.
            for (const old of upcomingSeen.keys()) {
              if (upcomingSeen.size <= UPCOMING_MEMORY) break;
              if (upcomingSeen.get(old) === 'sent') upcomingSeen.delete(old);
            }
            guarded('upcoming', () => {
              const now = clock.now();
              if (now.getTime() >= at) return; // Too late to announce: the run is due already.
              const facts = upcomingFacts({ job: jobFacts(job), target, at: input.at, leadMinutes: settings.upcomingLeadMinutes, now });
              void deliver(name, settings, facts);
            });
          };
          const delay = at - settings.upcomingLeadMinutes * 60_000 - clock.now().getTime();
          if (delay <= 0) {
            send();
            continue;
          }
          const timer = setTimeout(send, delay);
          timer.unref();
          upcomingSeen.set(key, timer);
        }
      });
    },

    flush: (timeoutMs: number) => outbox.flush(timeoutMs),

    stats: () => outbox.stats(),

    async sendTest(name: string): Promise<DeliveryResult> {
      const target = config.notifications[name];
      if (!target) return { delivered: false, attempts: 0, error: `no notification target named "${name}"` };
      const job = config.jobs.find((j) => j.notify.includes(name)) ?? config.jobs[0];
      if (!job) return { delivered: false, attempts: 0, error: 'the config has no jobs' };
      const facts = testFacts({
        notificationTarget: name,
        job: jobFacts(job),
        target: describeTargetOf(job),
        id: `test.${clock.now().toISOString()}.${randomBytes(3).toString('hex')}`,
        now: clock.now(),
      });
      return deliver(name, target, facts);
    },
  };
}
