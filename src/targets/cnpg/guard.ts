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
  return host.trim().toLowerCase().replace(/\.+$/, '');
}

/** CloudNativePG's Services for Cluster X (BEHAVIOUR.md §4.1); `-any` exists only with CREATE_ANY_SERVICE. */
export const SERVICE_SUFFIXES = ['rw', 'ro', 'r', 'any'] as const;

export function targetServiceNames(name: string): string[] {
  return SERVICE_SUFFIXES.map((suffix) => `${name}-${suffix}`);
}

/**
 * Whether `host` names one of the target Cluster's own Services, in any form a
 * resolver inside Kubernetes accepts: `X-rw`, `X-rw.ns`, `X-rw.ns.svc`,
 * `X-rw.ns.svc.cluster.local` or another cluster domain, a trailing dot, any
 * case. A short name counts: the clone Job resolves it in the target namespace.
 */
export function isTargetServiceHost(host: string, name: string, namespace: string): boolean {
  const [first, ...rest] = normalizeHost(host).split('.');
  if (!first || !targetServiceNames(name).includes(first)) return false;
  if (rest.length === 0) return true;
  return rest[0] === namespace && (rest.length === 1 || rest[1] === 'svc');
}

/** Every host something clones from or connects to as the source, with where it is configured. */
export interface SourceHost {
  host: string;
  /** e.g. `source.host` or `values.externalClusters[0].connectionParameters.host`. */
  where: string;
}

/** Static refusals that need no API call: names, namespaces, and a source that is the target. */
export function configRefusals(input: { target: CnpgTargetConfig; sourceHosts: readonly SourceHost[] }): string[] {
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
  reasons.push(...selfCloneRefusals(input.sourceHosts, target.clusterName, target.namespace));
  return reasons;
}

export function selfCloneRefusals(hosts: readonly SourceHost[], name: string, namespace: string): string[] {
  return hosts
    .filter((h) => isTargetServiceHost(h.host, name, namespace))
    .map(
      (h) =>
        `${h.where} "${h.host}" is the target Cluster's own Service (${namespace}/${normalizeHost(h.host).split('.')[0]}); refreshing would delete Cluster ${namespace}/${name} and then clone it from itself. Point it at the source's primary`,
    );
}

/** A resolved address of the source that equals one of the target's Service cluster IPs. */
export function sourceResolvesToTarget(
  source: SourceHost,
  sourceAddresses: readonly string[],
  targetServices: ReadonlyArray<{ name: string; ips: readonly string[] }>,
): string | undefined {
  for (const address of sourceAddresses) {
    const service = targetServices.find((s) => s.ips.includes(address));
    if (service) {
      return `${source.where} "${source.host}" ${source.host === address ? 'is' : `resolves to ${address},`} the ClusterIP of the target Cluster's own Service ${service.name}; refreshing would delete the Cluster and then clone it from itself. Point it at the source's primary`;
    }
  }
  return undefined;
}
