import { randomBytes } from 'node:crypto';
import type { SecretKeySelector } from '../../config/schema-cnpg.js';
import type { Kube } from '../../kube/client.js';
import { loadKube } from '../../kube/load.js';
import { isConflict, isNotFound, type KubeList, type KubeObject, statusCode, withRetry } from '../../kube/retry.js';
import type { Clock } from '../../ports.js';
import { CLUSTER_GROUP, CLUSTER_PLURAL, CLUSTER_VERSION, type ClusterManifest, generatedSecretNames } from './manifests.js';
import type { ClusterObject, JobObject } from './readiness.js';
import { ResourceSet } from './watch.js';

/**
 * The Kubernetes calls on one CNPG Cluster and the objects around it, and
 * nothing else: no decisions, no messages beyond the API's own. Every call is
 * retried the way Kubernetes asks (kube/retry.ts); "not found" becomes
 * `undefined` in one place.
 */

/** The value of a call, or undefined when the API says the object does not exist. */
async function unlessNotFound<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

export interface ServiceInfo extends KubeObject {
  spec?: { clusterIP?: string; clusterIPs?: string[] };
}

/** What a delete with a uid precondition found. */
export type DeleteOutcome = 'deleted' | 'already-gone' | 'replaced';

export class ClusterApi {
  readonly namespace: string;
  readonly name: string;
  readonly #kubeconfig: string | undefined;
  readonly #clock: Clock;
  #kube: Kube | undefined;

  constructor(input: { namespace: string; name: string; kubeconfig: string | undefined; clock: Clock; kube?: Kube | undefined }) {
    this.namespace = input.namespace;
    this.name = input.name;
    this.#kubeconfig = input.kubeconfig;
    this.#clock = input.clock;
    this.#kube = input.kube;
  }

  /** Loads the Kubernetes client on first use: jobs that never reach Kubernetes never import it. */
  async #api(): Promise<Kube> {
    this.#kube ??= await loadKube(this.#kubeconfig);
    return this.#kube;
  }

  get where(): string {
    return `${this.namespace}/${this.name}`;
  }

  /** The one place that knows where Clusters live in the API. */
  #clusterPath(): { group: string; version: string; namespace: string; plural: string } {
    return { group: CLUSTER_GROUP, version: CLUSTER_VERSION, namespace: this.namespace, plural: CLUSTER_PLURAL };
  }

  async getCluster(): Promise<ClusterObject | undefined> {
    const api = await this.#api();
    return (await unlessNotFound(
      withRetry(`read Cluster ${this.where}`, () => api.custom.getNamespacedCustomObject({ ...this.#clusterPath(), name: this.name })),
    )) as ClusterObject | undefined;
  }

  /** Creates the Cluster; unknown fields are an error (fieldValidation=Strict), never silently dropped. */
  async createCluster(manifest: ClusterManifest): Promise<ClusterObject> {
    const api = await this.#api();
    return (await withRetry(`create Cluster ${this.where}`, () =>
      api.custom.createNamespacedCustomObject({ ...this.#clusterPath(), body: manifest, fieldValidation: 'Strict' }),
    )) as ClusterObject;
  }

  /**
   * Asks the API server whether it would create this Cluster (dryRun=All,
   * fieldValidation=Strict): the CRD's schema and CEL rules judge it, nothing
   * is stored. Undefined when accepted; a Cluster of that name that exists
   * already (409) means the manifest itself passed validation.
   */
  async rejectsCluster(manifest: ClusterManifest): Promise<string | undefined> {
    const api = await this.#api();
    try {
      await withRetry(`check Cluster ${this.where}`, () =>
        api.custom.createNamespacedCustomObject({ ...this.#clusterPath(), body: manifest, fieldValidation: 'Strict', dryRun: 'All' }),
      );
      return undefined;
    } catch (error) {
      if (isConflict(error)) return undefined;
      const code = statusCode(error);
      if (code === 400 || code === 422) return (error as Error).message;
      throw error;
    }
  }

  /**
   * Deletes exactly the Cluster with this uid: if the name now belongs to
   * another object (deleted and recreated since it was checked), the API
   * refuses with 409 and nothing is deleted.
   */
  async deleteCluster(uid: string): Promise<DeleteOutcome> {
    const api = await this.#api();
    try {
      await withRetry(`delete Cluster ${this.where}`, () =>
        api.custom.deleteNamespacedCustomObject({
          ...this.#clusterPath(),
          name: this.name,
          propagationPolicy: 'Background',
          body: { preconditions: { uid } },
        }),
      );
      return 'deleted';
    } catch (error) {
      if (isNotFound(error)) return 'already-gone';
      if (isConflict(error)) return 'replaced';
      throw error;
    }
  }

  async annotateCluster(annotations: Record<string, string>): Promise<void> {
    const api = await this.#api();
    await withRetry(`annotate Cluster ${this.where}`, () =>
      api.custom.patchNamespacedCustomObject(
        { ...this.#clusterPath(), name: this.name, body: { metadata: { annotations } } },
        api.mergePatch,
      ),
    );
  }

  async namespaceExists(): Promise<boolean> {
    const api = await this.#api();
    return (
      (await unlessNotFound(withRetry(`read Namespace ${this.namespace}`, () => api.core.readNamespace({ name: this.namespace })))) !==
      undefined
    );
  }

  /** A key of a Secret in the target namespace: its value, or why there is none. */
  async readSecretKey(selector: SecretKeySelector): Promise<{ value?: string; problem?: string }> {
    const api = await this.#api();
    const what = `Secret ${this.namespace}/${selector.name}`;
    let secret: { data?: Record<string, string> } | undefined;
    try {
      secret = await unlessNotFound(
        withRetry(`read ${what}`, () => api.core.readNamespacedSecret({ name: selector.name, namespace: this.namespace })),
      );
    } catch (error) {
      return { problem: `cannot read ${what}: ${(error as Error).message}` };
    }
    if (!secret) {
      return {
        problem: `${what} does not exist; create it in the target namespace (see the guide's "Create the Password Secret" / "Copy Certificates")`,
      };
    }
    const raw = secret.data?.[selector.key];
    if (raw === undefined) {
      return { problem: `${what} has no key "${selector.key}" (it has: ${Object.keys(secret.data ?? {}).join(', ') || 'no keys'})` };
    }
    return { value: Buffer.from(raw, 'base64').toString('utf8') };
  }

  /** The namespace's Services named in `names` (listed, not read one by one: the Role may list Services, not get them). */
  async services(names: readonly string[]): Promise<ServiceInfo[]> {
    const api = await this.#api();
    const list = await withRetry('list Services', () => api.core.listNamespacedService({ namespace: this.namespace }));
    return (list.items as ServiceInfo[]).filter((s) => names.includes(s.metadata?.name ?? ''));
  }

  async readLease(name: string): Promise<KubeObject | undefined> {
    const api = await this.#api();
    return (await unlessNotFound(
      withRetry(`read Lease ${this.namespace}/${name}`, () => api.coordination.readNamespacedLease({ name, namespace: this.namespace })),
    )) as KubeObject | undefined;
  }

  /** PVCs labelled for this Cluster that nobody owns and that are not being deleted (CNPG adopts them, §4.6). */
  async orphanPvcs(): Promise<string[]> {
    const api = await this.#api();
    const pvcs = await withRetry('list PersistentVolumeClaims', () =>
      api.core.listNamespacedPersistentVolumeClaim({ namespace: this.namespace, labelSelector: `cnpg.io/cluster=${this.name}` }),
    );
    return pvcs.items
      .filter((p) => !p.metadata?.deletionTimestamp && !(p.metadata?.ownerReferences?.length ?? 0))
      .map((p) => p.metadata?.name ?? '');
  }

  /** Whether an object's ownerReferences name a Cluster called like this one (CNPG compares names, not uids: §4.5). */
  ownedByCluster(object: KubeObject): boolean {
    return (object.metadata?.ownerReferences ?? []).some((ref) => ref.kind === 'Cluster' && ref.name === this.name);
  }

  /** Generated Secrets (BEHAVIOUR.md §4.1) that still exist with an ownerReference to this Cluster. */
  async ownedSecretsLeft(): Promise<string[]> {
    const api = await this.#api();
    const left: string[] = [];
    for (const name of generatedSecretNames(this.name)) {
      const secret = await unlessNotFound(
        withRetry(`read Secret ${this.namespace}/${name}`, () => api.core.readNamespacedSecret({ name, namespace: this.namespace })),
      );
      if (secret && this.ownedByCluster(secret as KubeObject)) left.push(name);
    }
    return left;
  }

  /** A Job's pod logs, oldest pod first, the last `tailLines` lines as the kubelet serves them. */
  async jobLog(jobName: string, tailLines = 200): Promise<string[]> {
    const api = await this.#api();
    const pods = await withRetry('list Job pods', () =>
      api.core.listNamespacedPod({ namespace: this.namespace, labelSelector: `job-name=${jobName}` }),
    );
    const sorted = [...pods.items].sort((a, b) =>
      String(a.metadata?.creationTimestamp).localeCompare(String(b.metadata?.creationTimestamp)),
    );
    const lines: string[] = [];
    for (const pod of sorted) {
      try {
        const text = await withRetry('read pod log', () =>
          api.core.readNamespacedPodLog({ name: pod.metadata?.name ?? '', namespace: this.namespace, tailLines }),
        );
        lines.push(...String(text).split('\n').filter(Boolean));
      } catch {
        // A pod without a log yet has nothing to add.
      }
    }
    return lines.slice(-tailLines);
  }

  /** A core Event on the Cluster, where `kubectl describe cluster` shows it. Best effort. */
  async event(input: { reason: string; type: 'Normal' | 'Warning'; message: string; uid?: string | undefined }): Promise<void> {
    const api = await this.#api();
    const now = this.#clock.now();
    await withRetry('create Event', () =>
      api.core.createNamespacedEvent({
        namespace: this.namespace,
        body: {
          // Named like kubectl's events: <object>.<unique hex>.
          metadata: { name: `${this.name}.${now.getTime().toString(16)}${randomBytes(2).toString('hex')}` },
          involvedObject: {
            apiVersion: `${CLUSTER_GROUP}/${CLUSTER_VERSION}`,
            kind: 'Cluster',
            name: this.name,
            namespace: this.namespace,
            ...(input.uid ? { uid: input.uid } : {}),
          },
          reason: input.reason,
          message: input.message,
          type: input.type,
          source: { component: 'db-refresher' },
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      }),
    ).catch(() => undefined);
  }

  /** Watched sets of the Cluster and what CNPG creates for it, for waits that react to every change. */
  async watchedSets() {
    const api = await this.#api();
    const ns = this.namespace;
    const selector = `cnpg.io/cluster=${this.name}`;
    const list = <T>(what: string, fn: () => Promise<T>) => withRetry(what, fn) as unknown as Promise<KubeList<KubeObject>>;
    return {
      cluster: new ResourceSet<ClusterObject>(api, {
        path: `/apis/${CLUSTER_GROUP}/${CLUSTER_VERSION}/namespaces/${ns}/${CLUSTER_PLURAL}`,
        fieldSelector: `metadata.name=${this.name}`,
        list: () =>
          list('list Clusters', () =>
            api.custom.listNamespacedCustomObject({ ...this.#clusterPath(), fieldSelector: `metadata.name=${this.name}` }),
          ) as Promise<KubeList<ClusterObject>>,
      }),
      pods: new ResourceSet(api, {
        path: `/api/v1/namespaces/${ns}/pods`,
        labelSelector: selector,
        list: () => list('list Pods', () => api.core.listNamespacedPod({ namespace: ns, labelSelector: selector })),
      }),
      pvcs: new ResourceSet(api, {
        path: `/api/v1/namespaces/${ns}/persistentvolumeclaims`,
        labelSelector: selector,
        list: () => list('list PVCs', () => api.core.listNamespacedPersistentVolumeClaim({ namespace: ns, labelSelector: selector })),
      }),
      jobs: new ResourceSet<JobObject>(api, {
        path: `/apis/batch/v1/namespaces/${ns}/jobs`,
        labelSelector: selector,
        list: () =>
          list('list Jobs', () => api.batch.listNamespacedJob({ namespace: ns, labelSelector: selector })) as Promise<KubeList<JobObject>>,
      }),
      services: new ResourceSet(api, {
        path: `/api/v1/namespaces/${ns}/services`,
        list: () => list('list Services', () => api.core.listNamespacedService({ namespace: ns })),
      }),
    };
  }
}

export type WatchedSets = Awaited<ReturnType<ClusterApi['watchedSets']>>;
