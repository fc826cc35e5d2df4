/**
 * A small JSON client for the Kubernetes API, on the transport of @kubernetes/client-node (its
 * RequestContext, authentication and undici fetch). Objects stay plain JSON: the typed clients turn
 * timestamps into Date objects and drop fields their models do not know, which a simulator that
 * copies objects around cannot afford.
 */
import { HttpMethod, IsomorphicFetchHttpLibrary, type KubeConfig, RequestContext } from '@kubernetes/client-node';
import { CLUSTER_GROUP, CLUSTER_PLURAL, CLUSTER_VERSION } from './constants.js';

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are handled as open JSON; readers check the fields they use.
export type Obj = Record<string, any>;

export type Kind = 'clusters' | 'pods' | 'pvcs' | 'jobs' | 'services' | 'secrets' | 'serviceaccounts' | 'configmaps' | 'leases' | 'events';

const BASES: Record<Kind, { prefix: string; plural: string }> = {
  clusters: { prefix: `/apis/${CLUSTER_GROUP}/${CLUSTER_VERSION}`, plural: CLUSTER_PLURAL },
  pods: { prefix: '/api/v1', plural: 'pods' },
  pvcs: { prefix: '/api/v1', plural: 'persistentvolumeclaims' },
  jobs: { prefix: '/apis/batch/v1', plural: 'jobs' },
  services: { prefix: '/api/v1', plural: 'services' },
  secrets: { prefix: '/api/v1', plural: 'secrets' },
  serviceaccounts: { prefix: '/api/v1', plural: 'serviceaccounts' },
  configmaps: { prefix: '/api/v1', plural: 'configmaps' },
  leases: { prefix: '/apis/coordination.k8s.io/v1', plural: 'leases' },
  events: { prefix: '/api/v1', plural: 'events' },
};

/** Kinds a Cluster's dependents can have (what the garbage collector looks through). */
export const DEPENDENT_KINDS: readonly Kind[] = ['pods', 'pvcs', 'jobs', 'services', 'secrets', 'serviceaccounts', 'configmaps', 'leases'];

/** `/api/v1/namespaces/N/pods/NAME/status`; without a namespace, the all-namespaces collection. */
export function resourcePath(kind: Kind, namespace?: string, name?: string, subresource?: string): string {
  const { prefix, plural } = BASES[kind];
  let path = namespace === undefined ? `${prefix}/${plural}` : `${prefix}/namespaces/${encodeURIComponent(namespace)}/${plural}`;
  if (name !== undefined) path += `/${encodeURIComponent(name)}`;
  if (subresource !== undefined) path += `/${subresource}`;
  return path;
}

export class KubeError extends Error {
  readonly code: number;
  readonly reason: string | undefined;
  readonly retryAfterSeconds: number | undefined;
  constructor(method: string, path: string, code: number, body: string, retryAfterSeconds?: number) {
    let message = body;
    let reason: string | undefined;
    try {
      const status = JSON.parse(body) as Obj;
      message = String(status.message ?? body);
      reason = typeof status.reason === 'string' ? status.reason : undefined;
    } catch {
      // Not a Status object (a plain-text 404 for an unknown path, for example).
    }
    super(`${method} ${path}: HTTP ${code}: ${message}`);
    this.code = code;
    this.reason = reason;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export const isNotFound = (err: unknown): boolean => err instanceof KubeError && err.code === 404;
export const isConflict = (err: unknown): boolean => err instanceof KubeError && err.code === 409 && err.reason === 'Conflict';
export const isAlreadyExists = (err: unknown): boolean => err instanceof KubeError && err.code === 409 && err.reason === 'AlreadyExists';

const MERGE_PATCH = 'application/merge-patch+json';
const MAX_RETRIES = 6;
const RETRY_BASE_MS = 100;
const RETRY_MAX_MS = 2000;

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
}

export class Kube {
  readonly kubeConfig: KubeConfig;
  readonly #http = new IsomorphicFetchHttpLibrary();
  readonly #abort = new AbortController();

  constructor(kubeConfig: KubeConfig) {
    this.kubeConfig = kubeConfig;
  }

  /** Fails every request in flight and every later one: the simulator is stopping. */
  abort(): void {
    this.#abort.abort(new Error('the simulated operator is stopping'));
  }

  /**
   * One API call. Transient failures are retried a few times, as client-go's callers requeue: 429 (after
   * its Retry-After, at most 2 s), 5xx and connection errors. Conflicts and other 4xx are not.
   */
  async request<T = Obj>(method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', path: string, opts: RequestOptions = {}): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#requestOnce<T>(method, path, opts);
      } catch (err) {
        if (this.#abort.signal.aborted || attempt >= MAX_RETRIES) throw err;
        const transient = err instanceof KubeError ? err.code === 429 || err.code >= 500 : true;
        if (!transient) throw err;
        const retryAfter = err instanceof KubeError && err.retryAfterSeconds !== undefined ? err.retryAfterSeconds * 1000 : undefined;
        await new Promise((resolve) => setTimeout(resolve, Math.min(retryAfter ?? RETRY_BASE_MS * 2 ** attempt, RETRY_MAX_MS)));
      }
    }
  }

  async #requestOnce<T>(method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', path: string, opts: RequestOptions): Promise<T> {
    const cluster = this.kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    const url = new URL(cluster.server + path);
    for (const [key, value] of Object.entries(opts.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const ctx = new RequestContext(url.toString(), HttpMethod[method]);
    await this.kubeConfig.applySecurityAuthentication(ctx);
    ctx.setSignal(this.#abort.signal);
    ctx.setHeaderParam('Accept', 'application/json');
    if (opts.body !== undefined) {
      ctx.setHeaderParam('Content-Type', opts.contentType ?? 'application/json');
      ctx.setBody(JSON.stringify(opts.body));
    }
    const res = await this.#http.send(ctx).toPromise();
    const text = await res.body.text();
    if (res.httpStatusCode >= 300) {
      const retryAfter = Number(res.headers['retry-after']);
      throw new KubeError(method, path, res.httpStatusCode, text, Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined);
    }
    return (text ? JSON.parse(text) : {}) as T;
  }

  get(kind: Kind, namespace: string, name: string): Promise<Obj> {
    return this.request('GET', resourcePath(kind, namespace, name));
  }

  async getOrNull(kind: Kind, namespace: string, name: string): Promise<Obj | null> {
    try {
      return await this.get(kind, namespace, name);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /** Items of a namespace (or of all namespaces), optionally filtered by a label selector. */
  async list(kind: Kind, namespace: string | undefined, labelSelector?: string): Promise<Obj[]> {
    const list = await this.request('GET', resourcePath(kind, namespace), { query: { labelSelector } });
    return (list.items ?? []) as Obj[];
  }

  create(kind: Kind, namespace: string, body: Obj): Promise<Obj> {
    return this.request('POST', resourcePath(kind, namespace), { body });
  }

  /** JSON merge patch; put `metadata.resourceVersion` in the body for optimistic locking. */
  mergePatch(kind: Kind, namespace: string, name: string, body: Obj, subresource?: 'status'): Promise<Obj> {
    return this.request('PATCH', resourcePath(kind, namespace, name, subresource), { body, contentType: MERGE_PATCH });
  }

  /** Deletes; a missing object is not an error. */
  async delete(
    kind: Kind,
    namespace: string,
    name: string,
    opts: { propagationPolicy?: 'Background' | 'Foreground' | 'Orphan'; uid?: string } = {},
  ): Promise<void> {
    const body: Obj = { apiVersion: 'v1', kind: 'DeleteOptions' };
    if (opts.propagationPolicy) body.propagationPolicy = opts.propagationPolicy;
    if (opts.uid) body.preconditions = { uid: opts.uid };
    try {
      await this.request('DELETE', resourcePath(kind, namespace, name), { body });
    } catch (err) {
      if (isNotFound(err) || (err instanceof KubeError && err.code === 409)) return;
      throw err;
    }
  }
}

/** The controller ownerReference of an object, if any. */
export function controllerOf(obj: Obj): Obj | undefined {
  return ((obj.metadata?.ownerReferences ?? []) as Obj[]).find((ref) => ref.controller === true);
}

/** CNPG's IsOwnedByCluster: the controller reference names the Cluster (by name, not uid). */
export function isOwnedByClusterName(obj: Obj, clusterName: string): boolean {
  const ref = controllerOf(obj);
  return (
    ref !== undefined && ref.kind === 'Cluster' && ref.apiVersion === `${CLUSTER_GROUP}/${CLUSTER_VERSION}` && ref.name === clusterName
  );
}

export function isDeleting(obj: Obj): boolean {
  return Boolean(obj.metadata?.deletionTimestamp);
}

export function keyOf(obj: Obj): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}
