/**
 * The watch machinery the CNPG target waits with, through a proxy that
 * fails requests and cuts watch streams: the state it sees must still
 * converge, and waits must end on the change, not on a poll.
 */
import { randomBytes } from 'node:crypto';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Kube } from '../../src/kube/client.js';
import { type KubeList, type KubeObject, withRetry } from '../../src/kube/retry.js';
import { ResourceSet, WaitTimeout, waitUntil } from '../../src/targets/cnpg/watch.js';
import { type FaultProxy, startFaultProxy } from '../envtest/fault-proxy.js';

const base = new KubeConfig();
base.loadFromFile(inject('kubeconfigPath'));
const direct = base.makeApiClient(CoreV1Api);
const ns = `watch-${randomBytes(3).toString('hex')}`;
let proxy: FaultProxy;
let kube: Kube;

beforeAll(async () => {
  await direct.createNamespace({ body: { metadata: { name: ns } } });
  proxy = await startFaultProxy({ target: new URL(base.getCurrentCluster()?.server ?? '') });
  kube = new Kube(proxy.kubeConfig(base));
});
afterAll(async () => {
  await proxy?.close();
  await direct.deleteNamespace({ name: ns });
});

function configMaps(selector: string) {
  return new ResourceSet(kube, {
    path: `/api/v1/namespaces/${ns}/configmaps`,
    labelSelector: selector,
    list: () => withRetry('list', () => kube.core.listNamespacedConfigMap({ namespace: ns, labelSelector: selector })),
  });
}

describe('ResourceSet and waitUntil', () => {
  it('see every change while watch streams are cut and requests fail with 500 and 429', async () => {
    const set = configMaps('suite=faults');
    // Lists and other requests fail now and then; every watch stream is cut 250 ms after it opens.
    proxy.setFaults({ errorRate: 0.3, throttleRate: 0.2, retryAfterSeconds: 1, cutWatchesAfterMs: 250, cutMode: 'destroy' });
    await set.start();
    try {
      for (let i = 0; i < 5; i += 1) {
        await direct.createNamespacedConfigMap({
          namespace: ns,
          body: { metadata: { name: `cm-${i}`, labels: { suite: 'faults' } }, data: { i: String(i) } },
        });
        await new Promise((r) => setTimeout(r, 150));
      }
      await direct.deleteNamespacedConfigMap({ name: 'cm-2', namespace: ns });
      const names = await waitUntil({
        sets: [set],
        timeoutMs: 20_000,
        timeoutMessage: () => `saw ${set.items.map((i) => i.metadata?.name).join(',')}`,
        check: () => {
          const seen = set.items.map((i) => i.metadata?.name).sort();
          return seen.join() === 'cm-0,cm-1,cm-3,cm-4' ? seen : undefined;
        },
      });
      expect(names).toEqual(['cm-0', 'cm-1', 'cm-3', 'cm-4']);
      expect(set.stats.rewatches + set.stats.relists).toBeGreaterThan(0);
      expect(proxy.stats().watchesCut).toBeGreaterThan(0);
    } finally {
      proxy.clearFaults();
      await set.stop();
    }
  });

  it('re-lists when the watch answers 410 Gone for a resourceVersion that is too old', async () => {
    const custom = base.makeApiClient(CustomObjectsApi);
    const cluster = (name: string) => ({
      apiVersion: 'postgresql.cnpg.io/v1',
      kind: 'Cluster',
      metadata: { name },
      spec: { instances: 1, storage: { size: '1Gi' } },
    });
    const where = { group: 'postgresql.cnpg.io', version: 'v1', namespace: ns, plural: 'clusters' };
    await custom.createNamespacedCustomObject({ ...where, body: cluster('before') });
    let lists = 0;
    const set = new ResourceSet(kube, {
      path: `/apis/postgresql.cnpg.io/v1/namespaces/${ns}/clusters`,
      list: async () => {
        lists += 1;
        const list = (await kube.custom.listNamespacedCustomObject(where)) as KubeList<KubeObject>;
        // The first list claims a resourceVersion the server no longer keeps, as after a long outage.
        return lists === 1 ? { items: list.items, metadata: { resourceVersion: '1' } } : list;
      },
    });
    await set.start();
    try {
      await custom.createNamespacedCustomObject({ ...where, body: cluster('after') });
      await waitUntil({
        sets: [set],
        timeoutMs: 15_000,
        timeoutMessage: () => `saw ${set.items.map((i) => i.metadata?.name).join(',')} after ${lists} lists`,
        check: () => (set.items.some((i) => i.metadata?.name === 'after') ? true : undefined),
      });
      expect(set.stats.relists).toBeGreaterThanOrEqual(1);
      expect(lists).toBeGreaterThanOrEqual(2);
      expect(set.items.map((i) => i.metadata?.name).sort()).toEqual(['after', 'before']);
    } finally {
      await set.stop();
    }
  });

  it('a wait ends within moments of the change, not at the next poll', async () => {
    const set = configMaps('suite=latency');
    await set.start();
    try {
      const created = Date.now();
      const waited = waitUntil({
        sets: [set],
        tickMs: 60_000,
        timeoutMs: 10_000,
        timeoutMessage: () => 'never saw it',
        check: () => (set.items.some((i) => i.metadata?.name === 'now') ? Date.now() : undefined),
      });
      await direct.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'now', labels: { suite: 'latency' } } } });
      const seenAt = await waited;
      // The tick is a minute: only the watch event can have ended the wait this soon.
      expect(seenAt - created).toBeLessThan(5_000);
    } finally {
      await set.stop();
    }
  });

  it('times out with the caller’s message, and retries give up on errors that are not transient', async () => {
    const set = configMaps('suite=timeout');
    await set.start();
    try {
      const error = await waitUntil({
        sets: [set],
        timeoutMs: 300,
        timeoutMessage: () => 'still waiting for cm-x',
        check: () => undefined,
      }).catch((e) => e);
      expect(error).toBeInstanceOf(WaitTimeout);
      expect((error as Error).message).toBe('still waiting for cm-x');
    } finally {
      await set.stop();
    }
    const started = Date.now();
    const notFound = await withRetry('read', () => kube.core.readNamespacedConfigMap({ name: 'missing', namespace: ns })).catch((e) => e);
    expect((notFound as Error).message).toMatch(/^read: the Kubernetes API answered 404/);
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
