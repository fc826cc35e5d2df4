import { systemClock } from '../clock.js';
import type { Config, JobConfig } from '../config/types.js';
import type { Kube } from '../kube/client.js';
import type { Clock, SqlConnector, Target } from '../ports.js';
import { PgConnector } from '../postgres/sql.js';
import { BlueGreenCnpgTarget } from './cnpg/blue-green-target.js';
import { asCnpgJob, CnpgTarget } from './cnpg/index.js';
import { BlueGreenLocalTarget } from './local/blue-green.js';
import { asLocalJob, LocalTarget } from './local/index.js';

export interface TargetDeps {
  env?: NodeJS.ProcessEnv;
  sql?: SqlConnector;
  clock?: Clock;
  /** A Kubernetes client to use instead of the one the job's kubeconfig describes (tests). */
  kube?: Kube;
}

/** The one place that maps a target kind to its implementation. */
export function createTarget(config: Config, job: JobConfig, deps: TargetDeps = {}): Target {
  const jobPath = `jobs[${config.jobs.indexOf(job)}]`;
  switch (job.target.kind) {
    case 'local':
      if (job.strategy.kind === 'blueGreen')
        return new BlueGreenLocalTarget({
          job: asLocalJob(job),
          jobPath,
          strategy: job.strategy,
          ...(deps.env ? { env: deps.env } : {}),
          sql: deps.sql ?? new PgConnector(),
        });
      return new LocalTarget({
        job: asLocalJob(job),
        jobPath,
        sql: deps.sql ?? new PgConnector(),
        ...(deps.env ? { env: deps.env } : {}),
        ...(deps.clock ? { clock: deps.clock } : {}),
      });
    case 'cnpg':
      if (job.strategy.kind === 'blueGreen')
        return new BlueGreenCnpgTarget({
          job: asCnpgJob(job),
          jobPath,
          strategy: job.strategy,
          sql: deps.sql ?? new PgConnector(),
          ...(deps.kube ? { kube: deps.kube } : {}),
        });
      return new CnpgTarget({
        job: asCnpgJob(job),
        jobPath,
        sql: deps.sql ?? new PgConnector(),
        clock: deps.clock ?? systemClock,
        ...(deps.kube ? { kube: deps.kube } : {}),
      });
  }
}
