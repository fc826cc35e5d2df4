import {
  ApiException,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  Watch,
} from '@kubernetes/client-node';

/**
 * The one place that talks to the Kubernetes API (with the Kubernetes run
 * store). Everything here retries what Kubernetes asks clients to retry:
 * 429 (honouring Retry-After), 5xx and dropped connections, with bounded
 * exponential backoff, so a busy API server slows a refresh down instead of
 * failing it.
 */

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: Array<{ kind: string; name: string; uid: string; apiVersion: string }>;
    deletionTimestamp?: unknown;
    creationTimestamp?: unknown;
  };
}

export interface KubeList<T> {
  items: T[];
  metadata?: { resourceVersion?: string };
}

export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

export function isNotFound(error: unknown): boolean {
  return error instanceof ApiException && error.code === 404;
}

export function isConflict(error: unknown): boolean {
  return error instanceof ApiException && error.code === 409;
}

function retryDelayMs(error: unknown, attempt: number): number | undefined {
  const backoff = Math.min(200 * 2 ** attempt, 5000);
  if (error instanceof ApiException) {
    if (error.code === 429) {
      const header = Number(error.headers?.['retry-after']);
      return Number.isFinite(header) && header > 0 ? Math.min(header * 1000, 30_000) : backoff;
    }
    return error.code >= 500 && error.code <= 504 ? backoff : undefined;
  }
  // fetch-level failures (connection refused or reset mid-request) are transient from the client's view.
  const text = error instanceof Error ? `${error.message} ${String((error as { cause?: unknown }).cause ?? '')}` : String(error);
  return /fetch failed|ECONNRESET|ECONNREFUSED|socket hang up|other side closed|ETIMEDOUT|UND_ERR/i.test(text) ? backoff : undefined;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export async function withRetry<T>(
  what: string,
  fn: () => Promise<T>,
  options: { attempts?: number; signal?: AbortSignal } = {},
): Promise<T> {
  const attempts = options.attempts ?? 8;
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await fn();
    } catch (error) {
      const delay = retryDelayMs(error, attempt);
      if (delay === undefined || attempt + 1 >= attempts) throw describeKubeError(what, error);
      await sleep(delay, options.signal);
    }
  }
}

/** Turns an ApiException (whose body is a JSON Status string) into an Error with the API's own message. */
export function describeKubeError(what: string, error: unknown): Error {
  if (error instanceof ApiException) {
    let message = String(error.body);
    try {
      const status = JSON.parse(String(error.body)) as { message?: string; reason?: string };
      message = status.message ?? message;
    } catch {
      // Not JSON: keep the body text.
    }
    return Object.assign(new Error(`${what}: the Kubernetes API answered ${error.code}: ${message}`, { cause: error }), {
      code: error.code,
    });
  }
  return new Error(`${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}

export class Kube {
  readonly config: KubeConfig;
  readonly core: CoreV1Api;
  readonly batch: BatchV1Api;
  readonly custom: CustomObjectsApi;
  readonly watcher: Watch;

  constructor(config: KubeConfig) {
    this.config = config;
    this.core = config.makeApiClient(CoreV1Api);
    this.batch = config.makeApiClient(BatchV1Api);
    this.custom = config.makeApiClient(CustomObjectsApi);
    this.watcher = new Watch(config);
  }

  static mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
}
