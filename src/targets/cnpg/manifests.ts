import type { CnpgValues } from '../../config/schema-cnpg.js';
import { LABELS, MANAGED_BY_VALUE } from '../../kube/labels.js';

/**
 * Pure builders for the Kubernetes objects db-refresher writes, in the manner
 * of CNPG's pkg/specs: spec in, object out, no client anywhere near.
 */

export const CLUSTER_GROUP = 'postgresql.cnpg.io';
export const CLUSTER_VERSION = 'v1';
export const CLUSTER_PLURAL = 'clusters';

// db-refresher's own label keys, defined once for everything it writes to Kubernetes.
export { LABELS, MANAGED_BY_VALUE };

export const ANNOTATIONS = {
  job: 'db-refresher.io/job',
  runId: 'db-refresher.io/run-id',
  refreshedAt: 'db-refresher.io/refreshed-at',
  sourceSnapshotAt: 'db-refresher.io/source-snapshot-at',
  outcome: 'db-refresher.io/last-outcome',
  outcomeMessage: 'db-refresher.io/last-outcome-message',
} as const;

export interface ClusterMetadataInput {
  job: string;
  runId: string;
  refreshedAt: string;
  sourceSnapshotAt?: string | undefined;
}

export interface ClusterManifest {
  apiVersion: string;
  kind: 'Cluster';
  metadata: { name: string; namespace: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: Record<string, unknown>;
}

/**
 * The Cluster spec the cnpg-database chart renders for these values: the
 * guide's `bootstrapDB` becomes `bootstrap`, `backup.enabled: false` leaves
 * `backup` out, and every connection parameter is a string, as the CRD wants.
 */
export function buildClusterSpec(values: CnpgValues): Record<string, unknown> {
  const { pg_basebackup: basebackup } = values.bootstrapDB;
  return {
    instances: values.instances,
    ...(values.imageName ? { imageName: values.imageName } : {}),
    storage: {
      size: values.storage.size,
      ...(values.storage.storageClass ? { storageClass: values.storage.storageClass } : {}),
    },
    bootstrap: {
      pg_basebackup: {
        source: basebackup.source,
        database: basebackup.database,
        owner: basebackup.owner,
        ...(basebackup.secret ? { secret: { name: basebackup.secret.name } } : {}),
      },
    },
    externalClusters: values.externalClusters.map((cluster) => ({
      name: cluster.name,
      connectionParameters: { ...cluster.connectionParameters },
      ...(cluster.password ? { password: { ...cluster.password } } : {}),
      ...(cluster.sslKey ? { sslKey: { ...cluster.sslKey } } : {}),
      ...(cluster.sslCert ? { sslCert: { ...cluster.sslCert } } : {}),
      ...(cluster.sslRootCert ? { sslRootCert: { ...cluster.sslRootCert } } : {}),
    })),
  };
}

/** Plain objects merge key by key; anything else (lists, strings, numbers) replaces what was there. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function mergeSpec(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? mergeSpec(current, value) : value;
  }
  return out;
}

/** The Cluster spec and the facts preflight and verification read from it. */
export interface RenderedCluster {
  spec: Record<string, unknown>;
  image: string;
  /** True when neither the values nor `cluster:` name an image, so CloudNativePG's default applies. */
  imageIsDefault: boolean;
  storageSize: string;
  instances: number;
  database: string;
  owner: string;
}

/**
 * The spec of the copy: what the values render to, with each layer merged
 * over it in order (the job's `cluster:` partial spec, and whatever later
 * features add). Pure, so `plan` shows exactly what `run` creates.
 */
export function renderCluster(values: CnpgValues, ...layers: ReadonlyArray<Record<string, unknown> | undefined>): RenderedCluster {
  let spec = buildClusterSpec(values);
  for (const layer of layers) if (layer) spec = mergeSpec(spec, layer);
  const imageName = typeof spec.imageName === 'string' ? spec.imageName : undefined;
  const storage = isPlainObject(spec.storage) ? spec.storage : {};
  const { pg_basebackup: basebackup } = values.bootstrapDB;
  return {
    spec,
    image: imageName ?? CNPG_DEFAULT_IMAGE,
    imageIsDefault: imageName === undefined,
    storageSize: typeof storage.size === 'string' ? storage.size : values.storage.size,
    instances: typeof spec.instances === 'number' ? spec.instances : values.instances,
    database: basebackup.database,
    owner: basebackup.owner,
  };
}

export function buildCluster(input: {
  name: string;
  namespace: string;
  spec: Record<string, unknown>;
  metadata?: ClusterMetadataInput;
}): ClusterManifest {
  const { metadata } = input;
  return {
    apiVersion: `${CLUSTER_GROUP}/${CLUSTER_VERSION}`,
    kind: 'Cluster',
    metadata: {
      name: input.name,
      namespace: input.namespace,
      ...(metadata
        ? {
            labels: { [LABELS.managedBy]: MANAGED_BY_VALUE, [LABELS.job]: metadata.job },
            annotations: {
              [ANNOTATIONS.job]: metadata.job,
              [ANNOTATIONS.runId]: metadata.runId,
              [ANNOTATIONS.refreshedAt]: metadata.refreshedAt,
              ...(metadata.sourceSnapshotAt ? { [ANNOTATIONS.sourceSnapshotAt]: metadata.sourceSnapshotAt } : {}),
            },
          }
        : {}),
    },
    spec: input.spec,
  };
}

/** `ghcr.io/cloudnative-pg/postgresql:16.2-3` → 16; undefined without a version tag. */
export function imageMajorVersion(imageName: string | undefined): number | undefined {
  if (!imageName) return undefined;
  const last = imageName.slice(imageName.lastIndexOf('/') + 1);
  const match = /:(\d+)/.exec(last);
  return match ? Number(match[1]) : undefined;
}

/** The image CNPG 1.30 uses when the values name none (pkg/versions: DefaultImageName). */
export const CNPG_DEFAULT_IMAGE = 'ghcr.io/cloudnative-pg/postgresql:18.6-system-trixie';

/** Names of the objects CNPG creates for Cluster X (BEHAVIOUR.md §4.1) that must be gone before X is recreated. */
export function generatedSecretNames(cluster: string): string[] {
  return [`${cluster}-ca`, `${cluster}-server`, `${cluster}-replication`, `${cluster}-app`, `${cluster}-superuser`];
}

export function readWriteServiceHost(cluster: string, namespace: string): string {
  return `${cluster}-rw.${namespace}.svc`;
}

/** Kubernetes quantity → bytes (binary and decimal suffixes). */
export function quantityToBytes(quantity: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/.exec(quantity);
  if (!match) return undefined;
  const factors: Record<string, number> = {
    '': 1,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    Pi: 2 ** 50,
    Ei: 2 ** 60,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    P: 1e15,
    E: 1e18,
  };
  return Math.round(Number(match[1]) * (factors[match[2] ?? ''] ?? 1));
}
