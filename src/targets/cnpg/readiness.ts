import type { KubeObject } from '../../kube/retry.js';

/**
 * Reading a Cluster's status: is the copy up, still on its way, or stuck where
 * only a person can help? Pure: the Cluster and its clone Job as the API
 * returned them in, a decision out. The strings are CloudNativePG 1.30's
 * (BEHAVIOUR.md §1.1, §2.5), kept here and nowhere else.
 */

/** `status.phase` strings db-refresher acts on. */
export const PHASE = {
  healthy: 'Cluster in healthy state',
  firstPrimary: 'Setting up primary',
  unrecoverable: 'Cluster is unrecoverable and needs manual intervention',
  cannotCreateObjects: 'Unable to create required cluster objects',
  definitionInvalid: 'Invalid cluster definition',
  imageCatalogError: 'Cluster has incomplete or invalid image catalog',
  unknownPlugin: 'Cluster cannot proceed to reconciliation due to an unknown plugin being required',
  pluginFailure: 'Cluster cannot proceed to reconciliation due to an error while interacting with plugins',
  architectureBinaryMissing: 'Cluster cannot execute instance online upgrade due to missing architecture binary',
  diskFull: 'Not enough disk space',
  waitingForUser: 'Waiting for user action',
} as const;

/**
 * Phases CloudNativePG stays in until someone changes something: it retries,
 * but the retry cannot succeed by itself. Waiting for the ready timeout (6 h by
 * default) would only hide them, so the start phase fails at once.
 */
const NEEDS_A_PERSON: ReadonlyMap<string, string> = new Map([
  [PHASE.unrecoverable, 'the clone cannot finish; CloudNativePG needs manual intervention'],
  [
    PHASE.cannotCreateObjects,
    'CloudNativePG cannot create the objects the Cluster needs (Secrets, Services, ServiceAccount, Lease) and retries forever',
  ],
  [PHASE.definitionInvalid, 'the Cluster spec failed CloudNativePG admission validation; the operator stops reconciling it'],
  [PHASE.imageCatalogError, 'the image catalog the Cluster names is missing or incomplete'],
  [PHASE.unknownPlugin, 'the Cluster needs a CNPG-I plugin the operator does not know'],
  [PHASE.pluginFailure, 'a CNPG-I plugin the Cluster needs keeps failing'],
  [PHASE.architectureBinaryMissing, 'the operator image lacks the binary for the nodes’ architecture'],
  [PHASE.diskFull, 'an instance has no disk space left'],
  [PHASE.waitingForUser, 'the Cluster waits for a supervised action (primaryUpdateStrategy: supervised)'],
]);

type Condition = { type: string; status: string; reason?: string; message?: string };

export interface ClusterObject extends KubeObject {
  spec?: { instances?: number };
  status?: {
    phase?: string;
    phaseReason?: string;
    readyInstances?: number;
    conditions?: Condition[];
  };
}

export interface JobObject extends KubeObject {
  status?: {
    active?: number;
    failed?: number;
    succeeded?: number;
    startTime?: string;
    conditions?: Condition[];
  };
}

export type Readiness =
  | { state: 'healthy' }
  | { state: 'waiting'; phase: string | undefined; jobActive: boolean }
  /** `cause` is what failed, in CloudNativePG's words; `why` says what it means for the refresh. */
  | { state: 'failed'; cause: string; why: string; jobFailed: boolean };

/** The bootstrap Job of the first instance (BEHAVIOUR.md §2.2). */
export function cloneJobName(cluster: string): string {
  return `${cluster}-1-pgbasebackup`;
}

function describePhase(status: NonNullable<ClusterObject['status']>): string {
  return `${status.phase}${status.phaseReason ? `: ${status.phaseReason.trim()}` : ''}`;
}

export function decideReadiness(input: {
  cluster: ClusterObject | undefined;
  job: JobObject | undefined;
  /** Instances the values ask for, when the Cluster does not say. */
  instances: number;
}): Readiness {
  const { cluster, job } = input;
  if (!cluster) {
    return { state: 'failed', cause: 'the Cluster is gone', why: 'it was deleted while db-refresher waited for it', jobFailed: false };
  }
  const status = cluster.status ?? {};
  const failedCondition = job?.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
  if (status.phase && NEEDS_A_PERSON.has(status.phase)) {
    return {
      state: 'failed',
      cause: describePhase(status),
      why: NEEDS_A_PERSON.get(status.phase) ?? '',
      jobFailed: failedCondition !== undefined,
    };
  }
  if (failedCondition) {
    // The operator registers "unrecoverable" on its next pass; until then the phase still says "Setting up primary".
    const name = job?.metadata?.name ?? 'the clone Job';
    const reason = [failedCondition.reason, failedCondition.message].filter(Boolean).join(': ');
    return {
      state: 'failed',
      cause: `the clone Job ${name} failed${reason ? ` (${reason})` : ''}`,
      why: 'every Pod it started failed, so CloudNativePG will mark the Cluster unrecoverable',
      jobFailed: true,
    };
  }
  const ready = status.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  const wanted = cluster.spec?.instances ?? input.instances;
  if (status.phase === PHASE.healthy && ready && status.readyInstances === wanted) return { state: 'healthy' };
  return { state: 'waiting', phase: status.phase, jobActive: (job?.status?.active ?? 0) > 0 };
}
