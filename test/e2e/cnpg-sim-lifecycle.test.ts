/**
 * Deleting and recreating simulated Clusters (BEHAVIOUR.md §4.4–4.6): the garbage collector removes
 * owned objects a configurable while after the Cluster (never the user's secrets), PostgreSQL stops
 * and its data goes; foreground and orphan propagation work; an orphaned PVC is adopted without a
 * clone; a Cluster recreated before the old objects are gone reuses them and then becomes
 * unrecoverable. Last, stop() leaves nothing behind.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Sandbox } from '../../scripts/pg-sandbox.js';
import { PHASE, REASON, type SimulatedOperator, startSimulatedOperator } from '../cnpg-sim/index.js';
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
  Recorder,
  type SourceServer,
  waitFor,
  waitForPhase,
} from '../cnpg-sim/testing.js';

const run = promisify(execFile);
const kubeconfigPath = inject('kubeconfigPath');
const kube = new Kube(loadKubeConfig(kubeconfigPath));
const image = imageFor(localPgMajor());
const DELETION_DELAY_MS = 1500;

let ns: string;
let sandbox: Sandbox;
let source: SourceServer;
let sim: SimulatedOperator;

const manifest = (name: string): Obj =>
  clusterManifest(ns, name, { imageName: image, external: { name: 'prod', ...passwordExternal(source, 'prod-replication') } });

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function countOrders(cluster: string): Promise<number> {
  const { port } = await sim.connection(ns, cluster);
  const app = decodeSecret(await kube.get('secrets', ns, `${cluster}-app`));
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'app', password: app.password, database: 'app' });
  await client.connect();
  try {
    return (await client.query('SELECT count(*)::int AS n FROM orders')).rows[0].n;
  } finally {
    await client.end();
  }
}

/** Everything CNPG creates for a Cluster that still exists, by kind/name. */
async function dependents(cluster: string): Promise<string[]> {
  const found: string[] = [];
  for (const kind of ['pods', 'pvcs', 'jobs'] as const) {
    for (const obj of await kube.list(kind, ns, `cnpg.io/cluster=${cluster}`)) found.push(`${kind}/${obj.metadata.name}`);
  }
  const named: Array<[Parameters<Kube['get']>[0], string]> = [
    ['services', `${cluster}-rw`],
    ['services', `${cluster}-ro`],
    ['services', `${cluster}-r`],
    ['secrets', `${cluster}-app`],
    ['secrets', `${cluster}-ca`],
    ['secrets', `${cluster}-server`],
    ['secrets', `${cluster}-replication`],
    ['serviceaccounts', cluster],
    ['leases', cluster],
  ];
  for (const [kind, name] of named) if (await kube.getOrNull(kind, ns, name)) found.push(`${kind}/${name}`);
  return found.sort();
}

beforeAll(async () => {
  ns = await createNamespace(kube, 'cnpg-sim-life');
  sandbox = Sandbox.create('cnpg-sim-life-');
  source = await createSource(sandbox, 'prod');
  await createSecret(kube, ns, 'prod-replication', { password: source.password });
  sim = await startSimulatedOperator({
    kubeConfig: kube.kubeConfig,
    logDir: inject('podLogDir'),
    namespaces: [ns],
    probeRetryMs: 200,
    phaseStepMs: 50,
    deletionDelayMs: DELETION_DELAY_MS,
    podTerminationMs: 300,
    // A transient failure (the machine may be busy) costs a short retry, not Kubernetes' 10 s back-off.
    podRetryDelayMs: 200,
  });
  for (const name of ['gone', 'fg', 'keep', 'early']) await kube.create('clusters', ns, manifest(name));
  for (const name of ['gone', 'fg', 'keep', 'early']) await waitForPhase(kube, ns, name, PHASE.healthy);
});

afterAll(async () => {
  await sim?.stop();
  await sandbox?.destroy();
});

describe('deleting a Cluster', () => {
  it('garbage-collects its objects after the configured delay, stops PostgreSQL and removes the data; user secrets stay', async () => {
    const port = await sim.clusterPort(ns, 'gone');
    // The completed clone Job was deleted (foreground) when the Cluster became healthy; the collector takes its time.
    await waitFor('the clone Job to be gone', async () => !(await dependents('gone')).some((d) => d.startsWith('jobs/')), {
      timeoutMs: 20_000,
    });
    const before = await dependents('gone');
    expect(before).toEqual(
      [
        'pods/gone-1',
        'pvcs/gone-1',
        'services/gone-rw',
        'services/gone-ro',
        'services/gone-r',
        'secrets/gone-app',
        'secrets/gone-ca',
        'secrets/gone-server',
        'secrets/gone-replication',
        'serviceaccounts/gone',
        'leases/gone',
      ].sort(),
    );
    const volume = sim.volumes().find((v) => v.namespace === ns && v.pvc === 'gone-1');
    expect(volume && existsSync(volume.dir)).toBe(true);

    const t0 = Date.now();
    await kube.delete('clusters', ns, 'gone');
    expect(await kube.getOrNull('clusters', ns, 'gone')).toBeNull();
    // No finalizer on the Cluster: it is gone at once, its objects are not (yet).
    await new Promise((resolve) => setTimeout(resolve, DELETION_DELAY_MS / 2));
    expect(await dependents('gone')).toEqual(before);
    expect(await countOrders('gone')).toBe(100);

    await waitFor('every dependent to be gone', async () => (await dependents('gone')).length === 0, { timeoutMs: 20_000 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(DELETION_DELAY_MS);
    expect(await listening(port)).toBe(false);
    // The volume is reclaimed after its PVC object is gone (as a PV with reclaimPolicy Delete), not with it.
    await waitFor('the volume to be reclaimed', async () => !existsSync(volume?.dir ?? '/nonexistent'), { timeoutMs: 20_000 });
    expect(sim.volumes().some((v) => v.pvc === 'gone-1' && v.namespace === ns)).toBe(false);
    expect(await kube.getOrNull('secrets', ns, 'prod-replication')).not.toBeNull();
  });

  it('with propagationPolicy=Foreground the Cluster stays until its dependents are gone', async () => {
    await kube.delete('clusters', ns, 'fg', { propagationPolicy: 'Foreground' });
    const terminating = await kube.get('clusters', ns, 'fg');
    expect(terminating.metadata.deletionTimestamp).toBeTruthy();
    expect(terminating.metadata.finalizers).toEqual(['foregroundDeletion']);
    expect((await dependents('fg')).length).toBeGreaterThan(0);
    await waitFor('the Cluster to be deleted', async () => (await kube.getOrNull('clusters', ns, 'fg')) === null, { timeoutMs: 20_000 });
    expect(await dependents('fg')).toEqual([]);
  });
});

describe('recreating a Cluster', () => {
  it('adopts an orphaned PVC (kubectl delete --cascade=orphan) and reuses its data instead of cloning', async () => {
    const old = await kube.get('clusters', ns, 'keep');
    expect(await countOrders('keep')).toBe(100);
    await source.server.sql(`INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(101, 150) g; CHECKPOINT;`, 'app');

    await run('kubectl', ['--kubeconfig', kubeconfigPath, '-n', ns, 'delete', 'cluster', 'keep', '--cascade=orphan', '--timeout=30s']);
    expect(await kube.getOrNull('clusters', ns, 'keep')).toBeNull();
    const orphan = await kube.get('pvcs', ns, 'keep-1');
    expect(orphan.metadata.ownerReferences).toBeUndefined();
    expect(orphan.metadata.annotations['cnpg.io/nodeSerial']).toBe('1');
    const orphanPod = await kube.get('pods', ns, 'keep-1');
    expect(orphanPod.metadata.ownerReferences).toBeUndefined();

    const jobs = await Recorder.start(kube, 'jobs', ns);
    try {
      await kube.create('clusters', ns, manifest('keep'));
      const adopted = await waitForPhase(kube, ns, 'keep', PHASE.healthy);
      expect(adopted.metadata.uid).not.toBe(old.metadata.uid);
      expect(jobs.events.filter((e) => e.obj.metadata.labels?.['cnpg.io/cluster'] === 'keep')).toEqual([]);
      const pvc = await kube.get('pvcs', ns, 'keep-1');
      expect(pvc.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'Cluster', name: 'keep', uid: adopted.metadata.uid })]);
      expect(pvc.metadata.annotations['cnpg.io/pvcStatus']).toBe('ready');
      expect((await kube.get('pods', ns, 'keep-1')).metadata.uid).not.toBe(orphanPod.metadata.uid);
      // The old data, not the source's current 150 rows.
      expect(await countOrders('keep')).toBe(100);
      expect(sim.operatorLog().some((e) => e.name === 'keep' && /orphan PVCs/.test(e.msg))).toBe(true);
    } finally {
      await jobs.stop();
    }
  });

  it('recreated before the garbage collector ran: no clone, old data, then unrecoverable once the old PVC goes', async () => {
    const old = await kube.get('clusters', ns, 'early');
    const port = await sim.clusterPort(ns, 'early');
    const jobs = await Recorder.start(kube, 'jobs', ns);
    // A slow collector, so the new Cluster surely looks before the old objects go.
    const slow = 5000;
    sim.setTimings({ deletionDelayMs: slow });
    try {
      await kube.delete('clusters', ns, 'early');
      await kube.create('clusters', ns, manifest('early'));
      // CNPG identifies owned objects by the owner's name: the old PVC and Pod count as this Cluster's.
      const reused = await waitForPhase(kube, ns, 'early', PHASE.healthy, { timeoutMs: slow });
      expect(reused.metadata.uid).not.toBe(old.metadata.uid);
      expect((await kube.get('pvcs', ns, 'early-1')).metadata.ownerReferences[0].uid).toBe(old.metadata.uid);
      // The garbage collector compares uids: the old objects go, and with them the only PVC.
      const broken = await waitForPhase(kube, ns, 'early', PHASE.unrecoverable, { timeoutMs: 20_000 });
      expect(broken.status.phaseReason).toBe(REASON.noPvcs);
      expect(jobs.events.filter((e) => e.obj.metadata.labels?.['cnpg.io/cluster'] === 'early')).toEqual([]);
      expect(await listening(port)).toBe(false);
    } finally {
      sim.setTimings({ deletionDelayMs: DELETION_DELAY_MS });
      await jobs.stop();
    }
  });
});

describe('stop()', () => {
  it('stops every PostgreSQL it started, removes its folders and its finalizers', async () => {
    const port = await sim.clusterPort(ns, 'keep');
    expect(await listening(port)).toBe(true);
    const { workDir } = sim;
    const started = Date.now();
    await sim.stop();
    console.log(`stop() took ${Date.now() - started} ms`);
    expect(await listening(port)).toBe(false);
    expect(existsSync(workDir)).toBe(false);
    const { stdout } = await run('ps', ['-eo', 'args']);
    expect(stdout.split('\n').filter((l) => l.includes(workDir))).toEqual([]);
    const pod = await kube.get('pods', ns, 'keep-1');
    expect(pod.metadata.finalizers).toBeUndefined();
    // Idempotent.
    await sim.stop();
  });
});
