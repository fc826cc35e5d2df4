/**
 * Persistent volumes: each PVC (by uid) gets a folder under the work dir, the PGDATA of the instance it
 * belongs to. The folder lives exactly as long as the PVC object: the PVC keeps the
 * `kubernetes.io/pvc-protection` finalizer while a Pod names it (as on a real cluster), and once the
 * PVC is gone its folder is removed, after whatever still uses it has let go.
 */
import { chmodSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { OsUser } from '../../src/postgres/os-user.js';
import { FINALIZER } from './constants.js';
import { isConflict, isNotFound, type Kube, type Obj } from './kube.js';
import { chownTo } from './postgres.js';

export interface Volume {
  uid: string;
  namespace: string;
  pvc: string;
  /** The mount point; PGDATA is `<dir>/pgdata` (CNPG: /var/lib/postgresql/data/pgdata). */
  dir: string;
  pgdata: string;
  /** A replica of the simulated kind holds no PostgreSQL data (the join Job is simulated). */
  simulatedReplica: boolean;
}

export class Volumes {
  readonly #root: string;
  readonly #runAs: OsUser | undefined;
  readonly #byUid = new Map<string, Volume>();
  readonly #users = new Map<string, number>();

  constructor(root: string, runAs: OsUser | undefined) {
    this.#root = root;
    this.#runAs = runAs;
  }

  /** The volume of a PVC, created (empty) on first use. */
  ensure(pvc: Obj): Volume {
    const uid = String(pvc.metadata.uid);
    let volume = this.#byUid.get(uid);
    if (!volume) {
      const dir = join(this.#root, pvc.metadata.namespace, `${pvc.metadata.name}-${uid.slice(0, 8)}`);
      mkdirSync(dir, { recursive: true });
      chmodSync(dir, 0o700);
      chownTo(dir, this.#runAs);
      volume = {
        uid,
        namespace: pvc.metadata.namespace,
        pvc: pvc.metadata.name,
        dir,
        pgdata: join(dir, 'pgdata'),
        simulatedReplica: false,
      };
      this.#byUid.set(uid, volume);
    }
    return volume;
  }

  get(uid: string): Volume | undefined {
    return this.#byUid.get(uid);
  }

  hasPostgresData(volume: Volume): boolean {
    return existsSync(join(volume.pgdata, 'PG_VERSION'));
  }

  list(): Volume[] {
    return [...this.#byUid.values()];
  }

  /** Marks the volume in use (a running Job or instance); call the returned function to let go. */
  acquire(uid: string): () => void {
    this.#users.set(uid, (this.#users.get(uid) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.#users.get(uid) ?? 1) - 1;
      if (n <= 0) this.#users.delete(uid);
      else this.#users.set(uid, n);
    };
  }

  /** The PVC is gone: waits for its users to let go, then removes the folder. */
  async remove(uid: string, timeoutMs = 60_000): Promise<void> {
    const volume = this.#byUid.get(uid);
    if (!volume) return;
    const deadline = Date.now() + timeoutMs;
    while ((this.#users.get(uid) ?? 0) > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    this.#byUid.delete(uid);
    // Asynchronous: the simulator shares its event loop with the test, its Service forwarder and any
    // prober; a synchronous rm of a data directory on a busy disk stalled them for seconds.
    await rm(volume.dir, { recursive: true, force: true });
  }

  /** Removes every folder (the simulator stops). */
  clear(): void {
    for (const volume of this.#byUid.values()) rmSync(volume.dir, { recursive: true, force: true });
    this.#byUid.clear();
  }
}

/** Whether any Pod in the list mounts the claim. */
export function podsUsingClaim(pods: readonly Obj[], namespace: string, claim: string): Obj[] {
  return pods.filter(
    (pod) =>
      pod.metadata?.namespace === namespace &&
      ((pod.spec?.volumes ?? []) as Obj[]).some((v) => v.persistentVolumeClaim?.claimName === claim),
  );
}

/** The PVC protection controller: drops the finalizer of a terminating PVC no Pod uses. */
export async function releaseProtectedClaim(kube: Kube, pvc: Obj, pods: readonly Obj[]): Promise<boolean> {
  const finalizers = (pvc.metadata?.finalizers ?? []) as string[];
  if (!pvc.metadata?.deletionTimestamp || !finalizers.includes(FINALIZER.pvcProtection)) return false;
  if (podsUsingClaim(pods, pvc.metadata.namespace, pvc.metadata.name).length > 0) return false;
  try {
    await kube.mergePatch('pvcs', pvc.metadata.namespace, pvc.metadata.name, {
      metadata: { resourceVersion: pvc.metadata.resourceVersion, finalizers: finalizers.filter((f) => f !== FINALIZER.pvcProtection) },
    });
    return true;
  } catch (err) {
    if (isNotFound(err) || isConflict(err)) return false;
    throw err;
  }
}
