/**
 * Least privilege, measured: real cnpg refreshes (a real PostgreSQL source, the test API server, a
 * simulated operator) and the Kubernetes run store go through a proxy that records every API request.
 * Each request is turned into authorization attributes by kube-apiserver's RequestInfoFactory and
 * checked against the Roles the db-refresher chart renders for the same job (RBAC's Covers, in Go).
 * Every request must be allowed, and every verb the Roles grant must have been used.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { KubernetesRunStore } from '../../src/history/k8s-store.js';
import { Kube } from '../../src/kube/client.js';
import { createLogger } from '../../src/observe/logger.js';
import type { RunRecord } from '../../src/run/record.js';
import { buildRenderer, type PolicyRule, type RbacDecision, rbacCheck, render } from '../charts/helpers.js';
import { type FaultProxy, startFaultProxy } from '../envtest/fault-proxy.js';
import { CnpgHarness } from '../support/cnpg-harness.js';

const base = new KubeConfig();
base.loadFromFile(inject('kubeconfigPath'));
const direct = base.makeApiClient(CustomObjectsApi);
const directCore = base.makeApiClient(CoreV1Api);
const releaseNs = `dbr-rbac-${randomBytes(3).toString('hex')}`;
const CLUSTER = { group: 'postgresql.cnpg.io', version: 'v1', plural: 'clusters' } as const;

let proxy: FaultProxy;
/** Every request through the proxy: its fault filter sees each one (and injects nothing). */
const requests: Array<{ method: string; url: string }> = [];
let h: CnpgHarness;
let tmp: string;
let operator: NodeJS.Timeout | undefined;
let operatorMode: 'healthy' | 'unrecoverable' = 'healthy';
const runs: RunRecord[] = [];
const bgRuns: RunRecord[] = [];

/** A stand-in for the CNPG operator: a new Cluster becomes healthy, or unrecoverable with a clone pod. */
async function operate(): Promise<void> {
  const list = (await direct.listNamespacedCustomObject({ ...CLUSTER, namespace: h.namespace })) as {
    items: Array<{ metadata: { name: string }; status?: { phase?: string } }>;
  };
  for (const cluster of list.items) {
    if (cluster.status?.phase) continue;
    const name = cluster.metadata.name;
    const now = new Date().toISOString();
    if (operatorMode === 'unrecoverable') {
      await directCore
        .createNamespacedPod({
          namespace: h.namespace,
          body: {
            metadata: { name: `${name}-1-pgbasebackup-abcde`, labels: { 'job-name': `${name}-1-pgbasebackup`, 'cnpg.io/cluster': name } },
            spec: { containers: [{ name: 'bootstrap-controller', image: 'ghcr.io/cloudnative-pg/postgresql:15.8-1' }] },
          },
        })
        .catch(() => undefined);
    }
    const status =
      operatorMode === 'healthy'
        ? {
            phase: 'Cluster in healthy state',
            readyInstances: 1,
            conditions: [{ type: 'Ready', status: 'True', reason: 'ClusterIsReady', message: 'Cluster is Ready', lastTransitionTime: now }],
          }
        : { phase: 'Cluster is unrecoverable and needs manual intervention', phaseReason: 'clone failed' };
    await direct.patchNamespacedCustomObjectStatus({
      ...CLUSTER,
      namespace: h.namespace,
      name,
      body: [{ op: 'add', path: '/status', value: status }],
    });
  }
}

beforeAll(async () => {
  await buildRenderer();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'chart-rbac-'));
  proxy = await startFaultProxy({
    target: new URL(base.getCurrentCluster()?.server ?? ''),
    faults: {
      eligible: (req) => {
        requests.push({ method: req.method, url: req.path });
        return false;
      },
    },
  });
  const kubeconfig = path.join(tmp, 'kubeconfig');
  writeFileSync(kubeconfig, proxy.kubeConfig(base).exportConfig());
  h = await CnpgHarness.start(kubeconfig, 'rbac');
  await directCore.createNamespace({ body: { metadata: { name: releaseNs } } });
  requests.splice(0); // the harness's own setup is not db-refresher's doing
  operator = setInterval(
    () => void operate().catch((error: unknown) => process.stderr.write(`[simulated operator] ${String(error)}\n`)),
    100,
  );

  const config = h.config(
    h.jobYaml({ connectPort: h.local.source.port, target: '      teardownTimeoutSeconds: 60\n      readyTimeoutSeconds: 60\n' }),
  );
  // 1: no Cluster yet; 2: replaces the Cluster run 1 made; 3: the clone fails and its pod log is read.
  runs.push(await h.local.run(config));
  runs.push(await h.local.run(config));
  // blueGreen (a job of its own in the same namespace): the first run creates the stable Service, the
  // second updates its selector and marks the old Cluster retired, the rollback switches back, and a run
  // with keepPrevious 0 deletes the previous Cluster (its quota preflight lists ResourceQuotas each time).
  const blueGreen = (keepPrevious: string) =>
    h.config(
      h.jobYaml({
        name: 'bg',
        clusterName: 'bg-db',
        connectPort: h.local.source.port,
        target: '      teardownTimeoutSeconds: 60\n      readyTimeoutSeconds: 60\n',
        // No private window: the stand-in operator runs no PostgreSQL to neutralise. The recreate runs read the
        // window's superuser Secret, then stop at neutralise for the same reason.
        job: `    neutralise: false\n    strategy:\n      kind: blueGreen\n      keepPrevious: ${keepPrevious}\n      drainSeconds: 0\n      serviceName: bg-stable\n      connect: { a: { host: 127.0.0.1, port: ${h.local.source.port} }, b: { host: 127.0.0.1, port: ${h.local.source.port} } }\n`,
      }),
    );
  bgRuns.push(await h.local.run(blueGreen('1h'), 'bg'));
  bgRuns.push(await h.local.run(blueGreen('1h'), 'bg'));
  bgRuns.push(await h.local.run(blueGreen('1h'), 'bg', { operation: 'rollback', reason: 'rbac test' }));
  bgRuns.push(await h.local.run(blueGreen('0'), 'bg'));
  operatorMode = 'unrecoverable';
  runs.push(await h.local.run(config));

  // The Kubernetes run history, in the release namespace: create, replace, list, and look-up by id.
  const log = createLogger({ level: 'silent', pretty: false });
  const proxyKc = new KubeConfig();
  proxyKc.loadFromFile(kubeconfig);
  const options = { kube: new Kube(proxyKc), namespace: releaseNs, keepRuns: 30, configMapPrefix: 'db-refresher-runs', log };
  const store = await KubernetesRunStore.create(options);
  for (const run of runs) await store.save(run);
  await store.list('qa');
  const fresh = await KubernetesRunStore.create(options);
  await fresh.get(runs[0]?.id ?? '');
}, 600_000);

afterAll(async () => {
  if (operator) clearInterval(operator);
  await h?.destroy();
  await directCore.deleteNamespace({ name: releaseNs }).catch(() => undefined);
  await proxy?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the chart grants exactly what db-refresher uses', () => {
  let decisions: RbacDecision[];
  let roles: Array<{ namespace: string; name: string; rules: PolicyRule[] }>;

  beforeAll(async () => {
    const values = path.join(tmp, 'values.yaml');
    // The job of the runs above, as a user would put it in the chart (in-cluster: no kubeconfig, no connect).
    writeFileSync(
      values,
      `server: { history: { kind: kubernetes } }
jobs:
  - name: qa
    target:
      kind: cnpg
      namespace: ${h.namespace}
      clusterName: qa-db
      values:
        instances: 1
        imageName: ghcr.io/cloudnative-pg/postgresql:15.8-1
        storage: { size: 1Gi }
        bootstrapDB: { pg_basebackup: { source: source-db, database: app, owner: app, secret: { name: app-secret } } }
        externalClusters:
          - name: source-db
            connectionParameters: { host: 127.0.0.1, port: "5432", user: replicator, dbname: postgres, sslmode: disable }
            password: { name: source-replication, key: password }
  - name: bg
    strategy: { kind: blueGreen, keepPrevious: 1h, serviceName: bg-stable }
    target:
      kind: cnpg
      namespace: ${h.namespace}
      clusterName: bg-db
      values:
        instances: 1
        imageName: ghcr.io/cloudnative-pg/postgresql:15.8-1
        storage: { size: 1Gi }
        bootstrapDB: { pg_basebackup: { source: source-db, database: app, owner: app, secret: { name: app-secret } } }
        externalClusters:
          - name: source-db
            connectionParameters: { host: 127.0.0.1, port: "5432", user: replicator, dbname: postgres, sslmode: disable }
            password: { name: source-replication, key: password }
`,
    );
    const { manifests } = await render('db-refresher', { valuesFiles: [values], name: 'dbr', namespace: releaseNs });
    expect(manifests.filter((m) => m.kind.startsWith('Cluster'))).toEqual([]);
    roles = manifests
      .filter((m) => m.kind === 'Role')
      .map((m) => ({ namespace: m.namespace ?? '', name: m.name, rules: (m.object as unknown as { rules: PolicyRule[] }).rules }));
    expect(roles.map((r) => `${r.namespace}/${r.name}`).sort()).toEqual(
      [`${h.namespace}/dbr-db-refresher-target`, `${releaseNs}/dbr-db-refresher-history`].sort(),
    );
    decisions = await rbacCheck({
      namespaced: roles.map(({ namespace, rules }) => ({ namespace, rules })),
      cluster: [],
      requests,
    });
  });

  it('the runs went through every phase that talks to Kubernetes', () => {
    const [first, second, third] = runs;
    for (const run of [first, second]) {
      for (const phase of ['preflight', 'teardown', 'clone', 'start']) {
        expect(run?.phases.find((p) => p.name === phase)?.status, `${phase}: ${JSON.stringify(run?.error)}`).toBe('succeeded');
      }
    }
    expect(second?.phases.find((p) => p.name === 'teardown')?.detail).toMatchObject({ deleted: true });
    expect(third?.error?.phase).toBe('start');
    expect(third?.error?.message).toContain('unrecoverable');
    expect(decisions.length).toBeGreaterThan(30);
  });

  it('the blueGreen runs created the stable Service, swapped it, rolled back, and deleted a previous Cluster', () => {
    const [first, second, rollback, last] = bgRuns;
    for (const run of [first, second, rollback, last]) expect(run?.status, JSON.stringify(run?.error)).toBe('succeeded');
    expect(first?.phases.find((p) => p.name === 'swap')?.detail).toMatchObject({ selects: 'bg-db-a', created: true });
    expect(second?.phases.find((p) => p.name === 'swap')?.detail).toMatchObject({ selects: 'bg-db-b', updated: true });
    expect(rollback?.phases.find((p) => p.name === 'rollback')?.detail).toMatchObject({ to: 'bg-db-a' });
    expect(last?.phases.find((p) => p.name === 'cleanup-previous')?.detail).toMatchObject({ deleted: 'bg-db-a' });
    const bg = decisions.filter((d) => d.resource === 'services' && d.name === 'bg-stable').map((d) => d.verb);
    expect(new Set(bg)).toEqual(new Set(['get', 'update']));
    expect(decisions.some((d) => d.resource === 'services' && d.verb === 'create')).toBe(true);
    expect(decisions.some((d) => d.resource === 'resourcequotas' && d.verb === 'list')).toBe(true);
    expect(decisions.some((d) => d.resource === 'clusters' && d.name === 'bg-db-a' && d.verb === 'patch')).toBe(true);
  });

  it('every request the service made is allowed by the rendered Roles', () => {
    const denied = decisions
      .filter((d) => !d.allowed)
      .map(
        (d) =>
          `${d.verb} ${d.apiGroup}/${d.resource}${d.subresource ? `/${d.subresource}` : ''} ns=${d.namespace} name=${d.name ?? ''}  (${d.method} ${d.url})`,
      );
    expect(denied).toEqual([]);
    expect(decisions.every((d) => d.resourceRequest)).toBe(true);
  });

  it('every verb the Roles grant was used, in the namespace it is granted in', () => {
    const used = new Set(
      decisions.map((d) => `${d.namespace}|${d.apiGroup}|${d.resource}${d.subresource ? `/${d.subresource}` : ''}|${d.verb}`),
    );
    const unused: string[] = [];
    for (const role of roles) {
      for (const rule of role.rules) {
        for (const group of rule.apiGroups ?? []) {
          for (const resource of rule.resources ?? []) {
            for (const verb of rule.verbs) {
              const key = `${role.namespace}|${group}|${resource}|${verb}`;
              if (!used.has(key)) unused.push(key);
            }
          }
        }
      }
    }
    expect(unused).toEqual([]);
  });

  it('a Cluster of another name, a Secret write or another namespace would be denied', async () => {
    const probe = await rbacCheck({
      namespaced: roles.map(({ namespace, rules }) => ({ namespace, rules })),
      cluster: [],
      requests: [
        { method: 'DELETE', url: `/apis/postgresql.cnpg.io/v1/namespaces/${h.namespace}/clusters/production-db` },
        { method: 'PATCH', url: `/apis/postgresql.cnpg.io/v1/namespaces/${h.namespace}/clusters/other` },
        { method: 'PUT', url: `/api/v1/namespaces/${h.namespace}/secrets/app-secret` },
        { method: 'GET', url: '/api/v1/namespaces/production/secrets/production-db-replication' },
        { method: 'GET', url: '/api/v1/namespaces/production' },
        { method: 'PUT', url: `/api/v1/namespaces/${releaseNs}/configmaps/dbr-db-refresher` },
        { method: 'GET', url: `/api/v1/namespaces/${h.namespace}/pods/qa-db-1` },
        { method: 'POST', url: `/api/v1/namespaces/${h.namespace}/pods/qa-db-1/exec` },
        // blueGreen: only the configured Service may be changed, and never deleted or patched.
        { method: 'PUT', url: `/api/v1/namespaces/${h.namespace}/services/qa-db-rw` },
        { method: 'DELETE', url: `/api/v1/namespaces/${h.namespace}/services/bg-stable` },
        { method: 'PATCH', url: `/api/v1/namespaces/${h.namespace}/services/bg-stable` },
        { method: 'DELETE', url: `/apis/postgresql.cnpg.io/v1/namespaces/${h.namespace}/clusters/bg-db-c` },
      ],
    });
    expect(probe.map((d) => d.allowed)).toEqual(Array(12).fill(false));
  });
});
