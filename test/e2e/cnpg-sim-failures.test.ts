/**
 * Failure modes of the simulated CNPG operator, as CNPG 1.30 has them (BEHAVIOUR.md §2.5, §3.3, §6):
 * connection problems loop "DB not available, will retry" with the Job still active; a failing
 * pg_basebackup (or a major-version mismatch, or a missing secret) fails the Job after its back-off
 * limit and makes the Cluster unrecoverable; an invalid definition stops at "Invalid cluster definition".
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, Sandbox } from '../../scripts/pg-sandbox.js';
import { PHASE, type SimulatedOperator, startSimulatedOperator } from '../cnpg-sim/index.js';
import {
  clusterManifest,
  createNamespace,
  createSecret,
  createSource,
  imageFor,
  Kube,
  loadKubeConfig,
  localPgMajor,
  logLines,
  type Obj,
  passwordExternal,
  readPodLog,
  type SourceServer,
  waitFor,
  waitForPhase,
} from '../cnpg-sim/testing.js';

const kube = new Kube(loadKubeConfig(inject('kubeconfigPath')));
const major = localPgMajor();
const image = imageFor(major);
const PROBE_RETRY_MS = 200;

let ns: string;
let sandbox: Sandbox;
let prod: SourceServer;
let tight: SourceServer;
let zero: SourceServer;
let sim: SimulatedOperator;

beforeAll(async () => {
  ns = await createNamespace(kube, 'cnpg-sim-fail');
  sandbox = Sandbox.create('cnpg-sim-fail-');
  [prod, tight, zero] = await Promise.all([
    createSource(sandbox, 'prod'),
    // One walsender: the probe's replication connection takes it, pg_basebackup gets none.
    createSource(sandbox, 'tight', { settings: { max_wal_senders: '1' } }),
    createSource(sandbox, 'zero', { settings: { max_wal_senders: '0' } }),
  ]);
  await createSecret(kube, ns, 'prod-replication', { password: prod.password });
  await createSecret(kube, ns, 'prod-wrong', { password: 'not-the-password' });
  await createSecret(kube, ns, 'tight-replication', { password: tight.password });
  await createSecret(kube, ns, 'zero-replication', { password: zero.password });
  sim = await startSimulatedOperator({
    kubeConfig: kube.kubeConfig,
    logDir: inject('podLogDir'),
    namespaces: [ns],
    probeRetryMs: PROBE_RETRY_MS,
    phaseStepMs: 50,
    jobBackoffLimit: 1,
    podRetryDelayMs: 100,
    deletionDelayMs: 100,
    podTerminationMs: 50,
  });
  const closedPort = await freePort();
  const create = (name: string, o: Parameters<typeof clusterManifest>[2]) => kube.create('clusters', ns, clusterManifest(ns, name, o));
  await Promise.all([
    create('unreachable', {
      imageName: image,
      external: {
        name: 'prod',
        ...passwordExternal(prod, 'prod-replication'),
        connectionParameters: { host: '127.0.0.1', port: String(closedPort), user: 'streaming_replica', dbname: 'postgres' },
      },
    }),
    create('badpassword', { imageName: image, external: { name: 'prod', ...passwordExternal(prod, 'prod-wrong') } }),
    create('nowalsender', { imageName: image, external: { name: 'prod', ...passwordExternal(zero, 'zero-replication') } }),
    create('bbfail', { imageName: image, external: { name: 'prod', ...passwordExternal(tight, 'tight-replication') } }),
    create('oldimage', { imageName: imageFor(major - 1), external: { name: 'prod', ...passwordExternal(prod, 'prod-replication') } }),
    create('newimage', { imageName: imageFor(major + 1), external: { name: 'prod', ...passwordExternal(prod, 'prod-replication') } }),
    create('nosecret', { imageName: image, external: { name: 'prod', ...passwordExternal(prod, 'missing-secret') } }),
  ]);
});

afterAll(async () => {
  await sim?.stop();
  await sandbox?.destroy();
});

async function jobPods(job: string): Promise<Obj[]> {
  return (await kube.list('pods', ns, `job-name=${job}`)).sort((a, b) =>
    String(a.metadata.creationTimestamp).localeCompare(String(b.metadata.creationTimestamp)),
  );
}

/** Waits until the Job Pod's log (read through the API) has `n` probe failures; returns its lines. */
async function probeFailures(cluster: string, n = 3): Promise<{ pod: Obj; lines: Obj[]; failures: Obj[] }> {
  return waitFor(`${n} "DB not available" lines for ${cluster}`, async () => {
    const pod = (await jobPods(`${cluster}-1-pgbasebackup`))[0];
    if (!pod) return undefined;
    const lines = logLines(await readPodLog(kube, ns, pod.metadata.name).catch(() => ''));
    const failures = lines.filter((l) => l.msg === 'DB not available, will retry');
    return failures.length >= n ? { pod, lines, failures } : undefined;
  });
}

async function expectStillSettingUp(cluster: string, pod: Obj): Promise<void> {
  const c = await kube.get('clusters', ns, cluster);
  expect(c.status).toMatchObject({ phase: 'Setting up primary', phaseReason: `Creating primary instance ${cluster}-1`, readyInstances: 0 });
  const job = await kube.get('jobs', ns, `${cluster}-1-pgbasebackup`);
  expect(job.status.active).toBe(1);
  expect(job.status.failed ?? 0).toBe(0);
  expect(job.status.conditions ?? []).toEqual([]);
  expect((await jobPods(`${cluster}-1-pgbasebackup`)).length).toBe(1);
  expect((await kube.get('pods', ns, pod.metadata.name)).status.phase).toBe('Running');
}

describe('the source cannot be used yet: the Job keeps probing, the phase stays "Setting up primary"', () => {
  it('an unreachable source', async () => {
    const { pod, lines, failures } = await probeFailures('unreachable');
    expect(lines[0]).toMatchObject({ level: 'info', msg: 'Waiting for server to be available', logging_pod: pod.metadata.name });
    expect(failures[0]?.err).toMatch(
      /^failed to connect to `user=streaming_replica database=postgres`: 127\.0\.0\.1:\d+ \(127\.0\.0\.1\): dial error: .*connection refused$/,
    );
    // Every probeRetryMs, like CNPG's 5 s back-off.
    const times = failures.map((l) => Date.parse(String(l.ts)));
    for (let i = 1; i < times.length; i++) expect((times[i] ?? 0) - (times[i - 1] ?? 0)).toBeGreaterThanOrEqual(PROBE_RETRY_MS - 5);
    await expectStillSettingUp('unreachable', pod);
  });

  it('a wrong password', async () => {
    const { pod, failures } = await probeFailures('badpassword');
    expect(failures[0]?.err).toMatch(
      /server error: FATAL: password authentication failed for user "streaming_replica" \(SQLSTATE 28P01\)$/,
    );
    await expectStillSettingUp('badpassword', pod);
  });

  it('no free walsender slot', async () => {
    const { pod, failures } = await probeFailures('nowalsender');
    expect(failures[0]?.err).toMatch(
      /FATAL: number of requested standby connections exceeds max_wal_senders \(currently 0\) \(SQLSTATE 53300\)$/,
    );
    await expectStillSettingUp('nowalsender', pod);
  });
});

/** The Job Failed after 1 + jobBackoffLimit Pods, and the Cluster is unrecoverable (v1.30). */
async function expectFailedJob(cluster: string): Promise<Obj[][]> {
  const c = await waitForPhase(kube, ns, cluster, PHASE.unrecoverable);
  expect(c.status.phaseReason).toBe(
    `Instance creation failed for the following jobs: ${cluster}-1-pgbasebackup. Check the job logs to investigate the cause of the failure.`,
  );
  expect(c.status.conditions.find((x: Obj) => x.type === 'Ready')).toMatchObject({ status: 'False', reason: 'ClusterIsNotReady' });
  const job = await kube.get('jobs', ns, `${cluster}-1-pgbasebackup`);
  expect(job.status.failed).toBe(2);
  // active: 0 is omitted (omitempty), as kube-apiserver serves it.
  expect(job.status.active ?? 0).toBe(0);
  expect(job.status.conditions).toEqual([
    expect.objectContaining({ type: 'FailureTarget', status: 'True', reason: 'BackoffLimitExceeded' }),
    expect.objectContaining({
      type: 'Failed',
      status: 'True',
      reason: 'BackoffLimitExceeded',
      message: 'Job has reached the specified backoff limit',
    }),
  ]);
  const pods = await jobPods(`${cluster}-1-pgbasebackup`);
  expect(pods.map((p) => p.status.phase)).toEqual(['Failed', 'Failed']);
  expect(pods[0]?.status.containerStatuses[0].state.terminated).toMatchObject({ exitCode: 1, reason: 'Error' });
  // The failed Job is not deleted, so its Pods' logs stay readable.
  return Promise.all(pods.map(async (p) => logLines(await readPodLog(kube, ns, p.metadata.name))));
}

describe('the clone fails: Job Failed/BackoffLimitExceeded, Cluster unrecoverable', () => {
  it('pg_basebackup cannot get a walsender after the probe took the only one', async () => {
    const logs = await expectFailedJob('bbfail');
    for (const lines of logs) {
      expect(lines.filter((l) => l.logger === 'pg_basebackup' && l.pipe === 'stderr').map((l) => l.msg)).toContainEqual(
        expect.stringMatching(
          /^pg_basebackup: error: .*FATAL: {2}number of requested standby connections exceeds max_wal_senders \(currently 1\)/,
        ),
      );
      expect(lines[lines.length - 1]).toMatchObject({
        level: 'error',
        msg: 'Unable to bootstrap cluster',
        error: 'while cloning pgdata: error in pg_basebackup, exit status 1',
      });
    }
  });

  it('the image is older than the source: pg_basebackup refuses the server version (simulated)', async () => {
    const [first] = await expectFailedJob('oldimage');
    expect(first?.find((l) => l.logger === 'pg_basebackup')?.msg).toMatch(
      new RegExp(`^pg_basebackup: error: incompatible server version ${major}\\.\\d+`),
    );
    expect(first?.[first.length - 1]).toMatchObject({
      msg: 'Unable to bootstrap cluster',
      error: 'while cloning pgdata: error in pg_basebackup, exit status 1',
    });
  });

  it('the image is newer than the source: the copy succeeds, PostgreSQL refuses the data directory (simulated)', async () => {
    const [first] = await expectFailedJob('newimage');
    const messages = (first ?? []).map((l) => l.msg);
    expect(messages).toContain('pg_basebackup: base backup completed');
    expect(messages).toContain('FATAL:  database files are incompatible with server');
    expect(messages).toContain(
      `DETAIL:  The data directory was initialized by PostgreSQL version ${major}, which is not compatible with this version ${major + 1}.10.`,
    );
  });

  it('the password secret does not exist', async () => {
    const [first] = await expectFailedJob('nosecret');
    expect(first?.[first.length - 1]).toMatchObject({
      level: 'error',
      msg: 'Unable to bootstrap cluster',
      error: 'secrets "missing-secret" not found',
    });
  });

  it('deleting the Cluster stops a Job that is still probing', async () => {
    await kube.delete('clusters', ns, 'unreachable');
    await waitFor('the Job and its Pod to be garbage-collected', async () => {
      const job = await kube.getOrNull('jobs', ns, 'unreachable-1-pgbasebackup');
      return (
        !job &&
        (await jobPods('unreachable-1-pgbasebackup')).length === 0 &&
        (await kube.list('pvcs', ns, 'cnpg.io/cluster=unreachable')).length === 0
      );
    });
  });
});

describe('an invalid definition (no admission webhook): phase "Invalid cluster definition", nothing created', () => {
  const cases: Array<{ name: string; paths: string; message: RegExp; spec: (base: Obj) => void }> = [
    {
      name: 'nosize',
      paths: 'spec.storage.size',
      message: /spec\.storage\.size: Invalid value: "": Size not configured/,
      spec: (s) => (s.storage = {}),
    },
    {
      name: 'twomethods',
      paths: 'spec.bootstrap',
      message: /spec\.bootstrap: Forbidden: Only one bootstrap method can be specified at a time/,
      spec: (s) => (s.bootstrap.initdb = { database: 'app', owner: 'app' }),
    },
    {
      name: 'unknownsource',
      paths: 'spec.bootstrap.pg_basebackup.source',
      message: /spec\.bootstrap\.pg_basebackup\.source: Invalid value: "elsewhere": External cluster elsewhere not found/,
      spec: (s) => (s.bootstrap.pg_basebackup.source = 'elsewhere'),
    },
    {
      name: 'bad.name',
      paths: 'metadata.name',
      message: /metadata\.name: Invalid value: "bad\.name": cluster name must be a valid DNS label/,
      spec: () => undefined,
    },
    {
      name: `n${'x'.repeat(50)}`,
      paths: 'metadata.name',
      message: /the maximum length of a cluster name is 50 characters/,
      spec: () => undefined,
    },
    {
      name: 'latest',
      paths: 'spec.imageName',
      message: /spec\.imageName: Invalid value: "postgres:latest": Can't use 'latest' as image tag/,
      spec: (s) => (s.imageName = 'postgres:latest'),
    },
    {
      name: 'twoproblems',
      paths: 'spec.storage.size, spec.bootstrap.pg_basebackup.source',
      message: /is invalid: \[spec\.storage\.size: .*, spec\.bootstrap\.pg_basebackup\.source: .*\]/,
      spec: (s) => {
        s.storage = {};
        s.bootstrap.pg_basebackup.source = 'elsewhere';
      },
    },
  ];

  beforeAll(async () => {
    for (const c of cases) {
      const body = clusterManifest(ns, c.name, {
        imageName: image,
        external: { name: 'prod', ...passwordExternal(prod, 'prod-replication') },
      });
      c.spec(body.spec);
      await kube.create('clusters', ns, body);
    }
  });

  for (const c of cases) {
    it(`${c.name.length > 20 ? 'a 51-character name' : c.name}: ${c.paths}`, async () => {
      const cluster = await waitForPhase(kube, ns, c.name, PHASE.definitionInvalid);
      expect(cluster.status.phaseReason).toBe(
        `the resource failed admission validation on: ${c.paths} (see the operator logs for details)`,
      );
      expect(cluster.status.conditions.find((x: Obj) => x.type === 'Ready')).toMatchObject({
        status: 'False',
        reason: 'ClusterIsNotReady',
        message: 'Cluster Is Not Ready',
      });
      expect(await kube.list('pvcs', ns, `cnpg.io/cluster=${c.name}`)).toEqual([]);
      expect(await kube.list('jobs', ns, `cnpg.io/cluster=${c.name}`)).toEqual([]);
      const logged = sim.operatorLog().find((e) => e.name === c.name && e.level === 'error');
      expect(logged?.msg).toMatch(
        /^admission webhook "vcluster\.cnpg\.io" denied the request: Cluster\.postgresql\.cnpg\.io ".*" is invalid: /,
      );
      expect(logged?.msg).toMatch(c.message);
    });
  }
});
