import type { Command } from 'commander';
import { systemClock } from '../../clock.js';
import type { JobConfig } from '../../config/types.js';
import { RefresherError } from '../../errors.js';
import { buildSchedule, formatInZone, nextFireTimes, scheduleWarnings } from '../../schedule/fire-times.js';
import type { Paint } from '../color.js';
import { examples, globals, load, outputOption, print, requireJob } from '../context.js';
import type { OutputFormat } from '../render.js';

/**
 * `db-refresher schedule [job] --next N`: the next fire times of each job in
 * its own zone, computed exactly as the service's scheduler does, with the
 * warnings a person should read (day-of-month AND day-of-week, DST gaps and
 * overlaps in the coming year).
 */

interface JobSchedule {
  job: string;
  schedule: string | null;
  timezone: string;
  suspended: boolean;
  nextRuns: Array<{ at: string; local: string }>;
  warnings: string[];
}

export function describeSchedules(jobs: readonly JobConfig[], count: number, now: Date): JobSchedule[] {
  return jobs.map((job) => {
    if (!job.schedule) return { job: job.name, schedule: null, timezone: job.timezone, suspended: job.suspend, nextRuns: [], warnings: [] };
    const schedule = buildSchedule(job.schedule, job.timezone);
    return {
      job: job.name,
      schedule: job.schedule,
      timezone: job.timezone,
      suspended: job.suspend,
      nextRuns: nextFireTimes(schedule, now, count).map((at) => ({
        at: at.toISOString(),
        local: formatInZone(at, job.timezone, schedule.hasSeconds),
      })),
      warnings: scheduleWarnings(schedule, now),
    };
  });
}

function renderText(list: readonly JobSchedule[], paint: Paint): string {
  const lines: string[] = [];
  for (const s of list) {
    if (!s.schedule) {
      lines.push(`${s.job}: no schedule (manual runs only)`, '');
      continue;
    }
    lines.push(`${s.job}: "${s.schedule}" in ${s.timezone}${s.suspended ? ' (SUSPENDED: scheduled runs are skipped)' : ''}`);
    lines.push(`  next ${s.nextRuns.length} run${s.nextRuns.length === 1 ? '' : 's'}${s.suspended ? ' once resumed' : ''}:`);
    for (const run of s.nextRuns) lines.push(`    ${run.local}   (${run.at})`);
    for (const warning of s.warnings) lines.push(`  ${paint.yellow('warning:')} ${warning}`);
    lines.push('');
  }
  return `${lines.join('\n').trimEnd()}\n`;
}

export function registerSchedule(program: Command): void {
  program
    .command('schedule')
    .description("show the next fire times of [job] (default: every job) in each job's time zone, with DST and day-field warnings")
    .addHelpText('after', examples(['db-refresher schedule', 'db-refresher schedule qa --next 10', 'db-refresher schedule -o json']))
    .argument('[job]', 'job name')
    .option('-n, --next <count>', 'how many fire times to show', '5')
    .addOption(outputOption().default('text'))
    .action((name: string | undefined, options: { next: string; output: OutputFormat }, command: Command) => {
      const count = Number(options.next);
      if (!Number.isInteger(count) || count < 1 || count > 1000) {
        throw new RefresherError('USAGE', `--next must be a whole number 1-1000, got "${options.next}"`);
      }
      const config = load(globals(command));
      const jobs = name ? [requireJob(config, name)] : config.jobs;
      // A suspended job still shows the times it would run once resumed.
      const list = describeSchedules(jobs, count, systemClock.now());
      print(name ? list[0] : list, options.output, (paint) => renderText(list, paint));
    });
}
