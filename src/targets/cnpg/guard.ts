import type { CnpgTargetConfig } from '../../config/types.js';
import { ANNOTATIONS, LABELS, MANAGED_BY_VALUE } from './manifests.js';

/**
 * Why a Cluster may not be deleted or created. Pure: takes what the API said
 * and the job's settings, returns the reasons (empty when it is safe).
 */

export interface ExistingCluster {
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/**
 * Markers GitOps controllers put on what they apply. Such a Cluster comes back
 * from Git (with its own bootstrap) as soon as it is deleted, racing the clone
 * (cloudnative-pg#5778), so no setting makes db-refresher replace it.
 */
const GITOPS_MARKERS: ReadonlyArray<{ tool: string; kind: 'label' | 'annotation'; key: string; alsoRemove?: string }> = [
  {
    tool: 'Flux Kustomization',
    kind: 'label',
    key: 'kustomize.toolkit.fluxcd.io/name',
    alsoRemove: 'kustomize.toolkit.fluxcd.io/namespace',
  },
  { tool: 'Flux HelmRelease', kind: 'label', key: 'helm.toolkit.fluxcd.io/name', alsoRemove: 'helm.toolkit.fluxcd.io/namespace' },
  { tool: 'Argo CD application', kind: 'annotation', key: 'argocd.argoproj.io/tracking-id' },
  { tool: 'Argo CD application', kind: 'label', key: 'argocd.argoproj.io/instance' },
];

function gitOpsRefusal(existing: ExistingCluster, name: string, namespace: string): string | undefined {
  for (const marker of GITOPS_MARKERS) {
    const value = (marker.kind === 'label' ? existing.labels : existing.annotations)[marker.key];
    if (value === undefined) continue;
    const keys = [marker.key, ...(marker.alsoRemove ? [marker.alsoRemove] : [])].map((k) => `${k}-`).join(' ');
    const owner = marker.tool.startsWith('Argo') ? value.split(':')[0] : value;
    return `Cluster ${namespace}/${name} is managed by ${marker.tool} "${owner}" (${marker.kind} ${marker.key}); it would recreate the Cluster from Git as soon as db-refresher deleted it, racing the clone, so it is not replaced (adopt does not change this). Take the Cluster out of that ${marker.tool.startsWith('Argo') ? 'application' : 'source'} first (without letting it prune the Cluster), then remove the marker: kubectl ${marker.kind === 'label' ? 'label' : 'annotate'} cluster ${name} -n ${namespace} ${keys}`;
  }
  return undefined;
}

export function ownershipRefusal(input: {
  job: string;
  jobPath: string;
  existing: ExistingCluster | undefined;
  adopt: boolean;
  name: string;
  namespace: string;
}): string | undefined {
  const { existing, job } = input;
  if (!existing) return undefined;
  const gitOps = gitOpsRefusal(existing, input.name, input.namespace);
  if (gitOps) return gitOps;
  const managed = existing.labels[LABELS.managedBy] === MANAGED_BY_VALUE;
  const owner = existing.annotations[ANNOTATIONS.job];
  if (managed && owner === job) return undefined;
  if (managed && owner !== undefined && owner !== job) {
    return `Cluster ${input.namespace}/${input.name} belongs to db-refresher job "${owner}", not "${job}"; two jobs must not share a target`;
  }
  if (input.adopt) return undefined;
  return `Cluster ${input.namespace}/${input.name} exists and was not created by db-refresher (it lacks the label ${LABELS.managedBy}=${MANAGED_BY_VALUE} and the annotation ${ANNOTATIONS.job}=${job}), so it will not be deleted. If it really is the disposable copy for job "${job}", set ${input.jobPath}.target.adopt: true, or label and annotate it: kubectl label cluster ${input.name} -n ${input.namespace} ${LABELS.managedBy}=${MANAGED_BY_VALUE} ${LABELS.job}=${job} && kubectl annotate cluster ${input.name} -n ${input.namespace} ${ANNOTATIONS.job}=${job}`;
}

function normalizeHost(host: string): string {
  return host.toLowerCase().replace(/\.$/, '');
}

/** Host names under which the target Cluster's own services answer. */
export function targetServiceHosts(name: string, namespace: string): string[] {
  const hosts: string[] = [];
  for (const suffix of ['rw', 'ro', 'r', 'any']) {
    const service = `${name}-${suffix}`;
    hosts.push(service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`);
  }
  return hosts;
}

/** Static refusals that need no API call: names, namespaces, and a source that is the target. */
export function configRefusals(input: { target: CnpgTargetConfig; sourceHost: string; sourceClusterName: string }): string[] {
  const { target } = input;
  const reasons: string[] = [];
  if (target.allowedNamespaces && !target.allowedNamespaces.includes(target.namespace)) {
    reasons.push(`namespace ${target.namespace} is not in this job's allowedNamespaces (${target.allowedNamespaces.join(', ')})`);
  }
  if (new RegExp(target.protectedNamePattern, 'i').test(target.clusterName)) {
    reasons.push(
      `Cluster name ${target.clusterName} matches the protected pattern /${target.protectedNamePattern}/i; db-refresher never replaces such Clusters. Rename the target, or set target.protectedNamePattern if this is a false alarm`,
    );
  }
  const host = normalizeHost(input.sourceHost);
  const selfHosts = targetServiceHosts(target.clusterName, target.namespace).map(normalizeHost);
  // A short name like "qa-db-rw" resolves inside the target's own namespace.
  if (selfHosts.includes(host)) {
    reasons.push(
      `the source host ${input.sourceHost} is the target Cluster's own service; refreshing would clone the copy from itself and destroy it first`,
    );
  }
  return reasons;
}

/** A resolved address of the source that equals one of the target's Service cluster IPs. */
export function sourceResolvesToTarget(sourceAddresses: readonly string[], targetServiceIps: readonly string[]): string | undefined {
  const hit = sourceAddresses.find((address) => targetServiceIps.includes(address));
  return hit ? `the source host resolves to ${hit}, an address of the target Cluster's own Services` : undefined;
}
