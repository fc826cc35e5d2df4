import type { Config, JobConfig } from '../config/types.js';
import type { Target } from '../ports.js';
import { LocalTarget } from './local/index.js';

/** The one place that maps a target kind to its implementation. */
export function createTarget(config: Config, job: JobConfig, env: NodeJS.ProcessEnv = process.env): Target {
  const index = config.jobs.indexOf(job);
  const jobPath = `jobs[${index}]`;
  switch (job.target.kind) {
    case 'local':
      return new LocalTarget({ job, jobPath, env });
  }
}
