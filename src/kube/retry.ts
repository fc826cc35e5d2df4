/**
 * Retrying Kubernetes API calls the way Kubernetes asks clients to: 429
 * (honouring Retry-After), 5xx and dropped connections, with bounded
 * exponential backoff, so a busy API server slows a refresh down instead of
 * failing it. Free of @kubernetes/client-node, which is loaded only when a
 * job needs Kubernetes (it takes most of a second to import).
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

/** client-node's ApiException, recognised by shape so this module need not import the library. */
interface ApiError {
  code: number;
  body: unknown;
  headers?: Record<string, string>;
}

function apiError(error: unknown): ApiError | undefined {
  const candidate = error as Partial<ApiError> | undefined;
  return candidate && typeof candidate === 'object' && typeof candidate.code === 'number' && 'body' in candidate
    ? (candidate as ApiError)
    : undefined;
}

/** The API's status code, looking through the wrapper withRetry puts around errors. */
export function statusCode(error: unknown): number | undefined {
  return apiError(error)?.code ?? apiError((error as { cause?: unknown })?.cause)?.code;
}

export function isNotFound(error: unknown): boolean {
  return statusCode(error) === 404;
}

export function isConflict(error: unknown): boolean {
  return statusCode(error) === 409;
}

function retryDelayMs(error: unknown, attempt: number): number | undefined {
  const backoff = Math.min(200 * 2 ** attempt, 5000);
  const api = apiError(error);
  if (api) {
    if (api.code === 429) {
      const header = Number(api.headers?.['retry-after']);
      return Number.isFinite(header) && header > 0 ? Math.min(header * 1000, 30_000) : backoff;
    }
    return api.code >= 500 && api.code <= 504 ? backoff : undefined;
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

/** Turns an API error (whose body is a JSON Status string) into an Error with the API's own message. */
export function describeKubeError(what: string, error: unknown): Error {
  const api = apiError(error);
  if (api) {
    let message = String(api.body);
    try {
      const status = JSON.parse(String(api.body)) as { message?: string };
      message = status.message ?? message;
    } catch {
      // Not JSON: keep the body text.
    }
    return Object.assign(new Error(`${what}: the Kubernetes API answered ${api.code}: ${message}`, { cause: error }), { code: api.code });
  }
  return new Error(`${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}
