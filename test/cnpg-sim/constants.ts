/**
 * Every user-visible string of the simulated CloudNativePG operator, in one place. Copied from
 * CNPG 1.30.0 as /work/shared/cnpg/BEHAVIOUR.md documents it (section numbers below refer to it).
 *
 * Glossary:
 * - Cluster: a `postgresql.cnpg.io/v1` Cluster; X below is its name, N its namespace.
 * - instance: one PostgreSQL server of a Cluster, `X-<serial>`: a PVC (its data) plus a Pod (the process).
 * - serial: the instance number, 1 for the first primary.
 * - owned: an object whose controller ownerReference names the Cluster (CNPG compares kind/apiVersion/name,
 *   not the uid; the Kubernetes garbage collector compares the uid).
 */

export const CNPG_OPERATOR_VERSION = '1.30.0';
/** The commit BEHAVIOUR.md was read from (`v1.30.0-86-ga95a534db`). */
export const CNPG_COMMIT = 'a95a534d';

export const CLUSTER_GROUP = 'postgresql.cnpg.io';
export const CLUSTER_VERSION = 'v1';
export const CLUSTER_PLURAL = 'clusters';
export const CLUSTER_API_VERSION = `${CLUSTER_GROUP}/${CLUSTER_VERSION}`;
export const CLUSTER_KIND = 'Cluster';

/** §2.1 step 1: the operator's default image in 1.30.0 (PostgreSQL 18). */
export const DEFAULT_IMAGE = 'ghcr.io/cloudnative-pg/postgresql:18.6-system-trixie';
export const OPERATOR_IMAGE = `ghcr.io/cloudnative-pg/cloudnative-pg:${CNPG_OPERATOR_VERSION}`;

/** §1.1 `status.phase` strings. */
export const PHASE = {
  firstPrimary: 'Setting up primary',
  creatingReplica: 'Creating a new replica',
  waitingForInstances: 'Waiting for the instances to become active',
  healthy: 'Cluster in healthy state',
  unrecoverable: 'Cluster is unrecoverable and needs manual intervention',
  cannotCreateObjects: 'Unable to create required cluster objects',
  definitionInvalid: 'Invalid cluster definition',
  imageCatalogError: 'Cluster has incomplete or invalid image catalog',
} as const;

/** §1.1 `status.phaseReason` strings. */
export const REASON = {
  creatingPrimary: (instance: string) => `Creating primary instance ${instance}`,
  creatingReplica: (jobName: string) => `Creating replica ${jobName}`,
  instancesNotActive: 'Some instances are not yet active. Please wait.',
  jobsFailed: (jobs: readonly string[]) =>
    `Instance creation failed for the following jobs: ${jobs.join(', ')}. Check the job logs to investigate the cause of the failure.`,
  noPvcs:
    'One or more instances were previously created, but no PersistentVolumeClaims (PVCs) exist. The cluster is in an unrecoverable state. To resolve this, restore the cluster from a recent backup.',
  admission: (paths: readonly string[]) =>
    `the resource failed admission validation on: ${paths.join(', ')} (see the operator logs for details)`,
  serviceNotOwned: (service: string) => `refusing to reconcile service: ${service}, not owned by the cluster`,
  /** internal/controller/primary_lease.go (main after v1.30.0, a95a534d). */
  leaseConflict: (ns: string, name: string, kind: string, owner: string) =>
    `primary lease ${ns}/${name} is controlled by ${kind} "${owner}", refusing to adopt`,
} as const;

/** §1.2 conditions. */
export const CONDITION = {
  ready: {
    type: 'Ready',
    trueReason: 'ClusterIsReady',
    trueMessage: 'Cluster is Ready',
    falseReason: 'ClusterIsNotReady',
    falseMessage: 'Cluster Is Not Ready',
  },
  initialized: {
    type: 'Initialized',
    trueReason: 'BootstrapCompleted',
    trueMessage: 'Cluster has been bootstrapped',
    falseReason: 'BootstrapPending',
    falseMessage: 'Cluster has not been bootstrapped yet',
  },
  consistentSystemId: {
    type: 'ConsistentSystemID',
    trueReason: 'Unique',
    trueMessage: 'A single, unique system ID was found across reporting instances.',
  },
} as const;

/** §2.2, §4.1 labels. */
export const LABEL = {
  cluster: 'cnpg.io/cluster',
  instanceName: 'cnpg.io/instanceName',
  podRole: 'cnpg.io/podRole',
  instanceRole: 'cnpg.io/instanceRole',
  /** Deprecated twin of cnpg.io/instanceRole, still written (§4.2). */
  role: 'role',
  jobRole: 'cnpg.io/jobRole',
  pvcRole: 'cnpg.io/pvcRole',
  userType: 'cnpg.io/userType',
  reload: 'cnpg.io/reload',
  appName: 'app.kubernetes.io/name',
  appInstance: 'app.kubernetes.io/instance',
  appVersion: 'app.kubernetes.io/version',
  appComponent: 'app.kubernetes.io/component',
  appManagedBy: 'app.kubernetes.io/managed-by',
} as const;

export const ANNOTATION = {
  nodeSerial: 'cnpg.io/nodeSerial',
  pvcStatus: 'cnpg.io/pvcStatus',
  operatorVersion: 'cnpg.io/operatorVersion',
  reconciliationLoop: 'cnpg.io/reconciliationLoop',
  passwordPassthrough: 'cnpg.io/passwordPassthrough',
  validation: 'cnpg.io/validation',
  hibernation: 'cnpg.io/hibernation',
  /** Simulation only: the loopback port the -rw Service stands for. */
  loopbackPort: 'sim.db-refresher.io/loopback-port',
} as const;

export const PVC_STATUS = { initializing: 'initializing', ready: 'ready' } as const;
export const PVC_ROLE_DATA = 'PG_DATA';

export const JOB_ROLE = { pgbasebackup: 'pgbasebackup', join: 'join' } as const;
export type JobRole = (typeof JOB_ROLE)[keyof typeof JOB_ROLE];

export const FINALIZER = {
  /** Added by Kubernetes' PVC protection admission plugin; removed when no Pod uses the claim. */
  pvcProtection: 'kubernetes.io/pvc-protection',
  /** Simulation only: stands for kubelet's graceful termination of an instance Pod (the API server deletes Pods at once). */
  podTermination: 'sim.db-refresher.io/kubelet',
  /** Kubernetes garbage collector finalizers (DeleteOptions.propagationPolicy). */
  orphan: 'orphan',
  foreground: 'foregroundDeletion',
} as const;

export const PORT_POSTGRES = 5432;

/** §2.3: the pod-log messages of `/controller/manager instance pgbasebackup`. */
export const LOG_MSG = {
  waitingForServer: 'Waiting for server to be available',
  dbNotAvailable: 'DB not available, will retry',
  unableToBootstrap: 'Unable to bootstrap cluster',
  firstPrimary: 'First primary instance bootstrap, marking myself as primary',
  webhooksDisabled: 'Admission controllers (webhooks) appear to have been disabled',
  waitingPreviousPvc: 'Waiting for the previous PVC to be removed before recreating it',
  jobRunning: 'A job is currently running. Waiting',
} as const;
