import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from '../observe/logger.js';
import type { Schedule } from './fire-times.js';

/**
 * node-cron behind a small interface: one task per schedule, in its zone.
 * node-cron gets the schedule as plain value lists (Schedule.nodeCronExpression),
 * so it and schedule.ts never parse an expression differently.
 *
 * A tick arrives with the fire time it belongs to. When the process was
 * stalled past a fire time (event loop blocked, machine asleep), node-cron
 * still runs the newest such time if it is at most `toleranceSeconds` late,
 * and reports the older ones as missed; both are passed on.
 */
export interface CronTicker {
  stop(): Promise<void>;
}

export interface TickHandlers {
  onTick(scheduledFor: Date): void;
  onMissed(scheduledFor: Date): void;
}

export function startCronTicker(input: {
  name: string;
  schedule: Schedule;
  toleranceSeconds: number;
  log: Logger;
  handlers: TickHandlers;
}): CronTicker {
  const { schedule, handlers, log } = input;
  const task: ScheduledTask = cron.createTask(
    schedule.nodeCronExpression,
    (context) => {
      // Hand over and return at once: the run goes on in the background, and
      // node-cron's own overlap tracking is not used (the job lock is).
      handlers.onTick(context.date);
    },
    {
      name: input.name,
      timezone: schedule.timezone,
      // At least 1 s, node-cron's default, so a busy event loop does not turn ticks into misses.
      missedExecutionTolerance: Math.max(1000, input.toleranceSeconds * 1000),
      logger: {
        info: (message) => log.debug({ cron: input.name }, message),
        warn: (message) => log.warn({ cron: input.name }, message),
        error: (message, err) => log.error({ cron: input.name, err: err ?? message }, String(message)),
        debug: (message) => log.trace({ cron: input.name }, String(message)),
      },
    },
  );
  task.on('execution:missed', (context) => handlers.onMissed(context.date));
  void task.start();
  return {
    stop: async () => {
      await task.destroy();
    },
  };
}
