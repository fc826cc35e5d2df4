/**
 * Pure: CNPG's defaulting and the validation rules that matter for a pg_basebackup Cluster
 * (BEHAVIOUR.md §3.2–3.3, §9). There is no admission webhook in the test API server, so the simulated
 * operator runs these the way CNPG 1.30's in-operator guard does: defaults are written back to the spec,
 * and a violation becomes phase "Invalid cluster definition" (§1.1).
 */
import { ANNOTATION, CLUSTER_GROUP, DEFAULT_IMAGE } from './constants.js';
import type { Obj } from './kube.js';

export interface Violation {
  path: string;
  type: 'Invalid value' | 'Forbidden' | 'Required value';
  /** Shown quoted after the type for 'Invalid value'. */
  value?: string;
  detail: string;
}

/** k8s.io/apimachinery field.Error formatting: `path: Invalid value: "v": detail`. */
export function formatViolation(v: Violation): string {
  if (v.type === 'Invalid value') return `${v.path}: ${v.type}: ${JSON.stringify(v.value ?? '')}: ${v.detail}`;
  return `${v.path}: ${v.type}: ${v.detail}`;
}

/** apierrors.NewInvalid text, as the webhook would have answered it. */
export function formatInvalid(name: string, violations: readonly Violation[]): string {
  const parts = violations.map(formatViolation);
  const body = parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`;
  return `admission webhook "vcluster.cnpg.io" denied the request: Cluster.${CLUSTER_GROUP} "${name}" is invalid: ${body}`;
}

const DNS1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$/;
const VERSION_TAG = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-_.].*)?$/;
const PATH_SEPARATOR = /[/\\]|^\.\.?$|(^|[/\\])\.\.([/\\]|$)/;

/** The tag of an image reference, '' if it has none. `repo:tag@sha256:…` → tag. */
export function imageTag(image: string): string {
  const withoutDigest = image.split('@')[0] ?? '';
  const slash = withoutDigest.lastIndexOf('/');
  const colon = withoutDigest.lastIndexOf(':');
  return colon > slash ? withoutDigest.slice(colon + 1) : '';
}

/** The PostgreSQL major version of an image tag (`16.2-3` → 16, `18.6-system-trixie` → 18). */
export function imageMajorVersion(image: string): number | undefined {
  const match = VERSION_TAG.exec(imageTag(image));
  return match ? Number(match[1]) : undefined;
}

/** The version the image's PostgreSQL would report (`16.2-3` → "16.2"; a bare major → "16.0"). */
export function imageVersionText(image: string): string {
  const match = VERSION_TAG.exec(imageTag(image));
  if (!match) return 'unknown';
  return `${match[1]}.${match[2] ?? '0'}`;
}

export interface ClusterDefaults {
  /** Spec fields to merge-patch; undefined when the spec already carries every default. */
  patch: Obj | undefined;
}

/** §3.2: the defaults the mutating webhook (or, without it, the operator) applies. */
export function computeDefaults(cluster: Obj): ClusterDefaults {
  const spec = (cluster.spec ?? {}) as Obj;
  const patch: Obj = {};
  if (!spec.imageName && !spec.imageCatalogRef) patch.imageName = DEFAULT_IMAGE;
  const basebackup = spec.bootstrap?.pg_basebackup as Obj | undefined;
  if (basebackup) {
    const database = basebackup.database || 'app';
    const owner = basebackup.owner || database;
    if (basebackup.database !== database || basebackup.owner !== owner) {
      patch.bootstrap = { pg_basebackup: { database, owner } };
    }
  }
  if (!spec.logLevel) patch.logLevel = 'info';
  if (!spec.affinity?.podAntiAffinityType) patch.affinity = { podAntiAffinityType: 'preferred' };
  return { patch: Object.keys(patch).length > 0 ? patch : undefined };
}

/** The spec with defaults applied (what validation looks at). */
export function withDefaults(cluster: Obj): Obj {
  const { patch } = computeDefaults(cluster);
  if (!patch) return cluster;
  const spec = { ...(cluster.spec ?? {}) };
  for (const [key, value] of Object.entries(patch)) {
    if (key === 'bootstrap') {
      spec.bootstrap = { ...spec.bootstrap, pg_basebackup: { ...spec.bootstrap?.pg_basebackup, ...value.pg_basebackup } };
    } else if (key === 'affinity') {
      spec.affinity = { ...spec.affinity, ...value };
    } else {
      spec[key] = value;
    }
  }
  return { ...cluster, spec };
}

/** §3.3 rules on a (defaulted) Cluster; empty when valid. */
export function validateCluster(cluster: Obj): Violation[] {
  const violations: Violation[] = [];
  const name = String(cluster.metadata?.name ?? '');
  const annotations = (cluster.metadata?.annotations ?? {}) as Record<string, string>;
  const spec = (cluster.spec ?? {}) as Obj;

  if (!DNS1035.test(name) || name.length > 63) {
    violations.push({ path: 'metadata.name', type: 'Invalid value', value: name, detail: 'cluster name must be a valid DNS label' });
  }
  if (name.length > 50) {
    violations.push({
      path: 'metadata.name',
      type: 'Invalid value',
      value: name,
      detail: 'the maximum length of a cluster name is 50 characters',
    });
  }

  const hibernation = annotations[ANNOTATION.hibernation];
  if (hibernation !== undefined && hibernation !== 'on' && hibernation !== 'off') {
    violations.push({
      path: `metadata.annotations.${ANNOTATION.hibernation}`,
      type: 'Invalid value',
      value: hibernation,
      detail: 'Annotation value for hibernation should be "on" or "off"',
    });
  }

  const storage = (spec.storage ?? {}) as Obj;
  const templateSize = storage.pvcTemplate?.resources?.requests?.storage;
  const size = storage.size ?? templateSize;
  if (size === undefined || size === '') {
    violations.push({
      path: 'spec.storage.size',
      type: 'Invalid value',
      value: '',
      detail: 'Size not configured. Please add it, or a storage request in the pvcTemplate.',
    });
  } else if (!QUANTITY.test(String(size))) {
    violations.push({ path: 'spec.storage.size', type: 'Invalid value', value: String(size), detail: "Size value isn't valid" });
  }

  if (spec.imageName) {
    const image = String(spec.imageName);
    const tag = imageTag(image);
    if (image.includes('@') && tag === '') {
      violations.push({
        path: 'spec.imageName',
        type: 'Invalid value',
        value: image,
        detail: "Can't use just the image sha as we can't detect upgrades",
      });
    } else if (tag === '' || tag === 'latest') {
      violations.push({
        path: 'spec.imageName',
        type: 'Invalid value',
        value: image,
        detail: "Can't use 'latest' as image tag as we can't detect upgrades",
      });
    } else if (!VERSION_TAG.test(tag)) {
      violations.push({ path: 'spec.imageName', type: 'Invalid value', value: image, detail: 'invalid version tag' });
    }
  }

  if (spec.superuserSecret && !spec.superuserSecret.name) {
    violations.push({
      path: 'spec.superuserSecret.name',
      type: 'Invalid value',
      value: '',
      detail: "Super user secret name can't be empty",
    });
  }

  const bootstrap = (spec.bootstrap ?? {}) as Obj;
  const methods = ['initdb', 'recovery', 'pg_basebackup'].filter((m) => bootstrap[m] !== undefined && bootstrap[m] !== null);
  if (methods.length > 1) {
    violations.push({ path: 'spec.bootstrap', type: 'Forbidden', detail: 'Only one bootstrap method can be specified at a time' });
  }

  const externalClusters = (spec.externalClusters ?? []) as Obj[];
  const names = externalClusters.map((c) => String(c.name ?? ''));
  if (new Set(names).size !== names.length) {
    violations.push({
      path: 'spec.externalClusters',
      type: 'Invalid value',
      value: names.join(','),
      detail: 'the list of external clusters contains duplicate values',
    });
  }
  externalClusters.forEach((ext, i) => {
    const base = `spec.externalClusters[${i}]`;
    if (!ext.connectionParameters && !ext.plugin && !ext.barmanObjectStore) {
      violations.push({
        path: base,
        type: 'Required value',
        detail: 'one of connectionParameters, plugin and barmanObjectStore is required',
      });
    }
    if (PATH_SEPARATOR.test(String(ext.name ?? ''))) {
      violations.push({
        path: `${base}.name`,
        type: 'Invalid value',
        value: String(ext.name),
        detail: "cannot contain a path separator or a '..' component",
      });
    }
    for (const field of ['password', 'sslCert', 'sslKey', 'sslRootCert']) {
      const selector = ext[field] as Obj | undefined;
      if (!selector) continue;
      for (const part of ['name', 'key']) {
        const value = String(selector[part] ?? '');
        if (PATH_SEPARATOR.test(value)) {
          violations.push({
            path: `${base}.${field}.${part}`,
            type: 'Invalid value',
            value,
            detail: "cannot contain a path separator or a '..' component",
          });
        }
      }
    }
  });

  const basebackup = bootstrap.pg_basebackup as Obj | undefined;
  if (basebackup) {
    const source = String(basebackup.source ?? '');
    if (!names.includes(source)) {
      violations.push({
        path: 'spec.bootstrap.pg_basebackup.source',
        type: 'Invalid value',
        value: source,
        detail: `External cluster ${source} not found`,
      });
    }
    if (basebackup.database && !basebackup.owner) {
      violations.push({
        path: 'spec.bootstrap.pg_basebackup.owner',
        type: 'Invalid value',
        value: '',
        detail: 'You need to specify the database owner user',
      });
    }
    if (!basebackup.database && basebackup.owner) {
      violations.push({
        path: 'spec.bootstrap.pg_basebackup.database',
        type: 'Invalid value',
        value: '',
        detail: 'You need to specify the database name',
      });
    }
  }
  return violations;
}

/** The distinct field paths of the violations, in order (what the guard puts in phaseReason). */
export function violationPaths(violations: readonly Violation[]): string[] {
  return [...new Set(violations.map((v) => v.path))];
}
