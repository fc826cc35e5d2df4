import { PhaseFailure } from '../../errors.js';
import type { KubeObject } from '../../kube/retry.js';
import type { PhaseContext } from '../../ports.js';
import type { ClusterApi } from './cluster-api.js';
import { generatedSecretNames } from './manifests.js';
import { orphanMessage } from './preflight.js';
import { type ResourceSet, WaitTimeout, waitUntil } from './watch.js';

/**
 * Teardown's wait: until the deleted Cluster's pods, volumes, jobs, services
 * and generated secrets are gone. CloudNativePG identifies what it owns by
 * name (BEHAVIOUR.md §4.5), so a Cluster recreated before then would take the
 * old volumes over instead of cloning.
 */
export async function waitUntilGone(input: { api: ClusterApi; ctx: PhaseContext; timeoutSeconds: number }): Promise<void> {
  const { api, ctx } = input;
  const sets = await api.watchedSets();
  const all = Object.values(sets) as ResourceSet<KubeObject>[];
  await Promise.all(all.map((s) => s.start()));
  // Secrets are read by name, not watched: the service's Role may then `get` Secrets, never list them all.
  let ownedSecrets: string[] = generatedSecretNames(api.name);
  const leftovers = () => [
    ...sets.cluster.items.map((o) => `Cluster ${o.metadata?.name}`),
    ...sets.pods.items.map((o) => `Pod ${o.metadata?.name}`),
    ...sets.pvcs.items.map((o) => `PVC ${o.metadata?.name}`),
    ...sets.jobs.items.map((o) => `Job ${o.metadata?.name}`),
    ...sets.services.items.filter((o) => api.ownedByCluster(o)).map((o) => `Service ${o.metadata?.name}`),
    ...ownedSecrets.map((name) => `Secret ${name}`),
  ];
  try {
    await waitUntil({
      sets: all,
      signal: ctx.signal,
      timeoutMs: input.timeoutSeconds * 1000,
      timeoutMessage: () =>
        `the old Cluster's objects were still there after ${input.timeoutSeconds} s: ${leftovers().join(', ')}. CloudNativePG would adopt leftover volumes instead of cloning, so db-refresher does not recreate the Cluster yet. Check for finalizers or a stuck garbage collector`,
      check: async () => {
        const orphans = sets.pvcs.items.filter((p) => !p.metadata?.deletionTimestamp && !(p.metadata?.ownerReferences?.length ?? 0));
        if (orphans.length > 0)
          throw new PhaseFailure(
            'unsafe-target',
            orphanMessage(
              api,
              orphans.map((p) => p.metadata?.name ?? ''),
            ),
          );
        if (leftovers().length > ownedSecrets.length) return undefined;
        ownedSecrets = await api.ownedSecretsLeft();
        return ownedSecrets.length === 0 ? true : undefined;
      },
    });
  } catch (error) {
    if (error instanceof WaitTimeout) throw new PhaseFailure('timeout', error.message);
    throw error;
  } finally {
    await Promise.all(all.map((s) => s.stop()));
  }
}
