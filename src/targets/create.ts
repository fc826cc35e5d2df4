import type { Config, JobConfig } from '../config/types.js';
import type { Kube } from '../kube/client.js';
import type { SqlConnector, Target } from '../ports.js';
import { PgConnector } from '../postgres/sql.js';
import { asCnpgJob, CnpgTarget } from './cnpg/index.js';
import { asLocalJob, LocalTarget } from './local/index.js';

export interface TargetDeps {
  env?: NodeJS.ProcessEnv;
  sql?: SqlConnector;
  /** A Kubernetes client to use instead of the one the job's kubeconfig describes (tests). */
  kube?: Kube;
}

/** The one place that maps a target kind to its implementation. */
export function createTarget(config: Config, job: JobConfig, deps: TargetDeps = {}): Target {
  const jobPath = `jobs[${config.jobs.indexOf(job)}]`;
  switch (job.target.kind) {
    case 'local':
      return new LocalTarget({ job: asLocalJob(job), jobPath, ...(deps.env ? { env: deps.env } : {}) });
    case 'cnpg':
      return new CnpgTarget({
        job: asCnpgJob(job),
        jobPath,
        sql: deps.sql ?? new PgConnector(),
        ...(deps.kube ? { kube: deps.kube } : {}),
      });
  }
}
