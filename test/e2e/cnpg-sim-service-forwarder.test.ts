/**
 * The simulated operator's kube-proxy: a Service that is not a Cluster's own (the stable Service of a
 * blue/green job) gets a loopback port; each new connection follows the Service's selector to a Ready
 * primary Pod, as kube-proxy follows EndpointSlices. Real API server, real clones, real PostgreSQL.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Sandbox } from '../../scripts/pg-sandbox.js';
import { PHASE, type SimulatedOperator, startSimulatedOperator } from '../cnpg-sim/index.js';
import {
  clusterManifest,
  createNamespace,
  createSecret,
  createSource,
  FAST_TIMINGS,
  imageFor,
  Kube,
  loadKubeConfig,
  localPgMajor,
  passwordExternal,
  type SourceServer,
  waitFor,
  waitForPhase,
} from '../cnpg-sim/testing.js';

const kube = new Kube(loadKubeConfig(inject('kubeconfigPath')));
const image = imageFor(localPgMajor());

let ns: string;
let sandbox: Sandbox;
let source: SourceServer;
let sim: SimulatedOperator;

const selecting = (cluster: string) => ({ 'cnpg.io/cluster': cluster, 'cnpg.io/instanceRole': 'primary' });

async function open(port: number): Promise<pg.Client> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'app',
    password: 'app-secret-1',
    database: 'app',
    connectionTimeoutMillis: 5000,
  });
  // A Cluster deleted under an idle connection terminates it (57P01): that is what these tests provoke,
  // and an idle client without a listener would turn it into an uncaught error.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function servedBy(port: number): Promise<string> {
  const client = await open(port);
  try {
    return String((await client.query('SHOW cluster_name')).rows[0]?.cluster_name);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  ns = await createNamespace(kube, 'cnpg-sim-svc');
  sandbox = Sandbox.create('cnpg-sim-svc-');
  source = await createSource(sandbox, 'prod');
  await createSecret(kube, ns, 'prod-replication', { password: source.password });
  await createSecret(kube, ns, 'app-credentials', { username: 'app', password: 'app-secret-1' }, 'kubernetes.io/basic-auth');
  sim = await startSimulatedOperator({ kubeConfig: kube.kubeConfig, logDir: inject('podLogDir'), namespaces: [ns], ...FAST_TIMINGS });
  const external = { name: 'prod', ...passwordExternal(source, 'prod-replication') };
  for (const name of ['blue', 'green']) {
    await kube.create('clusters', ns, clusterManifest(ns, name, { imageName: image, appSecret: 'app-credentials', external }));
  }
  for (const name of ['blue', 'green']) await waitForPhase(kube, ns, name, PHASE.healthy);
});

afterAll(async () => {
  await sim?.stop();
  await sandbox?.destroy();
});

describe('Service forwarder', () => {
  it('refuses connections while the Service does not exist or selects no ready Pod', async () => {
    const port = await sim.servicePort(ns, 'stable');
    await expect(open(port)).rejects.toThrow();
    await kube.create('services', ns, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'stable', namespace: ns },
      spec: { selector: selecting('nothing-here'), ports: [{ name: 'postgres', port: 5432, targetPort: 5432 }] },
    });
    await waitFor('the Service', async () => (await kube.getOrNull('services', ns, 'stable')) ?? undefined);
    await expect(open(port)).rejects.toThrow();
    expect(sim.serviceConnections().every((c) => c.pod === undefined)).toBe(true);
  });

  it('follows the selector to the selected Cluster primary, and moves new connections only when it changes', async () => {
    const port = await sim.servicePort(ns, 'stable');
    const svc = await kube.get('services', ns, 'stable');
    await kube.mergePatch('services', ns, 'stable', {
      metadata: { resourceVersion: svc.metadata.resourceVersion },
      spec: { selector: selecting('blue') },
    });
    await waitFor('connections to reach blue', async () => ((await servedBy(port).catch(() => '')) === 'blue' ? true : undefined), {
      timeoutMs: 10_000,
    });
    const held = await open(port);
    try {
      const before = await kube.get('services', ns, 'stable');
      await kube.mergePatch('services', ns, 'stable', {
        metadata: { resourceVersion: before.metadata.resourceVersion },
        spec: { selector: selecting('green') },
      });
      await waitFor('connections to reach green', async () => ((await servedBy(port).catch(() => '')) === 'green' ? true : undefined), {
        timeoutMs: 10_000,
      });
      // The connection opened before the switch still talks to blue (kube-proxy does not move open connections).
      expect((await held.query('SHOW cluster_name')).rows[0]?.cluster_name).toBe('blue');
    } finally {
      await held.end();
    }
    const pods = sim
      .serviceConnections()
      .filter((c) => c.pod !== undefined)
      .map((c) => c.pod);
    expect(pods).toContain('blue-1');
    expect(pods.at(-1)).toBe('green-1');
  });

  // Failed once in CI (2026-12-02) with the last connection naming the deleted Cluster's pod. The forwarder
  // was right; the test was not: it stopped at the first connection the client saw fail, and a connection
  // forwarded to the pod an instant before its deletionTimestamp reached the informer is then cut by the
  // instance's fast shutdown ("the database system is shutting down"), as kube-proxy's would be. So the test
  // waits until the forwarder itself refuses (its history says no pod), then checks that it keeps refusing.
  it('refuses connections once the selected Cluster is deleted', async () => {
    const port = await sim.servicePort(ns, 'stable');
    await kube.delete('clusters', ns, 'green');
    const refusedByForwarder = async (): Promise<boolean> => {
      const before = sim.serviceConnections().length;
      const failed = await open(port)
        .then((c) => c.end().then(() => false))
        .catch(() => true);
      const attempt = sim.serviceConnections().slice(before);
      return failed && attempt.length > 0 && attempt.every((c) => c.pod === undefined);
    };
    await waitFor('the forwarder to refuse connections', async () => ((await refusedByForwarder()) ? true : undefined), {
      timeoutMs: 20_000,
    });
    for (let i = 0; i < 3; i++) expect(await refusedByForwarder()).toBe(true);
    expect(sim.serviceConnections().at(-1)?.pod).toBeUndefined();
  });
});
