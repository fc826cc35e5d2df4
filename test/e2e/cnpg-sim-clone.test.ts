/**
 * The simulated CNPG operator clones for real: Clusters with bootstrap.pg_basebackup against a real
 * API server (test/envtest) and a real PostgreSQL source (password authentication here), walked
 * through CNPG 1.30's documented phases, objects, labels, secrets and post-clone SQL effects.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';
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
  type Obj,
  passwordExternal,
  Recorder,
  recordedPhaseSteps,
  type SourceServer,
  waitFor,
  waitForPhase,
} from '../cnpg-sim/testing.js';

const run = promisify(execFile);
const kubeconfigPath = inject('kubeconfigPath');
const kube = new Kube(loadKubeConfig(kubeconfigPath));
const image = imageFor(localPgMajor());

let ns: string;
let sandbox: Sandbox;
let source: SourceServer;
let sim: SimulatedOperator;
let recorders: Record<'clusters' | 'jobs' | 'pods' | 'pvcs', Recorder>;
let kubectlWait: Promise<{ stdout: string; stderr: string }>;
const healthy = new Map<string, Obj>();

async function connect(port: number, user: string, password: string, database: string): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port, user, password, database });
  await client.connect();
  return client;
}

async function connectError(port: number, user: string, password: string, database: string): Promise<Obj> {
  try {
    const client = await connect(port, user, password, database);
    await client.end();
  } catch (err) {
    return err as Obj;
  }
  throw new Error(`${user} could log in`);
}

const external = () => ({ name: 'prod', ...passwordExternal(source, 'prod-replication') });

beforeAll(async () => {
  ns = await createNamespace(kube, 'cnpg-sim-clone');
  sandbox = Sandbox.create('cnpg-sim-clone-');
  source = await createSource(sandbox, 'prod');
  await createSecret(kube, ns, 'prod-replication', { password: source.password });
  await createSecret(kube, ns, 'shop-credentials', { username: 'shopper', password: 'shop-secret-1' }, 'kubernetes.io/basic-auth');
  await createSecret(kube, ns, 'wrong-credentials', { username: 'someone-else', password: 'not-applied' }, 'kubernetes.io/basic-auth');
  const started = Date.now();
  sim = await startSimulatedOperator({
    kubeConfig: kube.kubeConfig,
    logDir: inject('podLogDir'),
    namespaces: [ns],
    ...FAST_TIMINGS,
  });
  console.log(`simulated operator started in ${Date.now() - started} ms`);
  recorders = {
    clusters: await Recorder.start(kube, 'clusters', ns),
    jobs: await Recorder.start(kube, 'jobs', ns),
    pods: await Recorder.start(kube, 'pods', ns),
    pvcs: await Recorder.start(kube, 'pvcs', ns),
  };
  // Three clones at once: defaults; a given app secret and superuser access; a secret naming another user.
  await kube.create('clusters', ns, clusterManifest(ns, 'pg', { imageName: image, external: external() }));
  await kube.create(
    'clusters',
    ns,
    clusterManifest(ns, 'custom', {
      imageName: image,
      database: 'shop',
      owner: 'shopper',
      appSecret: 'shop-credentials',
      enableSuperuserAccess: true,
      external: external(),
    }),
  );
  kubectlWait = run('kubectl', [
    '--kubeconfig',
    kubeconfigPath,
    '-n',
    ns,
    'wait',
    '--for=condition=Ready',
    'cluster/custom',
    '--timeout=60s',
  ]);
  await kube.create(
    'clusters',
    ns,
    clusterManifest(ns, 'wrongname', { imageName: image, appSecret: 'wrong-credentials', external: external() }),
  );
  for (const name of ['pg', 'custom', 'wrongname']) healthy.set(name, await waitForPhase(kube, ns, name, PHASE.healthy));
});

afterAll(async () => {
  for (const r of Object.values(recorders ?? {})) await r.stop();
  await sim?.stop();
  await sandbox?.destroy();
});

describe('status', () => {
  it('walks "Setting up primary" to "Cluster in healthy state", the Ready condition tracking the phase', async () => {
    const steps = (await recordedPhaseSteps(recorders.clusters, 'pg', PHASE.healthy)).filter((s) => s.phase !== undefined);
    const notReady = { status: 'False', reason: 'ClusterIsNotReady', message: 'Cluster Is Not Ready' };
    expect(steps[0]).toEqual({ phase: 'Setting up primary', reason: 'Creating primary instance pg-1', ready: notReady });
    expect(steps[steps.length - 1]).toEqual({
      phase: 'Cluster in healthy state',
      reason: '',
      ready: { status: 'True', reason: 'ClusterIsReady', message: 'Cluster is Ready' },
    });
    // In between, at most "Waiting for the instances to become active" while Pod pg-1 is Pending.
    for (const step of steps.slice(1, -1)) {
      expect(step).toEqual({
        phase: 'Waiting for the instances to become active',
        reason: 'Some instances are not yet active. Please wait.',
        ready: notReady,
      });
    }
    // No phase is written before the first RegisterPhase.
    expect(recorders.clusters.of('pg')[0]?.obj.status?.phase).toBeUndefined();
  });

  it('fills instances, readyInstances, primaries, services and conditions', () => {
    const status = healthy.get('pg')?.status;
    expect(status).toMatchObject({
      instances: 1,
      readyInstances: 1,
      instanceNames: ['pg-1'],
      targetPrimary: 'pg-1',
      currentPrimary: 'pg-1',
      writeService: 'pg-rw',
      readService: 'pg-r',
      phaseReason: '',
      image,
      pgDataImageInfo: { image, majorVersion: localPgMajor() },
      instancesStatus: { healthy: ['pg-1'] },
    });
    const conditions = Object.fromEntries((status.conditions as Obj[]).map((c) => [c.type, c]));
    expect(conditions.Ready).toMatchObject({ status: 'True', reason: 'ClusterIsReady', message: 'Cluster is Ready' });
    expect(conditions.Initialized).toMatchObject({
      status: 'True',
      reason: 'BootstrapCompleted',
      message: 'Cluster has been bootstrapped',
    });
    expect(conditions.ConsistentSystemID).toMatchObject({ status: 'True', reason: 'Unique' });
    // pg_basebackup copies the source's system identifier.
    expect(status.systemID).toMatch(/^\d+$/);
    expect(status.latestGeneratedNode).toBeUndefined();
  });

  it('shows instances=1 and Initialized=True while the clone Job still runs', () => {
    const during = recorders.clusters
      .of('pg')
      .map((e) => e.obj.status)
      .find((s) => s?.phase === 'Setting up primary' && s.instances === 1);
    expect(during).toMatchObject({ readyInstances: 0, targetPrimary: 'pg-1' });
    expect(during?.currentPrimary).toBeFalsy();
    expect(((during?.conditions ?? []) as Obj[]).find((c) => c.type === 'Initialized')?.status).toBe('True');
  });

  it('writes the webhook defaults into the spec (database=app, owner=database)', async () => {
    const cluster = await kube.get('clusters', ns, 'pg');
    expect(cluster.spec.bootstrap.pg_basebackup).toEqual({ source: 'prod', database: 'app', owner: 'app' });
    expect(cluster.spec).toMatchObject({ instances: 1, logLevel: 'info', affinity: { podAntiAffinityType: 'preferred' } });
  });

  it('records the CreatingInstance event', async () => {
    const events = await kube.list('events', ns);
    expect(events.find((e) => e.involvedObject?.name === 'pg' && e.reason === 'CreatingInstance')).toMatchObject({
      type: 'Normal',
      message: 'Primary instance (from physical backup)',
    });
  });
});

describe('objects', () => {
  it('creates PVC pg-1 initializing, then ready, owned by the Cluster', async () => {
    const cluster = healthy.get('pg') as Obj;
    const history = recorders.pvcs.of('pg-1').map((e) => e.obj.metadata.annotations?.['cnpg.io/pvcStatus']);
    expect(history[0]).toBe('initializing');
    const pvc = await kube.get('pvcs', ns, 'pg-1');
    expect(pvc.metadata.annotations).toMatchObject({
      'cnpg.io/pvcStatus': 'ready',
      'cnpg.io/nodeSerial': '1',
      'cnpg.io/operatorVersion': '1.30.0',
    });
    expect(pvc.metadata.labels).toMatchObject({
      'cnpg.io/cluster': 'pg',
      'cnpg.io/instanceName': 'pg-1',
      'cnpg.io/pvcRole': 'PG_DATA',
      'cnpg.io/instanceRole': 'primary',
      role: 'primary',
      'app.kubernetes.io/name': 'postgresql',
      'app.kubernetes.io/managed-by': 'cloudnative-pg',
    });
    expect(pvc.metadata.ownerReferences).toEqual([
      { apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', name: 'pg', uid: cluster.metadata.uid, controller: true },
    ]);
    expect(pvc.spec).toMatchObject({ accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } });
    expect(pvc.status.phase).toBe('Bound');
  });

  it('runs Job pg-1-pgbasebackup with its labels and owner, lets it succeed, then deletes it', async () => {
    const cluster = healthy.get('pg') as Obj;
    const events = recorders.jobs.of('pg-1-pgbasebackup');
    const job = events[0]?.obj as Obj;
    const labels = {
      'cnpg.io/instanceName': 'pg-1',
      'cnpg.io/cluster': 'pg',
      'cnpg.io/jobRole': 'pgbasebackup',
      'app.kubernetes.io/name': 'postgresql',
      'app.kubernetes.io/instance': 'pg',
      'app.kubernetes.io/version': String(localPgMajor()),
      'app.kubernetes.io/component': 'database',
      'app.kubernetes.io/managed-by': 'cloudnative-pg',
    };
    expect(job.metadata.labels).toMatchObject(labels);
    expect(job.spec.template.metadata.labels).toMatchObject(labels);
    expect(job.metadata.ownerReferences).toEqual([
      {
        apiVersion: 'postgresql.cnpg.io/v1',
        kind: 'Cluster',
        name: 'pg',
        uid: cluster.metadata.uid,
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    expect(job.spec.backoffLimit).toBe(6);
    expect(job.spec.template.spec.containers.map((c: Obj) => c.name)).toEqual(['pgbasebackup']);
    expect(
      events.some(
        (e) => e.obj.status?.succeeded === 1 && e.obj.status.conditions.some((c: Obj) => c.type === 'Complete' && c.status === 'True'),
      ),
    ).toBe(true);
    await waitFor('the completed Job to be deleted', async () => (await kube.getOrNull('jobs', ns, 'pg-1-pgbasebackup')) === null);
    expect(events.some((e) => e.obj.metadata.deletionTimestamp)).toBe(true);
  });

  it('runs the Job Pod <job>-<5 chars> with the Job template labels and the Job as owner', () => {
    const [name, pod] = [...recorders.pods.latestByName('pg-1-pgbasebackup-')][0] ?? [];
    expect(name).toMatch(/^pg-1-pgbasebackup-[a-z0-9]{5}$/);
    const job = recorders.jobs.of('pg-1-pgbasebackup')[0]?.obj as Obj;
    expect(pod?.metadata.labels).toMatchObject({
      'job-name': 'pg-1-pgbasebackup',
      'batch.kubernetes.io/job-name': 'pg-1-pgbasebackup',
      'cnpg.io/jobRole': 'pgbasebackup',
      'cnpg.io/cluster': 'pg',
      'controller-uid': job.metadata.uid,
    });
    expect(pod?.metadata.labels['cnpg.io/podRole']).toBeUndefined();
    expect(pod?.metadata.ownerReferences).toEqual([
      { apiVersion: 'batch/v1', kind: 'Job', name: 'pg-1-pgbasebackup', uid: job.metadata.uid, controller: true, blockOwnerDeletion: true },
    ]);
    const phases = recorders.pods.of(String(name)).map((e) => e.obj.status?.phase);
    expect(phases).toContain('Running');
    expect(phases).toContain('Succeeded');
  });

  it('runs instance Pod pg-1, labelled primary once it is the current primary', async () => {
    const cluster = healthy.get('pg') as Obj;
    const pod = await kube.get('pods', ns, 'pg-1');
    expect(pod.metadata.labels).toMatchObject({
      'cnpg.io/cluster': 'pg',
      'cnpg.io/instanceName': 'pg-1',
      'cnpg.io/podRole': 'instance',
      'cnpg.io/instanceRole': 'primary',
      role: 'primary',
    });
    expect(pod.metadata.annotations['cnpg.io/nodeSerial']).toBe('1');
    expect(pod.metadata.ownerReferences).toEqual([
      {
        apiVersion: 'postgresql.cnpg.io/v1',
        kind: 'Cluster',
        name: 'pg',
        uid: cluster.metadata.uid,
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    expect(pod.status.phase).toBe('Running');
    expect(pod.status.conditions.find((c: Obj) => c.type === 'Ready').status).toBe('True');
    const first = recorders.pods.of('pg-1')[0]?.obj;
    expect(first?.status?.phase).toBe('Pending');
    expect(first?.metadata.labels.role).toBeUndefined();
  });

  it('creates the -rw, -ro and -r Services with CNPG selectors; -rw records the loopback port', async () => {
    const cluster = healthy.get('pg') as Obj;
    const port = await sim.clusterPort(ns, 'pg');
    const selectors = {
      'pg-rw': { 'cnpg.io/cluster': 'pg', 'cnpg.io/instanceRole': 'primary' },
      'pg-ro': { 'cnpg.io/cluster': 'pg', 'cnpg.io/instanceRole': 'replica' },
      'pg-r': { 'cnpg.io/cluster': 'pg', 'cnpg.io/podRole': 'instance' },
    };
    for (const [name, selector] of Object.entries(selectors)) {
      const svc = await kube.get('services', ns, name);
      expect(svc.spec.selector).toEqual(selector);
      expect(svc.spec.type).toBe('ClusterIP');
      expect(svc.spec.ports).toEqual([expect.objectContaining({ name: 'postgres', port: 5432, protocol: 'TCP' })]);
      expect(svc.metadata.ownerReferences).toEqual([
        expect.objectContaining({ kind: 'Cluster', uid: cluster.metadata.uid, controller: true }),
      ]);
    }
    expect((await kube.get('services', ns, 'pg-rw')).metadata.annotations['sim.db-refresher.io/loopback-port']).toBe(String(port));
  });

  it('generates pg-app with the documented keys, plus the CA, server and replication secrets', async () => {
    const cluster = healthy.get('pg') as Obj;
    const secret = await kube.get('secrets', ns, 'pg-app');
    expect(secret.type).toBe('kubernetes.io/basic-auth');
    expect(secret.metadata.labels).toMatchObject({
      'cnpg.io/cluster': 'pg',
      'cnpg.io/userType': 'app',
      'cnpg.io/reload': 'true',
      'app.kubernetes.io/managed-by': 'cloudnative-pg',
    });
    expect(secret.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'Cluster', uid: cluster.metadata.uid, controller: true }),
    ]);
    const data = decodeSecret(secret);
    expect(Object.keys(data).sort()).toEqual([
      'dbname',
      'fqdn-jdbc-uri',
      'fqdn-uri',
      'host',
      'jdbc-uri',
      'password',
      'pgpass',
      'port',
      'uri',
      'user',
      'username',
    ]);
    const pw = data.password ?? '';
    expect(pw).toMatch(/^[A-Za-z0-9]{64}$/);
    expect(data).toMatchObject({
      username: 'app',
      user: 'app',
      dbname: 'app',
      host: 'pg-rw',
      port: '5432',
      pgpass: `pg-rw:5432:app:app:${pw}\n`,
      uri: `postgresql://app:${pw}@pg-rw.${ns}:5432/app`,
      'fqdn-uri': `postgresql://app:${pw}@pg-rw.${ns}.svc.cluster.local:5432/app`,
      'jdbc-uri': `jdbc:postgresql://pg-rw.${ns}:5432/app?password=${pw}&user=app`,
    });
    const ca = await kube.get('secrets', ns, 'pg-ca');
    expect(Object.keys(ca.data).sort()).toEqual(['ca.crt', 'ca.key']);
    expect(ca.metadata.labels?.['cnpg.io/cluster']).toBeUndefined();
    const server = await kube.get('secrets', ns, 'pg-server');
    expect(server.type).toBe('kubernetes.io/tls');
    const serverCert = new X509Certificate(decodeSecret(server)['tls.crt'] ?? '');
    expect(serverCert.subject).toContain('CN=pg-rw');
    expect(serverCert.subjectAltName).toContain(`DNS:pg-rw.${ns}.svc`);
    expect(serverCert.verify(new X509Certificate(decodeSecret(ca)['ca.crt'] ?? '').publicKey)).toBe(true);
    const replication = new X509Certificate(decodeSecret(await kube.get('secrets', ns, 'pg-replication'))['tls.crt'] ?? '');
    expect(replication.subject).toContain('CN=streaming_replica');
    // The user's secret is left alone: no owner, so no garbage collection.
    expect((await kube.get('secrets', ns, 'prod-replication')).metadata.ownerReferences).toBeUndefined();
  });

  it('creates no pg-app when pg_basebackup.secret is given, and pg-superuser with enableSuperuserAccess', async () => {
    expect(await kube.getOrNull('secrets', ns, 'custom-app')).toBeNull();
    expect(await kube.getOrNull('secrets', ns, 'pg-superuser')).toBeNull();
    const superuser = decodeSecret(await kube.get('secrets', ns, 'custom-superuser'));
    expect(superuser).toMatchObject({ username: 'postgres', dbname: '*' });
  });
});

describe('the clone', () => {
  it('serves the source data on the -rw loopback port to the owner, with the password from pg-app', async () => {
    const { port } = await sim.connection(ns, 'pg');
    const app = decodeSecret(await kube.get('secrets', ns, 'pg-app'));
    const client = await connect(port, 'app', app.password ?? '', 'app');
    try {
      expect((await client.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(100);
      // The existing database keeps its owner: no ALTER DATABASE ... OWNER, no grants (§2.4, issue #5004).
      await expect(client.query(`INSERT INTO orders VALUES (1000, 'x')`)).rejects.toThrow(/permission denied for table orders/);
    } finally {
      await client.end();
    }
  });

  it('applies the post-clone SQL: owner role created, existing database untouched, operator roles, postgres password NULL', async () => {
    const roles = await sim.sql<{ rolname: string; rolcanlogin: boolean; rolreplication: boolean; nopassword: boolean }>(
      ns,
      'pg',
      `SELECT rolname, rolcanlogin, rolreplication, rolpassword IS NULL AS nopassword FROM pg_authid
        WHERE rolname IN ('app', 'postgres', 'streaming_replica', 'cnpg_metrics_exporter') ORDER BY rolname`,
    );
    expect(roles).toEqual([
      { rolname: 'app', rolcanlogin: true, rolreplication: false, nopassword: false },
      { rolname: 'cnpg_metrics_exporter', rolcanlogin: true, rolreplication: false, nopassword: true },
      { rolname: 'postgres', rolcanlogin: true, rolreplication: true, nopassword: true },
      { rolname: 'streaming_replica', rolcanlogin: true, rolreplication: true, nopassword: false },
    ]);
    const owner = await sim.sql(ns, 'pg', `SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = 'app'`);
    expect(owner).toEqual([{ owner: 'legacy' }]);
    // The source's superuser password was wiped (enableSuperuserAccess defaults to false).
    const { port } = await sim.connection(ns, 'pg');
    expect((await connectError(port, 'postgres', source.server.superuserPassword, 'postgres')).code).toBe('28P01');
  });

  it('creates a missing database with OWNER owner and sets the owner password from the given secret', async () => {
    const { port } = await sim.connection(ns, 'custom');
    const client = await connect(port, 'shopper', 'shop-secret-1', 'shop');
    try {
      const row = (await client.query(`SELECT current_user AS u, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = 'shop'`))
        .rows[0];
      expect(row).toEqual({ u: 'shopper', owner: 'shopper' });
      expect((await client.query(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'`)).rows[0].n).toBe(0);
    } finally {
      await client.end();
    }
    // enableSuperuserAccess: postgres gets the custom-superuser password.
    const superuser = decodeSecret(await kube.get('secrets', ns, 'custom-superuser'));
    const su = await connect(port, 'postgres', superuser.password ?? '', 'app');
    try {
      expect((await su.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(100);
    } finally {
      await su.end();
    }
  });

  it('refuses a secret whose username is not the owner, with the CNPG error in the instance log', async () => {
    const { port } = await sim.connection(ns, 'wrongname');
    expect((await connectError(port, 'someone-else', 'not-applied', 'app')).code).toBe('28P01');
    expect((await connectError(port, 'app', 'not-applied', 'app')).code).toBe('28P01');
    const log = await import('node:fs').then((fs) => fs.readFileSync(`${inject('podLogDir')}/${ns}/wrongname-1.log`, 'utf8'));
    expect(log).toContain("while updating database owner password: wrong username 'someone-else' in secret, expected 'app'");
  });

  it('re-applies the owner password when the app secret changes', async () => {
    const secret = await kube.get('secrets', ns, 'pg-app');
    await kube.mergePatch('secrets', ns, 'pg-app', { stringData: { password: 'rotated-password' } });
    expect(secret.metadata.resourceVersion).toBeTruthy();
    const { port } = await sim.connection(ns, 'pg');
    await waitFor('the new password to work', async () => {
      const client = await connect(port, 'app', 'rotated-password', 'app');
      await client.end();
      return true;
    });
  });
});

describe('kubectl against a simulated Cluster', () => {
  it('kubectl wait --for=condition=Ready returns once the Cluster is healthy', async () => {
    const { stdout } = await kubectlWait;
    expect(stdout.trim()).toBe('cluster.postgresql.cnpg.io/custom condition met');
  });

  it('kubectl get clusters.postgresql.cnpg.io -A shows instances, ready, status and primary', async () => {
    const { stdout } = await run('kubectl', ['--kubeconfig', kubeconfigPath, 'get', 'clusters.postgresql.cnpg.io', '-A']);
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^NAMESPACE\s+NAME\s+AGE\s+INSTANCES\s+READY\s+STATUS\s+PRIMARY$/);
    const row = lines.find((l) => l.startsWith(ns) && /\spg\s/.test(l));
    expect(row).toMatch(new RegExp(`^${ns}\\s+pg\\s+\\S+\\s+1\\s+1\\s+Cluster in healthy state\\s+pg-1$`));
  });
});
