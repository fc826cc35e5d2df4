import type { Kube, V1Service } from '../../kube/client.js';
import { isConflict, isNotFound, withRetry } from '../../kube/retry.js';
import {
  BLUE_GREEN_ANNOTATIONS,
  buildStableService,
  type ClusterView,
  type CnpgBlueGreenView,
  type CnpgSlot,
  type ResourceQuotaView,
  slotClusterName,
} from './blue-green.js';
import { CLUSTER_GROUP, CLUSTER_PLURAL, CLUSTER_VERSION } from './manifests.js';

/**
 * The API calls of CNPG blue/green: what the two Clusters and the stable Service look like now, the
 * switch of the Service's selector (one create or one update, carrying the resourceVersion read, so
 * a concurrent change fails instead of being overwritten), and the retirement mark on a Cluster.
 * Every decision is made by blue-green.ts from the view read here.
 */

const CLUSTER = { group: CLUSTER_GROUP, version: CLUSTER_VERSION, plural: CLUSTER_PLURAL } as const;

interface ClusterObject {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string>; deletionTimestamp?: string };
  status?: { phase?: string; conditions?: Array<{ type: string; status: string }> };
}

export class StableService {
  readonly #kube: Kube;
  readonly #namespace: string;
  readonly #job: string;
  readonly #clusterName: string;
  readonly #serviceName: string;

  constructor(input: { kube: Kube; namespace: string; job: string; clusterName: string; serviceName: string }) {
    this.#kube = input.kube;
    this.#namespace = input.namespace;
    this.#job = input.job;
    this.#clusterName = input.clusterName;
    this.#serviceName = input.serviceName;
  }

  async #service(): Promise<V1Service | undefined> {
    try {
      return await withRetry(`read Service ${this.#namespace}/${this.#serviceName}`, () =>
        this.#kube.core.readNamespacedService({ name: this.#serviceName, namespace: this.#namespace }),
      );
    } catch (error) {
      if (isNotFound(error) || isNotFound((error as { cause?: unknown }).cause)) return undefined;
      throw error;
    }
  }

  async #cluster(slot: CnpgSlot | 'legacy'): Promise<ClusterView> {
    const name = slot === 'legacy' ? this.#clusterName : slotClusterName(this.#clusterName, slot);
    try {
      const obj = (await withRetry(`read Cluster ${this.#namespace}/${name}`, () =>
        this.#kube.custom.getNamespacedCustomObject({ ...CLUSTER, namespace: this.#namespace, name }),
      )) as ClusterObject;
      return {
        exists: true,
        labels: obj.metadata?.labels ?? {},
        annotations: obj.metadata?.annotations ?? {},
        healthy:
          obj.status?.phase === 'Cluster in healthy state' &&
          (obj.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
        deleting: Boolean(obj.metadata?.deletionTimestamp),
      };
    } catch (error) {
      if (isNotFound(error) || isNotFound((error as { cause?: unknown }).cause)) return { exists: false };
      throw error;
    }
  }

  async view(): Promise<CnpgBlueGreenView> {
    const [service, a, b, legacy] = await Promise.all([this.#service(), this.#cluster('a'), this.#cluster('b'), this.#cluster('legacy')]);
    return {
      job: this.#job,
      clusterName: this.#clusterName,
      serviceName: this.#serviceName,
      namespace: this.#namespace,
      service: service
        ? {
            labels: service.metadata?.labels ?? {},
            annotations: service.metadata?.annotations ?? {},
            selector: service.spec?.selector ?? {},
          }
        : undefined,
      clusters: { a, b },
      legacy,
    };
  }

  /**
   * Points the Service at `cluster`'s primary: creates it, or replaces it with the resourceVersion it was
   * read at (an update; RBAC grants get, create and update on this name only). Idempotent.
   */
  async pointAt(cluster: string, runId: string): Promise<'created' | 'updated' | 'unchanged'> {
    const desired = buildStableService({ name: this.#serviceName, namespace: this.#namespace, job: this.#job, cluster, runId });
    for (let attempt = 0; attempt < 5; attempt++) {
      const existing = await this.#service();
      if (!existing) {
        try {
          await withRetry(`create Service ${this.#namespace}/${this.#serviceName}`, () =>
            this.#kube.core.createNamespacedService({ namespace: this.#namespace, body: desired as V1Service }),
          );
          return 'created';
        } catch (error) {
          if (isConflict(error) || isConflict((error as { cause?: unknown }).cause)) continue;
          throw error;
        }
      }
      if (existing.spec?.selector?.['cnpg.io/cluster'] === cluster) return 'unchanged';
      // Keep what Kubernetes filled in (clusterIP, ipFamilies); change only our selector, labels and annotations.
      const body: V1Service = {
        ...existing,
        metadata: {
          ...existing.metadata,
          labels: { ...(existing.metadata?.labels ?? {}), ...desired.metadata.labels },
          annotations: { ...(existing.metadata?.annotations ?? {}), ...desired.metadata.annotations },
        },
        spec: { ...existing.spec, selector: desired.spec.selector },
      };
      try {
        await this.#kube.core.replaceNamespacedService({ name: this.#serviceName, namespace: this.#namespace, body });
        return 'updated';
      } catch (error) {
        if (isConflict(error)) continue;
        throw error;
      }
    }
    throw new Error(`Service ${this.#namespace}/${this.#serviceName} kept changing while db-refresher switched it; try again`);
  }

  /** Marks a Cluster as no longer serving, with the time keepPrevious counts from. */
  async markRetired(cluster: string, at: Date): Promise<void> {
    await withRetry(`annotate Cluster ${this.#namespace}/${cluster}`, () =>
      this.#kube.custom.patchNamespacedCustomObject(
        {
          ...CLUSTER,
          namespace: this.#namespace,
          name: cluster,
          body: { metadata: { annotations: { [BLUE_GREEN_ANNOTATIONS.retiredAt]: at.toISOString() } } },
        },
        this.#kube.mergePatch,
      ),
    );
  }

  /**
   * The namespace's ResourceQuotas, for the room check. An API server that does not serve the resource
   * at all (404 on the collection, as a test API server or a stripped-down control plane may) has no
   * quota that could limit the second Cluster, so that is an empty list rather than a failed preflight.
   */
  async quotas(): Promise<ResourceQuotaView[]> {
    let list: Awaited<ReturnType<Kube['core']['listNamespacedResourceQuota']>>;
    try {
      list = await withRetry(`list ResourceQuotas in ${this.#namespace}`, () =>
        this.#kube.core.listNamespacedResourceQuota({ namespace: this.#namespace }),
      );
    } catch (error) {
      if (isNotFound(error) || isNotFound((error as { cause?: unknown }).cause)) return [];
      throw error;
    }
    return list.items.map((q) => ({
      name: q.metadata?.name ?? '',
      hard: q.status?.hard ?? q.spec?.hard ?? {},
      used: q.status?.used ?? {},
    }));
  }
}
