import type { Config } from '../config/types.js';
import type { JobInfo } from '../observe/metrics.js';
import { buildSchedule, nextFireTimes } from '../schedule/fire-times.js';

/** Fire times looked at for the longest gap: a week of an hourly schedule, a year of a weekly one. */
const SAMPLE = 200;

/** The labels of db_refresher_job_info and each schedule's longest gap, from the config (pure). */
export function jobInfo(config: Config, now: Date): JobInfo[] {
  return config.jobs.map((job) => {
    const target = job.target as { kind: string; namespace?: string; clusterName?: string };
    return {
      job: job.name,
      targetKind: target.kind,
      namespace: target.namespace,
      cluster: target.clusterName,
      schedule: job.schedule,
      strategy: job.strategy.kind,
      intervalSeconds: job.schedule ? longestGapSeconds(job.schedule, job.timezone, now) : undefined,
    };
  });
}

export function longestGapSeconds(expression: string, timezone: string, now: Date): number | undefined {
  const times = nextFireTimes(buildSchedule(expression, timezone), now, SAMPLE);
  let longest = 0;
  for (let i = 1; i < times.length; i += 1) longest = Math.max(longest, (times[i] as Date).getTime() - (times[i - 1] as Date).getTime());
  return longest > 0 ? longest / 1000 : undefined;
}
