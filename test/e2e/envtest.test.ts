/**
 * What the test Kubernetes API server (test/envtest) really does, checked with the same client the
 * service uses (@kubernetes/client-node) and with kubectl as an independent client.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import {
  ApiException,
  ApisApi,
  BatchV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  Log,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
  Watch,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

const run = promisify(execFile);

const GROUP = 'postgresql.cnpg.io';
const VERSION = 'v1';
const PLURAL = 'clusters';

const kubeconfigPath = inject('kubeconfigPath');
const podLogDir = inject('podLogDir');
const kc = new KubeConfig();
kc.loadFromFile(kubeconfigPath);
const core = kc.makeApiClient(CoreV1Api);
const objects = kc.makeApiClient(CustomObjectsApi);

// One namespace per run of this file, so reruns against a kept server cannot collide.
const ns = `envtest-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  await core.createNamespace({ body: { metadata: { name: ns } } });
});

afterAll(async () => {
  await core.deleteNamespace({ name: ns });
});

// biome-ignore lint/suspicious/noExplicitAny: API bodies are read ad hoc here; each assertion checks the shape it reads.
type Json = Record<string, any>;

function clusterManifest(name: string, spec: Json = {}): Json {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'Cluster',
    metadata: { name, namespace: ns },
    spec: {
      instances: 1,
      imageName: 'ghcr.io/cloudnative-pg/postgresql:18.6-system-trixie',
      storage: { size: '1Gi' },
      bootstrap: { pg_basebackup: { source: 'source-cluster', database: 'app', owner: 'app' } },
      externalClusters: [
        {
          name: 'source-cluster',
          connectionParameters: { host: 'prod-rw.prod.svc', user: 'streaming_replica', dbname: 'postgres' },
          password: { name: 'source-replica-user', key: 'password' },
        },
      ],
      ...spec,
    },
  };
}

async function createCluster(body: Json, fieldValidation?: 'Strict' | 'Warn' | 'Ignore'): Promise<Json> {
  return objects.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, body, fieldValidation });
}

async function getCluster(name: string): Promise<Json> {
  return objects.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name });
}

/** The Status body of the ApiException `promise` rejects with; fails unless the code is `code`. */
async function apiError(promise: Promise<unknown>, code: number): Promise<Json> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiException);
    const e = err as ApiException<string>;
    expect(e.code, e.body).toBe(code);
    return JSON.parse(e.body) as Json;
  }
  throw new Error(`expected HTTP ${code}, the call succeeded`);
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const applyPatch = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);

interface WatchEvent {
  type: string;
  object: Json;
}

/** Watches until `enough` says so, the server ends the stream, or the timeout passes. */
async function watchUntil(
  path: string,
  query: Record<string, string | number | boolean | undefined>,
  enough: (events: WatchEvent[]) => boolean,
  timeoutMs = 15_000,
): Promise<{ events: WatchEvent[]; endedByServer: boolean; error: unknown }> {
  const events: WatchEvent[] = [];
  let controller: AbortController | undefined;
  let finished = false;
  return new Promise((resolve, reject) => {
    const finish = (endedByServer: boolean, error: unknown): void => {
      if (finished) {
        return;
      }
      finished = true;
      clearTimeout(timer);
      controller?.abort();
      resolve({ events, endedByServer, error });
    };
    const timer = setTimeout(() => {
      if (!finished) {
        finished = true;
        controller?.abort();
        reject(new Error(`watch ${path}: no result in ${timeoutMs} ms; events: ${events.map((e) => e.type).join(',')}`));
      }
    }, timeoutMs);
    new Watch(kc)
      .watch(
        path,
        query,
        (type, object) => {
          events.push({ type, object });
          if (enough(events)) {
            finish(false, undefined);
          }
        },
        (err) => finish(true, err),
      )
      .then((c) => {
        controller = c;
        if (finished) {
          c.abort();
        }
      }, reject);
  });
}

async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await run('kubectl', ['--kubeconfig', kubeconfigPath, ...args], { timeout: 30_000 });
  return stdout;
}

describe('CloudNativePG Cluster custom resource', () => {
  it('accepts a valid pg_basebackup Cluster with fieldValidation=Strict', async () => {
    const created = await createCluster(clusterManifest('valid'), 'Strict');
    expect(created.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.spec.bootstrap.pg_basebackup.source).toBe('source-cluster');
    expect(created.spec.externalClusters[0].password).toEqual({ name: 'source-replica-user', key: 'password' });
  });

  it('rejects an unknown field with 400 under fieldValidation=Strict', async () => {
    const body = clusterManifest('strict-unknown', { bogus: true });
    const status = await apiError(createCluster(body, 'Strict'), 400);
    expect(status.reason).toBe('BadRequest');
    expect(status.message).toContain('strict decoding error');
    expect(status.message).toContain('unknown field "spec.bogus"');
  });

  it('prunes an unknown field when validation is not strict', async () => {
    const created = await createCluster(clusterManifest('pruned', { bogus: true }));
    expect(created.spec).not.toHaveProperty('bogus');
    expect((await getCluster('pruned')).spec).not.toHaveProperty('bogus');
  });

  it('enforces the CRD CEL rule imageName XOR imageCatalogRef with 422', async () => {
    const body = clusterManifest('cel', {
      imageCatalogRef: { apiGroup: GROUP, kind: 'ClusterImageCatalog', name: 'postgresql', major: 18 },
    });
    const status = await apiError(createCluster(body), 422);
    expect(status.reason).toBe('Invalid');
    expect(status.message).toContain('imageName and imageCatalogRef are mutually exclusive');
  });

  it('rejects a schema type error with 422', async () => {
    const status = await apiError(createCluster(clusterManifest('bad-type', { instances: 'three' })), 422);
    expect(status.message).toContain('spec.instances');
  });

  it('applies CRD defaults (spec.instances, logLevel, primaryUpdateStrategy)', async () => {
    const body = clusterManifest('defaulted');
    delete body.spec.instances;
    const created = await createCluster(body);
    expect(created.spec.instances).toBe(1);
    expect(created.spec.logLevel).toBe('info');
    expect(created.spec.primaryUpdateStrategy).toBe('unsupervised');
  });

  it('serves status only through the /status subresource', async () => {
    await createCluster(clusterManifest('status'));
    const patched = await objects.patchNamespacedCustomObjectStatus(
      { group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'status', body: { status: { phase: 'Setting up primary' } } },
      mergePatch,
    );
    expect(patched.status.phase).toBe('Setting up primary');

    // Through the main endpoint a status change is dropped, a spec change kept.
    const main = await objects.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: ns,
        plural: PLURAL,
        name: 'status',
        body: { spec: { instances: 2 }, status: { phase: 'Cluster in healthy state' } },
      },
      mergePatch,
    );
    expect(main.spec.instances).toBe(2);
    expect(main.status.phase).toBe('Setting up primary');
    // And through /status a spec change is dropped.
    const viaStatus = await objects.patchNamespacedCustomObjectStatus(
      { group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'status', body: { spec: { instances: 3 } } },
      mergePatch,
    );
    expect(viaStatus.spec.instances).toBe(2);
  });

  it('answers 409 to a duplicate create and to a stale resourceVersion', async () => {
    const created = await createCluster(clusterManifest('conflicts'));
    expect((await apiError(createCluster(clusterManifest('conflicts')), 409)).reason).toBe('AlreadyExists');
    await objects.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'conflicts', body: { spec: { instances: 2 } } },
      mergePatch,
    );
    const stale = { ...created, spec: { ...created.spec, instances: 3 } };
    const status = await apiError(
      objects.replaceNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: ns,
        plural: PLURAL,
        name: 'conflicts',
        body: stale,
      }),
      409,
    );
    expect(status.reason).toBe('Conflict');
  });

  it('supports server-side apply with field ownership and conflicts', async () => {
    const applied = await objects.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: ns,
        plural: PLURAL,
        name: 'ssa',
        body: clusterManifest('ssa'),
        fieldManager: 'refresher',
      },
      applyPatch,
    );
    expect(applied.metadata.managedFields.map((m: Json) => m.manager)).toContain('refresher');

    const other = { apiVersion: `${GROUP}/${VERSION}`, kind: 'Cluster', metadata: { name: 'ssa', namespace: ns }, spec: { instances: 3 } };
    const conflict = await apiError(
      objects.patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'ssa', body: other, fieldManager: 'someone-else' },
        applyPatch,
      ),
      409,
    );
    expect(conflict.message).toContain('.spec.instances');

    const forced = await objects.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: ns,
        plural: PLURAL,
        name: 'ssa',
        body: other,
        fieldManager: 'someone-else',
        force: true,
      },
      applyPatch,
    );
    expect(forced.spec.instances).toBe(3);
    expect(forced.spec.bootstrap.pg_basebackup.source).toBe('source-cluster');
  });

  it('keeps an object with a finalizer until the finalizer is removed', async () => {
    const body = clusterManifest('finalized');
    body.metadata.finalizers = ['example.com/hold'];
    await createCluster(body);
    await objects.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'finalized' });
    const held = await getCluster('finalized');
    expect(held.metadata.deletionTimestamp).toBeTruthy();
    await objects.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'finalized', body: { metadata: { finalizers: null } } },
      mergePatch,
    );
    await apiError(getCluster('finalized'), 404);
  });
});

describe('watches', () => {
  const path = `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}`;

  it('streams changes after a given resourceVersion', async () => {
    const created = await createCluster(clusterManifest('watched'));
    const from = created.metadata.resourceVersion as string;
    const watching = watchUntil(path, { resourceVersion: from }, (events) => events.some((e) => e.type === 'MODIFIED'));
    await objects.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: ns,
        plural: PLURAL,
        name: 'watched',
        body: { metadata: { labels: { touched: 'yes' } } },
      },
      mergePatch,
    );
    const { events } = await watching;
    // Nothing from before `from` is replayed: the object's creation is not an event here.
    expect(events.map((e) => e.type)).not.toContain('ADDED');
    const modified = events.find((e) => e.type === 'MODIFIED');
    expect(modified?.object.metadata.labels.touched).toBe('yes');
  });

  it('answers a too-old resourceVersion with an in-stream 410 Expired and closes', async () => {
    const { events, endedByServer } = await watchUntil(path, { resourceVersion: '1' }, () => false);
    expect(endedByServer).toBe(true);
    expect(events).toHaveLength(1);
    expect(events[0]?.type).toBe('ERROR');
    expect(events[0]?.object.code).toBe(410);
    expect(events[0]?.object.reason).toBe('Expired');
  });

  it('sends bookmarks when asked (with a resourceVersion)', async () => {
    const list = await objects.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL });
    const rv = Number(list.metadata.resourceVersion);
    // A bookmark is sent shortly before the watch's deadline, and only once etcd's revision has moved
    // past the watch's start: a write to any other resource does that.
    const watching = watchUntil(path, { resourceVersion: String(rv), allowWatchBookmarks: true, timeoutSeconds: 5 }, (events) =>
      events.some((e) => e.type === 'BOOKMARK'),
    );
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'advance-revision' } } });
    const { events } = await watching;
    const bookmark = events.find((e) => e.type === 'BOOKMARK');
    expect(bookmark, `events: ${events.map((e) => e.type).join(',')}`).toBeDefined();
    expect(Number(bookmark?.object.metadata.resourceVersion)).toBeGreaterThan(rv);
    expect(events.filter((e) => e.type !== 'BOOKMARK')).toEqual([]);
  });

  it('sends bookmarks without a resourceVersion too (needs etcd >= 3.5.13)', async () => {
    const { events } = await watchUntil(path, { allowWatchBookmarks: true, timeoutSeconds: 4 }, (events) =>
      events.some((e) => e.type === 'BOOKMARK'),
    );
    expect(events.map((e) => e.type)).not.toContain('ERROR');
    expect(events.filter((e) => e.type === 'ADDED').length).toBeGreaterThan(0);
  });
});

describe('built-in types', () => {
  it('namespaces are Active on create', async () => {
    const created = await core.createNamespace({ body: { metadata: { name: `${ns}-extra` } } });
    expect(created.status?.phase).toBe('Active');
    await core.deleteNamespace({ name: `${ns}-extra` });
    await apiError(core.readNamespace({ name: `${ns}-extra` }), 404);
  });

  it('secrets default to Opaque and merge stringData into data', async () => {
    const created = await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: 'creds' }, data: { a: Buffer.from('from-data').toString('base64') }, stringData: { b: 'from-stringData' } },
    });
    expect(created.type).toBe('Opaque');
    expect(created.stringData).toBeUndefined();
    const read = await core.readNamespacedSecret({ name: 'creds', namespace: ns });
    expect(Buffer.from(read.data?.a ?? '', 'base64').toString()).toBe('from-data');
    expect(Buffer.from(read.data?.b ?? '', 'base64').toString()).toBe('from-stringData');
  });

  it('services get ClusterIP defaults and keep their clusterIP on update', async () => {
    const created = await core.createNamespacedService({
      namespace: ns,
      body: { metadata: { name: 'pg-rw' }, spec: { selector: { app: 'pg' }, ports: [{ port: 5432 }] } },
    });
    expect(created.spec?.type).toBe('ClusterIP');
    expect(created.spec?.ports?.[0]?.protocol).toBe('TCP');
    expect(created.spec?.ports?.[0]?.targetPort).toBe(5432);
    expect(created.spec?.clusterIP).toMatch(/^10\.96\.\d+\.\d+$/);
    const other = await core.createNamespacedService({
      namespace: ns,
      body: { metadata: { name: 'pg-ro' }, spec: { ports: [{ port: 5432 }] } },
    });
    expect(other.spec?.clusterIP).not.toBe(created.spec?.clusterIP);
    const replaced = await core.replaceNamespacedService({
      name: 'pg-rw',
      namespace: ns,
      body: { ...created, spec: { ...created.spec, clusterIP: undefined, clusterIPs: undefined } },
    });
    expect(replaced.spec?.clusterIP).toBe(created.spec?.clusterIP);
  });

  it('configmaps round-trip and support server-side apply', async () => {
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'cfg' }, data: { k: 'v' } } });
    const applied = await core.patchNamespacedConfigMap(
      {
        name: 'cfg',
        namespace: ns,
        fieldManager: 'refresher',
        body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg' }, data: { other: 'x' } },
      },
      applyPatch,
    );
    expect(applied.data).toEqual({ k: 'v', other: 'x' });
    expect(applied.metadata?.managedFields?.map((m) => m.manager)).toContain('refresher');
  });

  it('pods start Pending, get defaults, and take status only through /status', async () => {
    const pod = await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'pg-1' },
        spec: { containers: [{ name: 'postgres', image: 'postgres:18' }] },
        status: { phase: 'Running' },
      },
    });
    expect(pod.status?.phase).toBe('Pending');
    expect(pod.spec?.restartPolicy).toBe('Always');
    expect(pod.spec?.containers[0]?.imagePullPolicy).toBe('IfNotPresent');

    const running = await core.replaceNamespacedPodStatus({ name: 'pg-1', namespace: ns, body: { ...pod, status: { phase: 'Running' } } });
    expect(running.status?.phase).toBe('Running');
    const main = await core.patchNamespacedPod({ name: 'pg-1', namespace: ns, body: { status: { phase: 'Failed' } } }, mergePatch);
    expect(main.status?.phase).toBe('Running');
    const byPhase = await core.listNamespacedPod({ namespace: ns, fieldSelector: 'status.phase=Running' });
    expect(byPhase.items.map((p) => p.metadata?.name)).toEqual(['pg-1']);
  });

  it('persistentvolumeclaims get volumeMode Filesystem', async () => {
    const pvc = await core.createNamespacedPersistentVolumeClaim({
      namespace: ns,
      body: { metadata: { name: 'pg-1' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } },
    });
    expect(pvc.spec?.volumeMode).toBe('Filesystem');
    expect(pvc.spec?.resources?.requests?.storage).toBe('1Gi');
  });

  it('jobs get defaults and a generated selector, and a status subresource', async () => {
    const batch = kc.makeApiClient(BatchV1Api);
    const job = await batch.createNamespacedJob({
      namespace: ns,
      body: {
        metadata: { name: 'pg-1-pgbasebackup' },
        spec: { template: { spec: { containers: [{ name: 'bootstrap', image: 'postgres:18' }] } } },
      },
    });
    expect(job.spec?.backoffLimit).toBe(6);
    expect(job.spec?.template.spec?.restartPolicy).toBe('Never');
    expect(job.spec?.selector?.matchLabels?.['batch.kubernetes.io/controller-uid']).toBe(job.metadata?.uid);
    expect(job.spec?.template.metadata?.labels?.['job-name']).toBe('pg-1-pgbasebackup');
    const done = await batch.patchNamespacedJobStatus(
      { name: 'pg-1-pgbasebackup', namespace: ns, body: { status: { succeeded: 1 } } },
      mergePatch,
    );
    expect(done.status?.succeeded).toBe(1);
  });

  it('leases take V1MicroTime and conflict on a stale resourceVersion', async () => {
    const leases = kc.makeApiClient(CoordinationV1Api);
    const renewTime = new V1MicroTime();
    const lease = await leases.createNamespacedLease({
      namespace: ns,
      body: { metadata: { name: 'db-refresher' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15, renewTime } },
    });
    expect(new Date(lease.spec?.renewTime ?? 0).getTime()).toBe(renewTime.getTime());
    await leases.replaceNamespacedLease({
      name: 'db-refresher',
      namespace: ns,
      body: { ...lease, spec: { ...lease.spec, holderIdentity: 'b' } },
    });
    const stale = leases.replaceNamespacedLease({
      name: 'db-refresher',
      namespace: ns,
      body: { ...lease, spec: { ...lease.spec, holderIdentity: 'c' } },
    });
    expect((await apiError(stale, 409)).reason).toBe('Conflict');
  });

  it('events are stored and selectable by involvedObject', async () => {
    const involvedObject = { apiVersion: `${GROUP}/${VERSION}`, kind: 'Cluster', name: 'valid', namespace: ns };
    await core.createNamespacedEvent({
      namespace: ns,
      body: { metadata: { name: 'valid.1' }, involvedObject, reason: 'RefreshStarted', message: 'refresh started', type: 'Normal' },
    });
    await core.createNamespacedEvent({
      namespace: ns,
      body: { metadata: { name: 'other.1' }, involvedObject: { ...involvedObject, name: 'other' }, reason: 'X', type: 'Normal' },
    });
    const list = await core.listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=valid' });
    expect(list.items.map((e) => e.reason)).toEqual(['RefreshStarted']);
  });

  it('has no admission: a create in a missing namespace succeeds (as in envtest)', async () => {
    const created = await core.createNamespacedConfigMap({ namespace: `${ns}-missing`, body: { metadata: { name: 'orphan' } } });
    expect(created.metadata?.namespace).toBe(`${ns}-missing`);
    await core.deleteNamespacedConfigMap({ name: 'orphan', namespace: `${ns}-missing` });
  });

  it('lists core groups at /api and every group, CRDs included, at /apis', async () => {
    const groups = await kc.makeApiClient(ApisApi).getAPIVersions();
    const names = groups.groups.map((g) => g.name);
    expect(names).toEqual(expect.arrayContaining(['apiextensions.k8s.io', 'batch', 'coordination.k8s.io', GROUP]));
  });
});

describe('pods/log', () => {
  const writeLog = (pod: string, text: string): string => {
    mkdirSync(join(podLogDir, ns), { recursive: true });
    const file = join(podLogDir, ns, `${pod}.log`);
    writeFileSync(file, text);
    return file;
  };

  beforeAll(async () => {
    await core.createNamespacedPod({
      namespace: ns,
      body: { metadata: { name: 'logger' }, spec: { containers: [{ name: 'postgres', image: 'postgres:18' }] } },
    });
  });

  it('serves <logDir>/<namespace>/<pod>.log, with tailLines', async () => {
    writeLog('logger', 'one\ntwo\nthree\n');
    expect(await core.readNamespacedPodLog({ name: 'logger', namespace: ns })).toBe('one\ntwo\nthree\n');
    expect(await core.readNamespacedPodLog({ name: 'logger', namespace: ns, tailLines: 2 })).toBe('two\nthree\n');
    expect(await core.readNamespacedPodLog({ name: 'logger', namespace: ns, limitBytes: 3 })).toBe('one');
    expect(await kubectl('logs', '-n', ns, 'logger', '--tail=1')).toBe('three\n');
  });

  it('answers like kubelet for a pod with no log yet, and 404 for a missing pod', async () => {
    await core.createNamespacedPod({
      namespace: ns,
      body: { metadata: { name: 'silent' }, spec: { containers: [{ name: 'postgres', image: 'postgres:18' }] } },
    });
    const waiting = await apiError(core.readNamespacedPodLog({ name: 'silent', namespace: ns }), 400);
    expect(waiting.message).toContain('is waiting to start');
    await apiError(core.readNamespacedPodLog({ name: 'no-such-pod', namespace: ns }), 404);
    await apiError(core.readNamespacedPodLog({ name: 'logger', namespace: ns, container: 'nope' }), 400);
  });

  it('follows appended lines until the pod finishes', async () => {
    const file = writeLog('logger', 'start\n');
    const out = new PassThrough();
    let text = '';
    out.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    // client-node 2.x ends the stream it writes to when the server ends the log.
    const ended = new Promise<void>((resolve) => out.once('end', resolve));
    await new Log(kc).log(ns, 'logger', 'postgres', out, { follow: true });
    await expect.poll(() => text, { timeout: 5000 }).toBe('start\n');
    appendFileSync(file, 'appended\n');
    await expect.poll(() => text, { timeout: 5000 }).toBe('start\nappended\n');
    const pod = await core.readNamespacedPod({ name: 'logger', namespace: ns });
    await core.replaceNamespacedPodStatus({ name: 'logger', namespace: ns, body: { ...pod, status: { phase: 'Succeeded' } } });
    await ended;
    expect(text).toBe('start\nappended\n');
  });
});

describe('kubectl against the server', () => {
  it('gets clusters.postgresql.cnpg.io across namespaces', async () => {
    const out = await kubectl(
      'get',
      'clusters.postgresql.cnpg.io',
      '-A',
      '-o',
      'custom-columns=NS:.metadata.namespace,NAME:.metadata.name',
      '--no-headers',
    );
    const rows = out
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/));
    expect(rows).toContainEqual([ns, 'valid']);
  });

  it('waits for condition=Ready on a Cluster whose status gets a Ready condition', async () => {
    await createCluster(clusterManifest('ready'));
    const waiter = spawn(
      'kubectl',
      ['--kubeconfig', kubeconfigPath, 'wait', '--for=condition=Ready', `clusters.${GROUP}/ready`, '-n', ns, '--timeout=30s'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    waiter.stdout.on('data', (c: Buffer) => {
      output += c.toString();
    });
    waiter.stderr.on('data', (c: Buffer) => {
      output += c.toString();
    });
    const exit = new Promise<number | null>((resolve) => waiter.once('exit', resolve));
    // Not Ready yet: kubectl must still be waiting.
    await new Promise((r) => setTimeout(r, 1000));
    expect(waiter.exitCode).toBeNull();
    await objects.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        namespace: ns,
        plural: PLURAL,
        name: 'ready',
        body: {
          status: {
            phase: 'Cluster in healthy state',
            conditions: [
              {
                type: 'Ready',
                status: 'True',
                reason: 'ClusterIsReady',
                message: 'Cluster is Ready',
                lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
              },
            ],
          },
        },
      },
      mergePatch,
    );
    expect(await exit, output).toBe(0);
    expect(output).toContain('condition met');
  });
});
