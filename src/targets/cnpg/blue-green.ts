import type { CnpgValues } from '../../config/schema-cnpg.js';
import { ANNOTATIONS, LABELS, MANAGED_BY_VALUE, quantityToBytes } from './manifests.js';

/**
 * Blue/green for CloudNativePG, pure: names, the stable Service, and which step comes next given what
 * the API shows. The two Clusters alternate between the names `<clusterName>-a` and `<clusterName>-b`:
 * - the names are known in advance, so the chart's Role can list them by name (RBAC cannot limit a
 *   name that contains a run id), and `kubectl get cluster` shows at most two;
 * - a third Cluster can never appear, so quota and cleanup reason about exactly two;
 * - the active one is whichever the Service selects; nothing else records it, so the swap (one update
 *   of the selector) is atomic and a crash on either side of it leaves a consistent state.
 * The Service selects `cnpg.io/cluster: <active>` and `cnpg.io/instanceRole: primary`, the labels CNPG
 * 1.30 writes on the primary's Pod, as its own `-rw` Service does (BEHAVIOUR.md §4.2, §10.5). It carries
 * neither `cnpg.io/isManaged` nor `cnpg.io/cluster`, and its name is none of a Cluster's own Service
 * names, so the operator leaves it alone (§10.5, exceptions 1 and 3).
 *
 * A job switched from strategy recreate still has the Cluster recreate made, named `<clusterName>`
 * (the "legacy" Cluster). It is adopted as the live copy: the first blueGreen run clones `-a` beside
 * it, the swap retires it like any outgoing Cluster, and it is deleted once keepPrevious has passed.
 * Rollback does not switch back to it (the Service only ever selects `-a` or `-b`).
 */

export type CnpgSlot = 'a' | 'b';

export const BLUE_GREEN_ANNOTATIONS = {
  /** On a Cluster that stopped serving: when, for keepPrevious. Ignored while the Cluster is active. */
  retiredAt: 'db-refresher.io/retired-at',
  /** On the stable Service: the run that last pointed it somewhere. */
  switchedBy: 'db-refresher.io/switched-by-run',
} as const;

export const INSTANCE_ROLE_LABEL = 'cnpg.io/instanceRole';
export const CLUSTER_LABEL = 'cnpg.io/cluster';

export function slotClusterName(clusterName: string, slot: CnpgSlot): string {
  return `${clusterName}-${slot}`;
}

export const otherSlot = (slot: CnpgSlot): CnpgSlot => (slot === 'a' ? 'b' : 'a');

export interface ServiceManifest {
  apiVersion: 'v1';
  kind: 'Service';
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    resourceVersion?: string;
  };
  spec: {
    type: 'ClusterIP';
    selector: Record<string, string>;
    ports: Array<{ name: string; port: number; targetPort: number; protocol: 'TCP' }>;
  };
}

/** The stable Service clients connect to, pointing at one Cluster's primary. */
export function buildStableService(input: {
  name: string;
  namespace: string;
  job: string;
  cluster: string;
  runId: string;
}): ServiceManifest {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: input.name,
      namespace: input.namespace,
      labels: { [LABELS.managedBy]: MANAGED_BY_VALUE, [LABELS.job]: input.job },
      annotations: { [ANNOTATIONS.job]: input.job, [BLUE_GREEN_ANNOTATIONS.switchedBy]: input.runId },
    },
    spec: {
      type: 'ClusterIP',
      selector: { [CLUSTER_LABEL]: input.cluster, [INSTANCE_ROLE_LABEL]: 'primary' },
      ports: [{ name: 'postgres', port: 5432, targetPort: 5432, protocol: 'TCP' }],
    },
  };
}

export interface ServiceView {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  selector: Record<string, string>;
}

export type ClusterView =
  | { exists: false }
  | {
      exists: true;
      labels: Record<string, string>;
      annotations: Record<string, string>;
      healthy: boolean;
      deleting: boolean;
    };

export interface CnpgBlueGreenView {
  job: string;
  clusterName: string;
  serviceName: string;
  namespace: string;
  service: ServiceView | undefined;
  clusters: Record<CnpgSlot, ClusterView>;
  /** The Cluster named `<clusterName>`, as strategy recreate made it (absent from views that did not read it). */
  legacy?: ClusterView;
}

const isOurs = (labels: Record<string, string>, annotations: Record<string, string>, job: string): boolean =>
  labels[LABELS.managedBy] === MANAGED_BY_VALUE && annotations[ANNOTATIONS.job] === job;

/** Why db-refresher may not take the Service over, or undefined. */
export function serviceRefusal(view: CnpgBlueGreenView): string | undefined {
  const s = view.service;
  if (!s || isOurs(s.labels, s.annotations, view.job)) return undefined;
  return `Service ${view.namespace}/${view.serviceName} exists and db-refresher did not create it for job "${view.job}"; it will not be changed. Choose another strategy.serviceName, or delete that Service if clients should reach the copy through db-refresher's`;
}

/** The legacy Cluster (`<clusterName>`) when it is this job's and not being deleted. */
export function legacyCluster(view: CnpgBlueGreenView): Extract<ClusterView, { exists: true }> | undefined {
  const legacy = view.legacy;
  return legacy?.exists && !legacy.deleting && isOurs(legacy.labels, legacy.annotations, view.job) ? legacy : undefined;
}

/** The Cluster clients use now and the swap retires: the active slot's, or before the first swap the legacy one. */
export function outgoingCluster(view: CnpgBlueGreenView): string | undefined {
  const active = activeSlot(view);
  if (active) return slotClusterName(view.clusterName, active);
  return legacyCluster(view) && !serviceRefusal(view) ? view.clusterName : undefined;
}

/** The slot the Service points at; undefined before the first swap. */
export function activeSlot(view: CnpgBlueGreenView): CnpgSlot | undefined {
  const selected = view.service?.selector[CLUSTER_LABEL];
  if (selected === slotClusterName(view.clusterName, 'a')) return 'a';
  if (selected === slotClusterName(view.clusterName, 'b')) return 'b';
  return undefined;
}

export type PreparePlan =
  | {
      ok: true;
      slot: CnpgSlot;
      name: string /** A Cluster in that slot that must go first (a retired or half-made copy). */;
      remove?: string | undefined;
    }
  | { ok: false; message: string };

/** Where the new copy is built: the slot the Service does not point at. */
export function planPrepare(view: CnpgBlueGreenView): PreparePlan {
  const refusal = serviceRefusal(view);
  if (refusal) return { ok: false, message: refusal };
  const active = activeSlot(view);
  const slot = active ? otherSlot(active) : 'a';
  const name = slotClusterName(view.clusterName, slot);
  const there = view.clusters[slot];
  if (!there.exists) return { ok: true, slot, name };
  if (!isOurs(there.labels, there.annotations, view.job))
    return {
      ok: false,
      message: `Cluster ${view.namespace}/${name} exists and db-refresher did not create it for job "${view.job}"; the blue/green copies of this job are named ${slotClusterName(view.clusterName, 'a')} and ${slotClusterName(view.clusterName, 'b')}. Move it away or choose another clusterName`,
    };
  return { ok: true, slot, name, remove: name };
}

export type CleanupPlan =
  | { action: 'none' }
  | { action: 'delete'; name: string; why: string }
  | { action: 'wait'; until: Date; name: string };

/**
 * Outside a run: the Cluster the Service does not point at goes when keepPrevious has passed since it
 * retired, or at once when it never served (a half-made copy of a run that died). Before the first swap
 * nothing is deleted: which copy clients use is not known yet.
 */
export function planCleanup(view: CnpgBlueGreenView, keepPreviousSeconds: number, now: Date): CleanupPlan {
  const active = activeSlot(view);
  if (!active || serviceRefusal(view)) return { action: 'none' };
  const slot = otherSlot(active);
  const name = slotClusterName(view.clusterName, slot);
  const there = view.clusters[slot];
  if (!there.exists || there.deleting || !isOurs(there.labels, there.annotations, view.job)) return { action: 'none' };
  const retiredAt = Date.parse(there.annotations[BLUE_GREEN_ANNOTATIONS.retiredAt] ?? '');
  if (Number.isNaN(retiredAt))
    return { action: 'delete', name, why: 'it never served: a half-made copy of a run that did not reach the swap' };
  const until = new Date(retiredAt + keepPreviousSeconds * 1000);
  if (until.getTime() <= now.getTime())
    return { action: 'delete', name, why: `keepPrevious has passed since it retired at ${new Date(retiredAt).toISOString()}` };
  return { action: 'wait', until, name };
}

/**
 * The legacy Cluster after the first swap: deleted once keepPrevious has passed since that swap retired
 * it. Before the first swap it is the live copy, and one without a retirement mark (made again by a
 * later switch back to recreate) is never deleted here.
 */
export function planLegacyCleanup(view: CnpgBlueGreenView, keepPreviousSeconds: number, now: Date): CleanupPlan {
  const legacy = legacyCluster(view);
  if (!legacy || !activeSlot(view) || serviceRefusal(view)) return { action: 'none' };
  const retiredAt = Date.parse(legacy.annotations[BLUE_GREEN_ANNOTATIONS.retiredAt] ?? '');
  if (Number.isNaN(retiredAt)) return { action: 'none' };
  const until = new Date(retiredAt + keepPreviousSeconds * 1000);
  if (until.getTime() <= now.getTime())
    return {
      action: 'delete',
      name: view.clusterName,
      why: `keepPrevious has passed since the first blueGreen swap retired it at ${new Date(retiredAt).toISOString()} (strategy recreate made it)`,
    };
  return { action: 'wait', until, name: view.clusterName };
}

/**
 * After a failed run: the Cluster this run made goes, but only while the Service does not select it
 * (before the swap); and what the error should add about the copy clients use. A failure after the swap
 * (in cleanup-previous) must not say "not changed": clients already use the new copy.
 */
export function planAfterFailure(view: CnpgBlueGreenView, runId: string): { remove?: CnpgSlot; note: string } {
  const active = activeSlot(view);
  const made = (['a', 'b'] as const).find((slot) => {
    const there = view.clusters[slot];
    return there.exists && there.annotations[ANNOTATIONS.runId] === runId;
  });
  if (made && made === active)
    return {
      note: `the swap was made: clients use ${slotClusterName(view.clusterName, made)}, the new copy, through Service ${view.namespace}/${view.serviceName}`,
    };
  if (!active && !serviceRefusal(view) && !legacyCluster(view))
    return made ? { remove: made, note: 'there was no copy before; the half-made one is removed' } : { note: 'there was no copy before' };
  return made ? { remove: made, note: 'the current copy was not changed' } : { note: 'the current copy was not changed' };
}

export type RollbackPlan = { ok: true; from: string; to: string; toSlot: CnpgSlot } | { ok: false; message: string };

export function planRollback(view: CnpgBlueGreenView): RollbackPlan {
  const refusal = serviceRefusal(view);
  if (refusal) return { ok: false, message: refusal };
  const active = activeSlot(view);
  if (!active)
    return {
      ok: false,
      message: `Service ${view.namespace}/${view.serviceName} does not point at a copy yet; there is nothing to roll back`,
    };
  const slot = otherSlot(active);
  const to = slotClusterName(view.clusterName, slot);
  const there = view.clusters[slot];
  const legacy = legacyCluster(view);
  if ((!there.exists || there.deleting) && legacy?.annotations[BLUE_GREEN_ANNOTATIONS.retiredAt])
    return {
      ok: false,
      message: `the previous copy is Cluster ${view.namespace}/${view.clusterName}, which strategy recreate made; rollback switches only between ${slotClusterName(view.clusterName, 'a')} and ${slotClusterName(view.clusterName, 'b')}. It is kept until keepPrevious has passed and still answers on its own Service ${view.clusterName}-rw`,
    };
  if (!there.exists || there.deleting || !isOurs(there.labels, there.annotations, view.job))
    return {
      ok: false,
      message: `no previous copy is kept (Cluster ${view.namespace}/${to} is gone; keepPrevious has passed or a refresh replaced it)`,
    };
  if (!there.annotations[BLUE_GREEN_ANNOTATIONS.retiredAt])
    return {
      ok: false,
      message: `Cluster ${view.namespace}/${to} never served clients (a half-made copy); it is not a copy to roll back to`,
    };
  if (!there.healthy)
    return {
      ok: false,
      message: `Cluster ${view.namespace}/${to} is not healthy; rolling back to it would leave clients without a database`,
    };
  return { ok: true, from: slotClusterName(view.clusterName, active), to, toSlot: slot };
}

/** Bytes as a Kubernetes quantity a person reads: whole Gi, else Mi (rounded down: never more room than there is). */
function binaryQuantity(bytes: number): string {
  if (bytes <= 0) return '0';
  return bytes % 2 ** 30 === 0 ? `${bytes / 2 ** 30}Gi` : `${Math.floor(bytes / 2 ** 20)}Mi`;
}

export interface ResourceQuotaView {
  name: string;
  hard: Record<string, string>;
  used: Record<string, string>;
}

/**
 * Whether the namespace's ResourceQuotas leave room for the second Cluster's volumes: requests.storage,
 * the storage class's own requests.storage, and the persistentvolumeclaims count. Undefined when no
 * quota limits any of them.
 */
export function quotaShortfall(input: {
  quotas: ResourceQuotaView[];
  values: Pick<CnpgValues, 'instances' | 'storage'>;
  /** What a Cluster being removed first gives back (a retired copy in the slot the new one takes). */
  reclaimed?: { bytes: number; claims: number };
}): { ok: boolean; message: string } | undefined {
  const perInstance = quantityToBytes(input.values.storage.size) ?? 0;
  const bytes = perInstance * input.values.instances;
  const claims = input.values.instances;
  const keys = ['requests.storage', 'persistentvolumeclaims'];
  if (input.values.storage.storageClass) keys.push(`${input.values.storage.storageClass}.storageclass.storage.k8s.io/requests.storage`);
  const problems: string[] = [];
  let limited = false;
  for (const quota of input.quotas) {
    for (const key of keys) {
      const hard = quota.hard[key];
      if (hard === undefined) continue;
      limited = true;
      const isCount = key === 'persistentvolumeclaims';
      const parse = (v: string | undefined) => (isCount ? Number(v ?? 0) : (quantityToBytes(v ?? '0') ?? 0));
      const free = parse(hard) - parse(quota.used[key]) + (isCount ? (input.reclaimed?.claims ?? 0) : (input.reclaimed?.bytes ?? 0));
      const need = isCount ? claims : bytes;
      if (free < need)
        problems.push(
          `ResourceQuota ${quota.name} ${key}: the new Cluster needs ${isCount ? need : input.values.storage.size + (claims > 1 ? ` × ${claims}` : '')}, ${isCount ? free : binaryQuantity(free)} left while the current Cluster keeps its volumes`,
        );
    }
  }
  if (!limited) return undefined;
  return problems.length
    ? { ok: false, message: `${problems.join('; ')}. blueGreen keeps two Clusters at once: raise the quota, or use strategy recreate` }
    : { ok: true, message: 'the namespace quota leaves room for a second Cluster' };
}
