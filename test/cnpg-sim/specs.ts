/**
 * Pure builders, in the manner of CNPG's pkg/specs: a Cluster (and a few facts) in, a Kubernetes object
 * out. Names, labels, annotations and owner references follow BEHAVIOUR.md §2.2 and §4.1.
 */
import { randomBytes } from 'node:crypto';
import {
  ANNOTATION,
  CLUSTER_API_VERSION,
  CLUSTER_KIND,
  CNPG_OPERATOR_VERSION,
  CONDITION,
  FINALIZER,
  JOB_ROLE,
  type JobRole,
  LABEL,
  OPERATOR_IMAGE,
  PHASE,
  PORT_POSTGRES,
  PVC_ROLE_DATA,
  PVC_STATUS,
} from './constants.js';
import type { Obj } from './kube.js';
import { imageMajorVersion } from './validate.js';

export const instanceName = (cluster: string, serial: number): string => `${cluster}-${serial}`;
export const jobName = (cluster: string, serial: number, role: JobRole): string => `${instanceName(cluster, serial)}-${role}`;
export const serviceNames = (cluster: string) => ({ rw: `${cluster}-rw`, ro: `${cluster}-ro`, r: `${cluster}-r` });
export const secretNames = (cluster: string) => ({
  ca: `${cluster}-ca`,
  server: `${cluster}-server`,
  replication: `${cluster}-replication`,
  app: `${cluster}-app`,
  superuser: `${cluster}-superuser`,
});

/** The app secret the instance manager reads: pg_basebackup.secret.name, else X-app (§2.4). */
export function appSecretName(cluster: Obj): string {
  return cluster.spec?.bootstrap?.pg_basebackup?.secret?.name || secretNames(cluster.metadata.name).app;
}

/** The serial in `<cluster>-<serial>`, or undefined. */
export function serialOf(cluster: string, instance: string): number | undefined {
  if (!instance.startsWith(`${cluster}-`)) return undefined;
  const rest = instance.slice(cluster.length + 1);
  return /^[1-9]\d*$/.test(rest) ? Number(rest) : undefined;
}

/** SetAsOwnedBy / SetInheritedDataAndOwnership: controller reference without blockOwnerDeletion. */
export function ownedBy(cluster: Obj): Obj {
  return { apiVersion: CLUSTER_API_VERSION, kind: CLUSTER_KIND, name: cluster.metadata.name, uid: cluster.metadata.uid, controller: true };
}

/** ctrl.SetControllerReference: controller reference with blockOwnerDeletion. */
export function controllerReference(owner: Obj, apiVersion = CLUSTER_API_VERSION, kind = CLUSTER_KIND): Obj {
  return { apiVersion, kind, name: owner.metadata.name, uid: owner.metadata.uid, controller: true, blockOwnerDeletion: true };
}

/** Labels and annotations inherited from spec.inheritedMetadata, plus cnpg.io/cluster (SIDO). */
function inherited(cluster: Obj): { labels: Record<string, string>; annotations: Record<string, string> } {
  const meta = (cluster.spec?.inheritedMetadata ?? {}) as Obj;
  return {
    labels: { ...(meta.labels ?? {}), [LABEL.cluster]: cluster.metadata.name },
    annotations: { ...(meta.annotations ?? {}), [ANNOTATION.operatorVersion]: CNPG_OPERATOR_VERSION },
  };
}

function appLabels(cluster: Obj): Record<string, string> {
  const major = imageMajorVersion(String(cluster.spec?.imageName ?? ''));
  return {
    [LABEL.appName]: 'postgresql',
    [LABEL.appInstance]: cluster.metadata.name,
    [LABEL.appVersion]: major === undefined ? '' : String(major),
    [LABEL.appComponent]: 'database',
    [LABEL.appManagedBy]: 'cloudnative-pg',
  };
}

export function storageSize(cluster: Obj): string {
  const storage = (cluster.spec?.storage ?? {}) as Obj;
  return String(storage.size ?? storage.pvcTemplate?.resources?.requests?.storage ?? '');
}

export function buildPvc(cluster: Obj, serial: number): Obj {
  const { labels, annotations } = inherited(cluster);
  const name = instanceName(cluster.metadata.name, serial);
  const storage = (cluster.spec?.storage ?? {}) as Obj;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name,
      namespace: cluster.metadata.namespace,
      labels: { ...labels, ...appLabels(cluster), [LABEL.instanceName]: name, [LABEL.pvcRole]: PVC_ROLE_DATA },
      annotations: { ...annotations, [ANNOTATION.nodeSerial]: String(serial), [ANNOTATION.pvcStatus]: PVC_STATUS.initializing },
      ownerReferences: [ownedBy(cluster)],
      // Added by Kubernetes' PVC protection admission plugin on a real cluster.
      finalizers: [FINALIZER.pvcProtection],
    },
    spec: {
      ...(storage.pvcTemplate ?? {}),
      accessModes: storage.pvcTemplate?.accessModes ?? ['ReadWriteOnce'],
      resources: { requests: { storage: storageSize(cluster) } },
      ...(storage.storageClass ? { storageClassName: storage.storageClass } : {}),
    },
  };
}

/** What a provisioner and the PV binder would write. */
export function boundPvcStatus(pvc: Obj): Obj {
  return {
    phase: 'Bound',
    accessModes: pvc.spec?.accessModes ?? ['ReadWriteOnce'],
    capacity: { storage: pvc.spec?.resources?.requests?.storage },
  };
}

function bootstrapControllerContainer(): Obj {
  return {
    name: 'bootstrap-controller',
    image: OPERATOR_IMAGE,
    command: ['/manager', 'bootstrap', '/controller/manager'],
    volumeMounts: [{ name: 'scratch-data', mountPath: '/controller' }],
  };
}

function volumes(pvc: string): Obj[] {
  return [
    { name: 'pgdata', persistentVolumeClaim: { claimName: pvc } },
    { name: 'scratch-data', emptyDir: {} },
  ];
}

/** §2.2: `X-<n>-pgbasebackup` (or `X-<n>-join` for replicas). */
export function buildJob(cluster: Obj, serial: number, role: JobRole): Obj {
  const { labels, annotations } = inherited(cluster);
  const clusterName = cluster.metadata.name;
  const instance = instanceName(clusterName, serial);
  const name = jobName(clusterName, serial, role);
  const jobLabels = { ...labels, ...appLabels(cluster), [LABEL.instanceName]: instance, [LABEL.jobRole]: role };
  const command =
    role === JOB_ROLE.pgbasebackup
      ? ['/controller/manager', 'instance', 'pgbasebackup']
      : ['/controller/manager', 'instance', 'join', '--parent-node', serviceNames(clusterName).rw];
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name,
      namespace: cluster.metadata.namespace,
      labels: jobLabels,
      annotations,
      ownerReferences: [controllerReference(cluster)],
    },
    spec: {
      // No backoffLimit: CNPG leaves the Kubernetes default (6) in place (§2.2).
      template: {
        metadata: { labels: { ...jobLabels }, annotations: { ...annotations } },
        spec: {
          hostname: name,
          restartPolicy: 'Never',
          serviceAccountName: cluster.spec?.serviceAccountName || clusterName,
          initContainers: [bootstrapControllerContainer()],
          containers: [
            {
              name: role,
              image: String(cluster.spec?.imageName ?? ''),
              command,
              env: [
                { name: 'PGDATA', value: '/var/lib/postgresql/data/pgdata' },
                { name: 'POD_NAME', value: name },
                { name: 'NAMESPACE', value: cluster.metadata.namespace },
                { name: 'CLUSTER_NAME', value: clusterName },
              ],
              volumeMounts: [
                { name: 'pgdata', mountPath: '/var/lib/postgresql/data' },
                { name: 'scratch-data', mountPath: '/controller' },
              ],
            },
          ],
          volumes: volumes(instance),
        },
      },
    },
  };
}

/** A Pod the Job controller creates from the Job's template: `<job>-<5 random chars>`. */
export function buildJobPod(job: Obj, nodeName: string): Obj {
  const template = (job.spec?.template ?? {}) as Obj;
  const labels = { ...(template.metadata?.labels ?? {}) } as Record<string, string>;
  labels['job-name'] ??= job.metadata.name;
  labels['batch.kubernetes.io/job-name'] ??= job.metadata.name;
  labels['controller-uid'] ??= job.metadata.uid;
  labels['batch.kubernetes.io/controller-uid'] ??= job.metadata.uid;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `${job.metadata.name}-${randomSuffix()}`,
      namespace: job.metadata.namespace,
      labels,
      annotations: { ...(template.metadata?.annotations ?? {}), 'batch.kubernetes.io/job-tracking': '' },
      ownerReferences: [controllerReference(job, 'batch/v1', 'Job')],
    },
    spec: { ...(template.spec ?? {}), nodeName },
  };
}

/** Kubernetes' rand.String alphabet (no vowels, no confusable characters). */
function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  const bytes = randomBytes(5);
  return [...bytes].map((b) => alphabet[b % alphabet.length]).join('');
}

/** §4.1: instance Pod `X-<n>`; role labels come later, once the primary is known. */
export function buildInstancePod(cluster: Obj, serial: number, nodeName: string): Obj {
  const { labels, annotations } = inherited(cluster);
  const clusterName = cluster.metadata.name;
  const name = instanceName(clusterName, serial);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: cluster.metadata.namespace,
      labels: { ...labels, ...appLabels(cluster), [LABEL.instanceName]: name, [LABEL.podRole]: 'instance' },
      annotations: { ...annotations, [ANNOTATION.nodeSerial]: String(serial) },
      ownerReferences: [controllerReference(cluster)],
      // Stands for kubelet's graceful shutdown: the simulator stops PostgreSQL, then removes it.
      finalizers: [FINALIZER.podTermination],
    },
    spec: {
      hostname: name,
      subdomain: clusterName,
      nodeName,
      serviceAccountName: cluster.spec?.serviceAccountName || clusterName,
      terminationGracePeriodSeconds: Number(cluster.spec?.stopDelay ?? 1800),
      initContainers: [bootstrapControllerContainer()],
      containers: [
        {
          name: 'postgres',
          image: String(cluster.spec?.imageName ?? ''),
          command: ['/controller/manager', 'instance', 'run'],
          ports: [
            { name: 'postgresql', containerPort: PORT_POSTGRES, protocol: 'TCP' },
            { name: 'metrics', containerPort: 9187, protocol: 'TCP' },
            { name: 'status', containerPort: 8000, protocol: 'TCP' },
          ],
          volumeMounts: [
            { name: 'pgdata', mountPath: '/var/lib/postgresql/data' },
            { name: 'scratch-data', mountPath: '/controller' },
          ],
        },
      ],
      volumes: volumes(name),
    },
  };
}

/** §4.1 selectors of the three services. */
export function buildServices(cluster: Obj, loopbackPort: number | undefined): Obj[] {
  const { labels, annotations } = inherited(cluster);
  const clusterName = cluster.metadata.name;
  const names = serviceNames(clusterName);
  const make = (name: string, selector: Record<string, string>, extraAnnotations: Record<string, string> = {}): Obj => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name,
      namespace: cluster.metadata.namespace,
      labels,
      annotations: { ...annotations, ...extraAnnotations },
      ownerReferences: [ownedBy(cluster)],
    },
    spec: {
      type: 'ClusterIP',
      ports: [{ name: 'postgres', port: PORT_POSTGRES, targetPort: PORT_POSTGRES, protocol: 'TCP' }],
      selector,
    },
  });
  const portAnnotation: Record<string, string> = loopbackPort === undefined ? {} : { [ANNOTATION.loopbackPort]: String(loopbackPort) };
  return [
    make(names.rw, { [LABEL.cluster]: clusterName, [LABEL.instanceRole]: 'primary' }, portAnnotation),
    make(names.ro, { [LABEL.cluster]: clusterName, [LABEL.instanceRole]: 'replica' }),
    make(names.r, { [LABEL.cluster]: clusterName, [LABEL.podRole]: 'instance' }),
  ];
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** `pkg/specs/secrets.go`: the keys of X-app and X-superuser. */
export function buildCredentialSecret(
  cluster: Obj,
  opts: { name: string; username: string; password: string; dbname: string; userType: 'app' | 'superuser' },
): Obj {
  const { labels, annotations } = inherited(cluster);
  const ns = cluster.metadata.namespace;
  const host = serviceNames(cluster.metadata.name).rw;
  const { username, password, dbname } = opts;
  const user = encodeURIComponent(username);
  const pass = encodeURIComponent(password);
  const fqdn = `${host}.${ns}.svc.cluster.local`;
  const db = dbname === '*' ? '' : encodeURIComponent(dbname);
  const data: Record<string, string> = {
    username,
    user: username,
    password,
    dbname,
    host,
    port: String(PORT_POSTGRES),
    pgpass: `${host}:${PORT_POSTGRES}:${dbname}:${username}:${password}\n`,
    uri: `postgresql://${user}:${pass}@${host}.${ns}:${PORT_POSTGRES}/${db}`,
    'jdbc-uri': `jdbc:postgresql://${host}.${ns}:${PORT_POSTGRES}/${db}?password=${pass}&user=${user}`,
    'fqdn-uri': `postgresql://${user}:${pass}@${fqdn}:${PORT_POSTGRES}/${db}`,
    'fqdn-jdbc-uri': `jdbc:postgresql://${fqdn}:${PORT_POSTGRES}/${db}?password=${pass}&user=${user}`,
  };
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/basic-auth',
    metadata: {
      name: opts.name,
      namespace: ns,
      labels: { ...labels, [LABEL.userType]: opts.userType, [LABEL.reload]: 'true', [LABEL.appManagedBy]: 'cloudnative-pg' },
      annotations,
      ownerReferences: [ownedBy(cluster)],
    },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  };
}

/** X-ca (Opaque, ca.crt/ca.key) and the two kubernetes.io/tls secrets; SetAsOwnedBy only (no cnpg.io/cluster label). */
export function buildPkiSecret(cluster: Obj, name: string, type: 'Opaque' | 'kubernetes.io/tls', data: Record<string, string>): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type,
    metadata: {
      name,
      namespace: cluster.metadata.namespace,
      labels: { [LABEL.appManagedBy]: 'cloudnative-pg' },
      annotations: { [ANNOTATION.operatorVersion]: CNPG_OPERATOR_VERSION },
      ownerReferences: [ownedBy(cluster)],
    },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  };
}

export function buildServiceAccount(cluster: Obj): Obj {
  const { labels, annotations } = inherited(cluster);
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: {
      name: cluster.metadata.name,
      namespace: cluster.metadata.namespace,
      labels,
      annotations,
      ownerReferences: [ownedBy(cluster)],
    },
  };
}

/** v1.30+: the primary Lease `X` (held by the instance manager on a real cluster). */
export function buildLease(cluster: Obj): Obj {
  const { labels, annotations } = inherited(cluster);
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name: cluster.metadata.name,
      namespace: cluster.metadata.namespace,
      labels,
      annotations,
      ownerReferences: [ownedBy(cluster)],
    },
    spec: {},
  };
}

/** metav1.Time: RFC 3339 with whole seconds. */
export function metaTime(date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** CNPG's pgTime.GetCurrentTimestamp: microseconds. */
export function cnpgTimestamp(date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** meta.SetStatusCondition: replaces by type; keeps lastTransitionTime when the status does not change. */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  next: Omit<Condition, 'lastTransitionTime'>,
  now = new Date(),
): Condition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === next.type);
  const old = i >= 0 ? list[i] : undefined;
  const condition: Condition = { ...next, lastTransitionTime: old && old.status === next.status ? old.lastTransitionTime : metaTime(now) };
  if (i >= 0) list[i] = condition;
  else list.push(condition);
  return list;
}

/** §1.2 SetClusterReadyCondition: Ready tracks the phase exactly. */
export function readyCondition(phase: string): Omit<Condition, 'lastTransitionTime'> {
  const c = CONDITION.ready;
  return phase === PHASE.healthy
    ? { type: c.type, status: 'True', reason: c.trueReason, message: c.trueMessage }
    : { type: c.type, status: 'False', reason: c.falseReason, message: c.falseMessage };
}

export function initializedCondition(initialized: boolean): Omit<Condition, 'lastTransitionTime'> {
  const c = CONDITION.initialized;
  return initialized
    ? { type: c.type, status: 'True', reason: c.trueReason, message: c.trueMessage }
    : { type: c.type, status: 'False', reason: c.falseReason, message: c.falseMessage };
}

export function hasTrueCondition(obj: Obj, type: string): boolean {
  return ((obj.status?.conditions ?? []) as Obj[]).some((c) => c.type === type && c.status === 'True');
}

/** Cluster.IsInitialized(): Initialized=True, or the deprecated latestGeneratedNode as a fallback. */
export function isInitialized(cluster: Obj): boolean {
  return hasTrueCondition(cluster, CONDITION.initialized.type) || Number(cluster.status?.latestGeneratedNode ?? 0) > 0;
}
