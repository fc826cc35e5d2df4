/**
 * The simulated CNPG operator with the guide's recommended authentication: a TLS client certificate
 * for streaming_replica (sslKey/sslCert/sslRootCert SecretKeySelectors, sslmode=verify-full), and a
 * three-instance Cluster walking the replica phases.
 */
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Sandbox } from '../../scripts/pg-sandbox.js';
import { PHASE, type SimulatedOperator, startSimulatedOperator } from '../cnpg-sim/index.js';
import {
  clusterManifest,
  createNamespace,
  createSecret,
  createSource,
  decodeSecret,
  FAST_TIMINGS,
  imageFor,
  Kube,
  loadKubeConfig,
  localPgMajor,
  logLines,
  type Obj,
  Recorder,
  readPodLog,
  recordedPhaseSteps,
  type SourceServer,
  waitFor,
  waitForPhase,
} from '../cnpg-sim/testing.js';
import { createPki } from '../support/tls.js';

const kube = new Kube(loadKubeConfig(inject('kubeconfigPath')));
const image = imageFor(localPgMajor());

let ns: string;
let sandbox: Sandbox;
let source: SourceServer;
let sim: SimulatedOperator;
let clusters: Recorder;
let otherCa: string;

function tlsExternal(rootCaSecret = 'prod-ca'): Obj {
  return {
    name: 'prod',
    connectionParameters: {
      host: 'localhost',
      port: String(source.server.port),
      user: 'streaming_replica',
      dbname: 'postgres',
      sslmode: 'verify-full',
    },
    sslKey: { name: 'prod-replication', key: 'tls.key' },
    sslCert: { name: 'prod-replication', key: 'tls.crt' },
    sslRootCert: { name: rootCaSecret, key: 'ca.crt' },
  };
}

beforeAll(async () => {
  ns = await createNamespace(kube, 'cnpg-sim-tls');
  sandbox = Sandbox.create('cnpg-sim-tls-');
  const pki = createPki(sandbox.dir('tls'));
  source = await createSource(sandbox, 'prod', {
    tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca },
    // Replication only with a client certificate; everything else with a password.
    hba: ['local all all trust', 'hostssl replication streaming_replica 127.0.0.1/32 cert', 'host all all 127.0.0.1/32 scram-sha-256'],
  });
  const client = pki.client('streaming_replica');
  const { readFileSync } = await import('node:fs');
  await createSecret(
    kube,
    ns,
    'prod-replication',
    { 'tls.crt': readFileSync(client.cert, 'utf8'), 'tls.key': readFileSync(client.key, 'utf8') },
    'kubernetes.io/tls',
  );
  await createSecret(kube, ns, 'prod-ca', { 'ca.crt': readFileSync(pki.ca, 'utf8') });
  pki.client('nobody', { otherCa: true });
  otherCa = readFileSync(join(pki.dir, 'other-ca.crt'), 'utf8');
  await createSecret(kube, ns, 'other-ca', { 'ca.crt': otherCa });
  sim = await startSimulatedOperator({
    kubeConfig: kube.kubeConfig,
    logDir: inject('podLogDir'),
    namespaces: [ns],
    ...FAST_TIMINGS,
  });
  clusters = await Recorder.start(kube, 'clusters', ns);
  await kube.create('clusters', ns, clusterManifest(ns, 'tls', { imageName: image, external: tlsExternal() }));
  await kube.create('clusters', ns, clusterManifest(ns, 'ha', { imageName: image, instances: 3, external: tlsExternal() }));
  await kube.create('clusters', ns, clusterManifest(ns, 'badca', { imageName: image, external: tlsExternal('other-ca') }));
});

afterAll(async () => {
  await clusters?.stop();
  await sim?.stop();
  await sandbox?.destroy();
});

describe('TLS client certificate authentication', () => {
  it('clones with sslmode=verify-full and the certificate files from the secrets, no password', async () => {
    await waitForPhase(kube, ns, 'tls', PHASE.healthy);
    const { port } = await sim.connection(ns, 'tls');
    const app = decodeSecret(await kube.get('secrets', ns, 'tls-app'));
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'app', password: app.password, database: 'app' });
    await client.connect();
    try {
      expect((await client.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(100);
    } finally {
      await client.end();
    }
    const { readFileSync, readdirSync } = await import('node:fs');
    const podLog = readdirSync(join(inject('podLogDir'), ns)).find((f) => /^tls-1-pgbasebackup-[a-z0-9]{5}\.log$/.test(f)) ?? '';
    const lines = logLines(readFileSync(join(inject('podLogDir'), ns, podLog), 'utf8'));
    const waiting = lines.find((l) => l.msg === 'Waiting for server to be available');
    expect(waiting?.connectionString).toMatch(/sslmode=verify-full/);
    expect(waiting?.connectionString).toMatch(/sslcert=\S+prod-replication_tls\.crt/);
    expect(waiting?.connectionString).toMatch(/sslkey=\S+prod-replication_tls\.key/);
    expect(waiting?.connectionString).toMatch(/sslrootcert=\S+prod-ca_ca\.crt/);
    expect(waiting?.connectionString).not.toMatch(/passfile|password/);
    expect(lines.some((l) => l.msg === 'DB not available, will retry')).toBe(false);
    expect(lines.filter((l) => l.logger === 'pg_basebackup').map((l) => l.msg)).toContain('pg_basebackup: base backup completed');
  });

  it('loops "DB not available, will retry" when the server certificate does not match sslRootCert', async () => {
    const job = await waitFor('the badca Job Pod', async () => (await kube.list('pods', ns, 'job-name=badca-1-pgbasebackup'))[0]);
    const lines = await waitFor('three probe failures', async () => {
      const all = logLines(await readPodLog(kube, ns, job.metadata.name).catch(() => ''));
      return all.filter((l) => l.msg === 'DB not available, will retry').length >= 3 ? all : undefined;
    });
    const failure = lines.find((l) => l.msg === 'DB not available, will retry');
    expect(failure?.err).toMatch(/^failed to connect to `user=streaming_replica database=postgres`: .*tls error: .*certificate/);
    const cluster = await kube.get('clusters', ns, 'badca');
    expect(cluster.status).toMatchObject({ phase: 'Setting up primary', phaseReason: 'Creating primary instance badca-1' });
    const jobObj = await kube.get('jobs', ns, 'badca-1-pgbasebackup');
    expect(jobObj.status.active).toBe(1);
    expect(jobObj.status.failed ?? 0).toBe(0);
  });
});

describe('instances: 3', () => {
  it('creates the primary, then replicas one by one ("Creating a new replica"), until readyInstances reaches 3', async () => {
    const cluster = await waitForPhase(kube, ns, 'ha', PHASE.healthy);
    expect(cluster.status).toMatchObject({
      instances: 3,
      readyInstances: 3,
      instanceNames: ['ha-1', 'ha-2', 'ha-3'],
      currentPrimary: 'ha-1',
      targetPrimary: 'ha-1',
    });
    const phases = (await recordedPhaseSteps(clusters, 'ha', PHASE.healthy))
      .filter((s) => s.phase && s.phase !== 'Waiting for the instances to become active')
      .map((s) => `${s.phase} / ${s.reason}`);
    expect(phases).toEqual([
      'Setting up primary / Creating primary instance ha-1',
      'Creating a new replica / Creating replica ha-2-join',
      'Creating a new replica / Creating replica ha-3-join',
      'Cluster in healthy state / ',
    ]);
    const roles = Object.fromEntries(
      (await kube.list('pods', ns, 'cnpg.io/cluster=ha,cnpg.io/podRole=instance')).map((p) => [
        p.metadata.name,
        p.metadata.labels['cnpg.io/instanceRole'],
      ]),
    );
    expect(roles).toEqual({ 'ha-1': 'primary', 'ha-2': 'replica', 'ha-3': 'replica' });
    const joins = clusters.events.length;
    expect(joins).toBeGreaterThan(0);
  });
});
