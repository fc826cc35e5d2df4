/**
 * The Kubernetes garbage collector, for the owners the simulator watches (Clusters and Jobs): the test
 * API server has none. After `delayMs` (the collector's latency, configurable so tests can see objects
 * linger), it
 * - deletes the dependents of an owner that is gone: objects whose ownerReferences name its uid
 *   (Kubernetes compares uids; a new owner with the same name does not keep them alive);
 * - handles the `foregroundDeletion` finalizer: deletes the dependents, waits until they are gone, then
 *   removes the finalizer;
 * - handles the `orphan` finalizer: removes the owner from its dependents' ownerReferences, then removes
 *   the finalizer.
 * User-provided objects carry no ownerReference, so they are never touched.
 */
import { FINALIZER } from './constants.js';
import { DEPENDENT_KINDS, isConflict, isNotFound, type Kind, type Kube, type Obj } from './kube.js';

export type GcLogger = (msg: string, fields: Record<string, unknown>) => void;

/** Attempts per item before the collector gives up on it (about a minute of back-off). */
const MAX_ATTEMPTS = 40;

export class GarbageCollector {
  readonly #kube: Kube;
  readonly #delayMs: () => number;
  readonly #log: GcLogger;
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #pending = new Set<Promise<void>>();
  /** Owner uids with a finalizer pass scheduled or running. */
  readonly #finalizing = new Set<string>();
  #stopped = false;

  constructor(kube: Kube, delayMs: () => number, log: GcLogger) {
    this.#kube = kube;
    this.#delayMs = delayMs;
    this.#log = log;
  }

  /** The owner is gone (a DELETED event). */
  ownerDeleted(namespace: string, uid: string, what: string): void {
    this.#later(async () => {
      const n = await this.#deleteDependents(namespace, uid);
      if (n > 0) this.#log('garbage collector deleted dependents', { namespace, owner: what, uid, count: n });
    });
  }

  /** The owner has a deletionTimestamp; acts on the orphan and foregroundDeletion finalizers. */
  ownerTerminating(kind: Kind, owner: Obj): void {
    const finalizers = (owner.metadata?.finalizers ?? []) as string[];
    const uid = String(owner.metadata?.uid ?? '');
    const mode = finalizers.includes(FINALIZER.orphan) ? 'orphan' : finalizers.includes(FINALIZER.foreground) ? 'foreground' : undefined;
    if (!mode || this.#finalizing.has(uid)) return;
    this.#finalizing.add(uid);
    const { namespace, name } = owner.metadata;
    this.#later(async () => {
      try {
        if (mode === 'orphan') {
          const n = await this.#orphanDependents(namespace, uid);
          this.#log('garbage collector orphaned dependents', { namespace, owner: `${kind}/${name}`, uid, count: n });
          await this.#removeFinalizer(kind, namespace, name, uid, FINALIZER.orphan);
        } else {
          await this.#deleteDependents(namespace, uid);
          await this.#waitForNoDependents(namespace, uid);
          this.#log('garbage collector deleted dependents in the foreground', { namespace, owner: `${kind}/${name}`, uid });
          await this.#removeFinalizer(kind, namespace, name, uid, FINALIZER.foreground);
        }
      } finally {
        this.#finalizing.delete(uid);
      }
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    await Promise.allSettled([...this.#pending]);
  }

  /**
   * Runs `work` after the delay, and again after a failure (an API error through a faulty
   * connection), as Kubernetes' garbage collector requeues an item with back-off until it is done.
   */
  #later(work: () => Promise<void>, attempt = 0): void {
    if (this.#stopped) return;
    const delay = attempt === 0 ? this.#delayMs() : Math.min(2000, 100 * 2 ** (attempt - 1));
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (this.#stopped) return;
      const run = work().catch((err: unknown) => {
        if (this.#stopped) return;
        const error = err instanceof Error ? err.message : String(err);
        if (attempt + 1 >= MAX_ATTEMPTS) {
          this.#log('garbage collector error; giving up', { error, attempts: attempt + 1 });
          return;
        }
        this.#log('garbage collector error; retrying', { error, attempt: attempt + 1 });
        this.#later(work, attempt + 1);
      });
      this.#pending.add(run);
      void run.finally(() => this.#pending.delete(run));
    }, delay);
    this.#timers.add(timer);
  }

  async #dependents(namespace: string, uid: string): Promise<Array<{ kind: Kind; obj: Obj }>> {
    const found: Array<{ kind: Kind; obj: Obj }> = [];
    for (const kind of DEPENDENT_KINDS) {
      for (const obj of await this.#kube.list(kind, namespace)) {
        if (((obj.metadata?.ownerReferences ?? []) as Obj[]).some((ref) => ref.uid === uid)) found.push({ kind, obj });
      }
    }
    return found;
  }

  async #deleteDependents(namespace: string, uid: string): Promise<number> {
    let n = 0;
    for (const { kind, obj } of await this.#dependents(namespace, uid)) {
      const refs = (obj.metadata.ownerReferences ?? []) as Obj[];
      if (refs.length > 1) {
        // Other owners may still exist: only this reference goes (the real collector checks each owner).
        await this.#patchOwnerRefs(
          kind,
          obj,
          refs.filter((r) => r.uid !== uid),
        );
        continue;
      }
      if (obj.metadata.deletionTimestamp) continue;
      await this.#kube.delete(kind, namespace, obj.metadata.name, { propagationPolicy: 'Background', uid: obj.metadata.uid });
      n++;
    }
    return n;
  }

  async #orphanDependents(namespace: string, uid: string): Promise<number> {
    const dependents = await this.#dependents(namespace, uid);
    for (const { kind, obj } of dependents) {
      await this.#patchOwnerRefs(
        kind,
        obj,
        ((obj.metadata.ownerReferences ?? []) as Obj[]).filter((r) => r.uid !== uid),
      );
    }
    return dependents.length;
  }

  async #patchOwnerRefs(kind: Kind, obj: Obj, refs: Obj[]): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await this.#kube.mergePatch(kind, obj.metadata.namespace, obj.metadata.name, {
          metadata: { resourceVersion: obj.metadata.resourceVersion, ownerReferences: refs.length ? refs : null },
        });
        return;
      } catch (err) {
        if (isNotFound(err)) return;
        if (!isConflict(err)) throw err;
        obj = await this.#kube.get(kind, obj.metadata.namespace, obj.metadata.name);
      }
    }
  }

  async #waitForNoDependents(namespace: string, uid: string, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#stopped && Date.now() < deadline) {
      if ((await this.#dependents(namespace, uid)).length === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async #removeFinalizer(kind: Kind, namespace: string, name: string, uid: string, finalizer: string): Promise<void> {
    for (let attempt = 0; attempt < 10 && !this.#stopped; attempt++) {
      const obj = await this.#kube.getOrNull(kind, namespace, name);
      if (!obj || obj.metadata.uid !== uid) return;
      const finalizers = ((obj.metadata.finalizers ?? []) as string[]).filter((f) => f !== finalizer);
      try {
        await this.#kube.mergePatch(kind, namespace, name, {
          metadata: { resourceVersion: obj.metadata.resourceVersion, finalizers: finalizers.length ? finalizers : null },
        });
        return;
      } catch (err) {
        if (isNotFound(err)) return;
        if (!isConflict(err)) throw err;
      }
    }
  }
}
