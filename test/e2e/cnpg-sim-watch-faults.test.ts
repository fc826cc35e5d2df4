/**
 * The simulated operator keeps working when its API connection misbehaves: watches cut every few
 * hundred milliseconds, injected 500s and 429s (test/envtest/fault-proxy.ts), and a watch resumed
 * from a resourceVersion the server has forgotten (410 Expired → re-list).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Sandbox } from '../../scripts/pg-sandbox.js';
import { PHASE, type SimulatedOperator, startSimulatedOperator } from '../cnpg-sim/index.js';
import { Informer } from '../cnpg-sim/informer.js';
import {
  clusterManifest,
  createNamespace,
  createSecret,
  createSource,
  decodeSecret,
  imageFor,
  Kube,
  loadKubeConfig,
  localPgMajor,
  type Obj,
  passwordExternal,
  type SourceServer,
  waitFor,
  waitForPhase,
} from '../cnpg-sim/testing.js';
import { type FaultProxy, startFaultProxy } from '../envtest/fault-proxy.js';

const kube = new Kube(loadKubeConfig(inject('kubeconfigPath')));

let ns: string;
let sandbox: Sandbox;
let source: SourceServer;
let proxy: FaultProxy;
let sim: SimulatedOperator;

beforeAll(async () => {
  ns = await createNamespace(kube, 'cnpg-sim-faults');
  sandbox = Sandbox.create('cnpg-sim-faults-');
  source = await createSource(sandbox, 'prod');
  await createSecret(kube, ns, 'prod-replication', { password: source.password });
  proxy = await startFaultProxy({
    target: new URL(kube.kubeConfig.getCurrentCluster()?.server ?? ''),
    faults: { cutWatchesAfterMs: 300, cutMode: 'destroy', errorRate: 0.05, throttleRate: 0.03, retryAfterSeconds: 1 },
  });
  sim = await startSimulatedOperator({
    kubeConfig: proxy.kubeConfig(kube.kubeConfig),
    logDir: inject('podLogDir'),
    namespaces: [ns],
    probeRetryMs: 200,
    phaseStepMs: 50,
    deletionDelayMs: 200,
    podTerminationMs: 50,
    // A transient failure (the machine may be busy) costs a short retry, not Kubernetes' 10 s back-off.
    podRetryDelayMs: 200,
  });
});

afterAll(async () => {
  await sim?.stop();
  await proxy?.close();
  await sandbox?.destroy();
});

describe('through a faulty API connection', () => {
  it('clones to a healthy Cluster and garbage-collects it after deletion', async () => {
    await kube.create(
      'clusters',
      ns,
      clusterManifest(ns, 'pg', {
        imageName: imageFor(localPgMajor()),
        external: { name: 'prod', ...passwordExternal(source, 'prod-replication') },
      }),
    );
    const cluster = await waitForPhase(kube, ns, 'pg', PHASE.healthy);
    expect(cluster.status).toMatchObject({ readyInstances: 1, currentPrimary: 'pg-1' });
    const { port } = await sim.connection(ns, 'pg');
    const app = decodeSecret(await kube.get('secrets', ns, 'pg-app'));
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'app', password: app.password, database: 'app' });
    await client.connect();
    try {
      expect((await client.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(100);
    } finally {
      await client.end();
    }

    await kube.delete('clusters', ns, 'pg');
    await waitFor('the dependents to be gone', async () => {
      const left = [
        ...(await kube.list('pods', ns, 'cnpg.io/cluster=pg')),
        ...(await kube.list('pvcs', ns, 'cnpg.io/cluster=pg')),
        ...((await kube.getOrNull('services', ns, 'pg-rw')) ? [{}] : []),
        ...((await kube.getOrNull('secrets', ns, 'pg-app')) ? [{}] : []),
      ];
      return left.length === 0;
    });

    const stats = proxy.stats();
    expect(stats.watchesCut).toBeGreaterThan(5);
    expect(stats.injected500).toBeGreaterThan(0);
    expect(stats.injected429).toBeGreaterThan(0);
    expect(sim.operatorLog().some((e) => e.msg === 'watch failed; restarting')).toBe(true);
  });
});

describe('the garbage collector through a faulty API connection', () => {
  it('retries the deletion of dependents that failed, as Kubernetes requeues it', async () => {
    await kube.create(
      'clusters',
      ns,
      clusterManifest(ns, 'pg2', {
        imageName: imageFor(localPgMajor()),
        external: { name: 'prod', ...passwordExternal(source, 'prod-replication') },
      }),
    );
    await waitForPhase(kube, ns, 'pg2', PHASE.healthy);
    const logged = sim.operatorLog().length;
    const dependents = async () => [
      ...(await kube.list('pods', ns, 'cnpg.io/cluster=pg2')),
      ...(await kube.list('pvcs', ns, 'cnpg.io/cluster=pg2')),
      ...((await kube.getOrNull('secrets', ns, 'pg2-app')) ? [{}] : []),
    ];
    // Every DELETE of the simulator fails for now: its first garbage-collection pass fails.
    proxy.setFaults({ errorRate: 1, throttleRate: 0, eligible: (req) => req.method === 'DELETE' });
    try {
      await kube.delete('clusters', ns, 'pg2');
      await waitFor('a failed garbage-collection pass', () =>
        sim
          .operatorLog()
          .slice(logged)
          .some((e) => String(e.msg).startsWith('garbage collector error')),
      );
      expect((await dependents()).length).toBeGreaterThan(0);
    } finally {
      proxy.setFaults({ errorRate: 0, eligible: () => true });
    }
    await waitFor('the dependents to be gone after a retry', async () => (await dependents()).length === 0, { timeoutMs: 30_000 });
  });
});

describe('Informer', () => {
  it('re-lists when it resumes from a resourceVersion that is too old (410 Expired)', async () => {
    await createSecret(kube, ns, 'marker', { a: 'b' });
    const seen: Obj[] = [];
    const informer = new Informer(kube, { kind: 'secrets', namespace: ns, resourceVersion: '1', onEvent: (_type, obj) => seen.push(obj) });
    await informer.start();
    try {
      await waitFor('the re-list to deliver the existing secret', () => seen.some((s) => s.metadata.name === 'marker'), {
        timeoutMs: 10_000,
      });
    } finally {
      await informer.stop();
    }
  });
});
