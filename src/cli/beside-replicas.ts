import type { Config, JobConfig } from '../config/types.js';
import { RefresherError } from '../errors.js';

/**
 * With `server.leaderElection`, refreshes belong to the elected leader: its
 * job lock lives in its own Pod's state directory and its records in the
 * Kubernetes history. A `run` or `rollback` started from a shell (say,
 * `kubectl exec` into a follower) would hold neither, so it could clone over
 * the copy the leader is refreshing at that moment. Refused, with the verb
 * that asks the leader instead. Read-only dry runs stay allowed.
 */
export function refuseBesideReplicas(config: Config, job: JobConfig, verb: 'run' | 'rollback'): void {
  if (!config.server.leaderElection) return;
  const ask =
    verb === 'run' ? `db-refresher --server <URL> trigger ${job.name} --wait` : `POST /api/v1/jobs/${job.name}/rollback on the service`;
  throw new RefresherError(
    'USAGE',
    `job "${job.name}": ${config.path} elects a leader among several service replicas (server.leaderElection), and a ${verb} started here would hold neither the leader's job lock nor its history, so it could change the copy while the leader refreshes it`,
    { hint: `Ask the service instead: ${ask}.${verb === 'run' ? ' `run --dry-run` is allowed here.' : ''}` },
  );
}
