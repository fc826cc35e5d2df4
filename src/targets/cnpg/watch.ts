import type { Kube } from '../../kube/client.js';
import { type KubeList, type KubeObject, sleep } from '../../kube/retry.js';

/**
 * Keeps an up-to-date set of objects by listing once and then watching from
 * the list's resourceVersion, the way kubernetes-fluent-client and
 * controller-runtime do: bookmarks move the resourceVersion on, a 410 Gone
 * means re-list, and a dropped or timed-out stream is reopened. Callers wait
 * on a condition over the set instead of sleeping and polling.
 */

export interface WatchedResource<T extends KubeObject> {
  /** API path of the collection, e.g. /api/v1/namespaces/qa/pods. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  list(): Promise<KubeList<T>>;
}

export class ResourceSet<T extends KubeObject> {
  readonly #kube: Kube;
  readonly #resource: WatchedResource<T>;
  readonly #items = new Map<string, T>();
  readonly #listeners = new Set<() => void>();
  #resourceVersion: string | undefined;
  #abort: AbortController | undefined;
  #stopped = false;
  #loop: Promise<void> | undefined;
  /** How many times the watch was reopened or the list re-read; for tests and logs. */
  readonly stats = { relists: 0, rewatches: 0 };

  constructor(kube: Kube, resource: WatchedResource<T>) {
    this.#kube = kube;
    this.#resource = resource;
  }

  get items(): T[] {
    return [...this.#items.values()];
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #notify(): void {
    for (const listener of this.#listeners) listener();
  }

  async #relist(): Promise<void> {
    const list = await this.#resource.list();
    this.#items.clear();
    for (const item of list.items) if (item.metadata?.name) this.#items.set(item.metadata.name, item);
    this.#resourceVersion = list.metadata?.resourceVersion;
    this.#notify();
  }

  /** Lists, then keeps watching until stop(). Resolves after the first list. */
  async start(): Promise<void> {
    await this.#relist();
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      const outcome = await this.#watchOnce();
      if (this.#stopped) break;
      try {
        if (outcome === 'gone') {
          this.stats.relists += 1;
          await this.#relist();
        } else {
          this.stats.rewatches += 1;
        }
        failures = outcome === 'error' ? failures + 1 : 0;
        if (failures > 0) await sleep(Math.min(100 * 2 ** failures, 5000));
      } catch {
        failures += 1;
        await sleep(Math.min(100 * 2 ** failures, 5000)).catch(() => undefined);
      }
    }
  }

  #watchOnce(): Promise<'closed' | 'gone' | 'error'> {
    return new Promise((resolve) => {
      let settled = false;
      const finish = (outcome: 'closed' | 'gone' | 'error') => {
        if (settled) return;
        settled = true;
        this.#abort?.abort();
        resolve(outcome);
      };
      const query: Record<string, string | boolean> = { allowWatchBookmarks: true };
      if (this.#resourceVersion) query.resourceVersion = this.#resourceVersion;
      if (this.#resource.labelSelector) query.labelSelector = this.#resource.labelSelector;
      if (this.#resource.fieldSelector) query.fieldSelector = this.#resource.fieldSelector;
      this.#kube.watcher
        .watch(
          this.#resource.path,
          query,
          (phase: string, object: KubeObject & { code?: number }) => {
            if (phase === 'ERROR') {
              finish(object.code === 410 ? 'gone' : 'error');
              return;
            }
            const version = object.metadata?.resourceVersion;
            if (version) this.#resourceVersion = version;
            if (phase === 'BOOKMARK') return;
            const name = object.metadata?.name;
            if (!name) return;
            if (phase === 'DELETED') this.#items.delete(name);
            else this.#items.set(name, object as T);
            this.#notify();
          },
          (error: unknown) => finish(error ? (String((error as { code?: unknown }).code) === '410' ? 'gone' : 'error') : 'closed'),
        )
        .then(
          (controller) => {
            this.#abort = controller;
            if (this.#stopped || settled) controller.abort();
          },
          () => finish('error'),
        );
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort?.abort();
    this.#notify();
    await this.#loop?.catch(() => undefined);
  }
}

/**
 * Waits until `check` over the watched sets returns a value (not undefined),
 * re-evaluating on every change and every `tickMs` (for checks that also read
 * something without a watch, like pod logs). Rejects on timeout or abort.
 */
export async function waitUntil<R>(input: {
  sets: ReadonlyArray<ResourceSet<KubeObject>>;
  check: () => R | undefined | Promise<R | undefined>;
  timeoutMs: number;
  timeoutMessage: () => string;
  signal?: AbortSignal;
  tickMs?: number;
}): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    let done = false;
    let running = false;
    let again = false;
    const unsubscribe: Array<() => void> = [];
    const finish = (fn: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(ticker);
      input.signal?.removeEventListener('abort', onAbort);
      for (const off of unsubscribe) off();
      fn();
    };
    const evaluate = async () => {
      if (done) return;
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        do {
          again = false;
          const result = await input.check();
          if (result !== undefined) {
            finish(() => resolve(result));
            return;
          }
        } while (again && !done);
      } catch (error) {
        finish(() => reject(error));
      } finally {
        running = false;
      }
    };
    const timer = setTimeout(() => finish(() => reject(new WaitTimeout(input.timeoutMessage()))), input.timeoutMs);
    const ticker = setInterval(() => void evaluate(), input.tickMs ?? 1000);
    const onAbort = () => finish(() => reject(input.signal?.reason ?? new Error('aborted')));
    input.signal?.addEventListener('abort', onAbort, { once: true });
    for (const set of input.sets) unsubscribe.push(set.onChange(() => void evaluate()));
    void evaluate();
  });
}

export class WaitTimeout extends Error {
  override name = 'WaitTimeout';
}
