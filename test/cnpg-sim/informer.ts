/**
 * List, then watch from the list's resourceVersion; re-list on 410 Expired; restart (re-list after a
 * back-off) on any other error, because @kubernetes/client-node's own informer stops for good on those.
 * A re-list is diffed against the cache, so an event lost during a gap still arrives (a DELETED
 * included). Events are delivered synchronously to one handler, which must not throw.
 */
import { Watch } from '@kubernetes/client-node';
import { type Kind, type Kube, keyOf, type Obj, resourcePath } from './kube.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
export type InformerHandler = (type: EventType, obj: Obj) => void;

export interface InformerOptions {
  kind: Kind;
  /** One namespace only; default: all namespaces. */
  namespace?: string;
  labelSelector?: string;
  onEvent: InformerHandler;
  onError?: (err: unknown) => void;
  /** Resume watching from here without listing first (a 410 Expired then makes it list). Default: list. */
  resourceVersion?: string;
  /** The server ends each watch after this long (well under the client's 30 s inactivity timeout). */
  watchTimeoutSeconds?: number;
}

const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 5_000;

export class Informer {
  readonly #kube: Kube;
  readonly #opts: InformerOptions;
  readonly #cache = new Map<string, Obj>();
  #stopped = false;
  #controller: AbortController | undefined;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;

  constructor(kube: Kube, opts: InformerOptions) {
    this.#kube = kube;
    this.#opts = opts;
  }

  /** Resolves after the first list has been delivered. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#loop = this.#run(resolve, reject);
    });
  }

  /** The last known state of every object (after the first list). */
  items(): Obj[] {
    return [...this.#cache.values()];
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#controller?.abort();
    this.#wake?.();
    await this.#loop;
  }

  async #run(onFirstSync: () => void, onFirstError: (err: unknown) => void): Promise<void> {
    let synced = false;
    let backoff = BACKOFF_MIN_MS;
    let resume = this.#opts.resourceVersion;
    while (!this.#stopped) {
      try {
        let rv = resume ?? (await this.#list());
        resume = undefined;
        if (!synced) {
          synced = true;
          onFirstSync();
        }
        backoff = BACKOFF_MIN_MS;
        for (;;) {
          const outcome = await this.#watch(rv, (next) => {
            rv = next;
          });
          if (this.#stopped) return;
          if (outcome === 'expired') break;
          if (outcome instanceof Error) throw outcome;
          // A clean close (timeoutSeconds): keep watching from the last resourceVersion.
        }
      } catch (err) {
        if (this.#stopped) return;
        if (!synced) {
          onFirstError(err);
          return;
        }
        this.#opts.onError?.(err);
        await this.#sleep(backoff);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      }
    }
  }

  async #list(): Promise<string> {
    const list = await this.#kube.request('GET', resourcePath(this.#opts.kind, this.#opts.namespace), {
      query: { labelSelector: this.#opts.labelSelector },
    });
    const seen = new Set<string>();
    for (const item of (list.items ?? []) as Obj[]) {
      const key = keyOf(item);
      seen.add(key);
      const old = this.#cache.get(key);
      this.#cache.set(key, item);
      if (!old) {
        this.#emit('ADDED', item);
      } else if (old.metadata?.uid !== item.metadata?.uid) {
        this.#emit('DELETED', old);
        this.#emit('ADDED', item);
      } else if (old.metadata?.resourceVersion !== item.metadata?.resourceVersion) {
        this.#emit('MODIFIED', item);
      }
    }
    for (const [key, old] of [...this.#cache]) {
      if (!seen.has(key)) {
        this.#cache.delete(key);
        this.#emit('DELETED', old);
      }
    }
    return String(list.metadata?.resourceVersion ?? '');
  }

  #watch(resourceVersion: string, setRv: (rv: string) => void): Promise<'closed' | 'expired' | Error> {
    return new Promise((resolve) => {
      let outcome: 'closed' | 'expired' | Error = 'closed';
      const query = {
        resourceVersion,
        allowWatchBookmarks: true,
        labelSelector: this.#opts.labelSelector,
        timeoutSeconds: this.#opts.watchTimeoutSeconds ?? 20,
      };
      const onEvent = (type: string, obj: Obj): void => {
        if (type === 'BOOKMARK') {
          if (obj?.metadata?.resourceVersion) setRv(String(obj.metadata.resourceVersion));
          return;
        }
        if (type === 'ERROR') {
          outcome = obj?.code === 410 ? 'expired' : new Error(`watch ${this.#opts.kind}: ${obj?.message ?? JSON.stringify(obj)}`);
          this.#controller?.abort();
          return;
        }
        if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') return;
        if (obj?.metadata?.resourceVersion) setRv(String(obj.metadata.resourceVersion));
        const key = keyOf(obj);
        if (type === 'DELETED') this.#cache.delete(key);
        else this.#cache.set(key, obj);
        this.#emit(type, obj);
      };
      const done = (err: unknown): void => {
        if (outcome === 'closed' && err && !this.#stopped && !(err instanceof Error && err.name === 'AbortError')) {
          outcome = err instanceof Error ? err : new Error(String(err));
        }
        resolve(outcome);
      };
      new Watch(this.#kube.kubeConfig)
        .watch(resourcePath(this.#opts.kind, this.#opts.namespace), query, onEvent, done)
        .then((controller) => {
          this.#controller = controller;
          if (this.#stopped) controller.abort();
        })
        .catch((err: unknown) => resolve(err instanceof Error ? err : new Error(String(err))));
    });
  }

  #emit(type: EventType, obj: Obj): void {
    try {
      this.#opts.onEvent(type, obj);
    } catch (err) {
      this.#opts.onError?.(err);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
