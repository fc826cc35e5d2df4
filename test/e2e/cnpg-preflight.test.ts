/**
 * The CNPG target's safety rails and preflight, on the real test API server
 * with a real PostgreSQL source. Every refusal must leave the existing Cluster
 * in place: nothing is deleted on a path that has not passed the checks.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RunRecord } from '../../src/run/record.js';
import { CnpgHarness } from '../support/cnpg-harness.js';

let h: CnpgHarness;

beforeAll(async () => {
  h = await CnpgHarness.start(inject('kubeconfigPath'), 'cnpg-pre');
});
afterAll(async () => {
  await h?.destroy();
});

async function foreignCluster(name: string, labels: Record<string, string> = {}, annotations: Record<string, string> = {}) {
  await h.custom.createNamespacedCustomObject({
    group: 'postgresql.cnpg.io',
    version: 'v1',
    namespace: h.namespace,
    plural: 'clusters',
    body: {
      apiVersion: 'postgresql.cnpg.io/v1',
      kind: 'Cluster',
      metadata: { name, labels, annotations },
      spec: { instances: 1, storage: { size: '1Gi' } },
    },
  });
}

function expectRefusedInPreflight(run: RunRecord, failureClass: string): void {
  expect(run.status).toBe('failed');
  expect(run.error?.phase).toBe('preflight');
  expect(run.error?.class).toBe(failureClass);
  expect(run.phases.find((p) => p.name === 'teardown')?.status).toBe('skipped');
}

describe('cnpg safety rails', () => {
  it('refuses a Cluster db-refresher did not create, keeps it, and says how to adopt it', async () => {
    await foreignCluster('handmade', { 'app.kubernetes.io/managed-by': 'Helm' });
    const run = await h.local.run(h.config(h.jobYaml({ clusterName: 'handmade' })));
    expectRefusedInPreflight(run, 'unsafe-target');
    expect(run.error?.message).toContain('was not created by db-refresher');
    expect(run.error?.message).toContain('jobs[0].target.adopt: true');
    expect(await h.clusterExists('handmade')).toBe(true);
  });

  it("refuses another job's Cluster even with adopt", async () => {
    await foreignCluster('others', { 'app.kubernetes.io/managed-by': 'db-refresher' }, { 'db-refresher.io/job': 'reporting' });
    const run = await h.local.run(h.config(h.jobYaml({ clusterName: 'others', target: '      adopt: true\n' })));
    expectRefusedInPreflight(run, 'unsafe-target');
    expect(run.error?.message).toContain('belongs to db-refresher job "reporting"');
    expect(await h.clusterExists('others')).toBe(true);
  });

  it('refuses a Cluster a GitOps controller reconciles, even with adopt, and keeps it', async () => {
    await foreignCluster('from-git', {
      'kustomize.toolkit.fluxcd.io/name': 'databases',
      'kustomize.toolkit.fluxcd.io/namespace': 'flux-system',
    });
    const run = await h.local.run(h.config(h.jobYaml({ clusterName: 'from-git', target: '      adopt: true\n' })));
    expectRefusedInPreflight(run, 'unsafe-target');
    expect(run.error?.message).toContain('is managed by Flux Kustomization "databases"');
    expect(run.error?.message).toContain(`kubectl label cluster from-git -n ${h.namespace} kustomize.toolkit.fluxcd.io/name-`);
    expect(await h.clusterExists('from-git')).toBe(true);
  });

  it('refuses a protected name and a namespace outside the allowlist', async () => {
    const protectedRun = await h.local.run(h.config(h.jobYaml({ clusterName: 'prod-mirror' })));
    expectRefusedInPreflight(protectedRun, 'unsafe-target');
    expect(protectedRun.error?.message).toContain('protected pattern /prod/i');
    const outside = await h.local.run(h.config(h.jobYaml({ target: '      allowedNamespaces: [qa-only]\n' })));
    expectRefusedInPreflight(outside, 'unsafe-target');
    expect(outside.error?.message).toContain('is not in this job');
  });

  it('refuses a source that is the target itself', async () => {
    const yaml = h.jobYaml({}).replace('host: 127.0.0.1, port:', `host: qa-db-rw.${'NS'}.svc, port:`).replace('NS', h.namespace);
    const config = h.config(
      yaml.replace('connectionParameters: { host: 127.0.0.1', `connectionParameters: { host: qa-db-rw.${h.namespace}.svc`),
    );
    const run = await h.local.run(config);
    expect(run.status).toBe('failed');
    expect(run.error?.phase).toBe('preflight');
    expect(run.preflight?.find((c) => c.name === 'target may be replaced')?.message).toContain("is the target Cluster's own Service");
  });

  it("refuses a source whose major version differs from the image tag, in the guide's words", async () => {
    const run = await h.local.run(h.config(h.jobYaml({ imageTag: '16.2-3' })));
    expectRefusedInPreflight(run, 'version-mismatch');
    expect(run.error?.message).toContain(
      'the source runs PostgreSQL 15 but imageName ghcr.io/cloudnative-pg/postgresql:16.2-3 is PostgreSQL 16',
    );
    expect(run.error?.hint).toContain('source and target must have same PostgreSQL version');
  });

  it('refuses when the source does not fit storage.size', async () => {
    const config = h.config(h.jobYaml({}).replace('storage: { size: 1Gi }', 'storage: { size: 1Mi }'));
    const run = await h.local.run(config);
    expectRefusedInPreflight(run, 'insufficient-space');
    expect(run.error?.message).toContain('raise storage.size');
  });

  it('refuses when a referenced Secret or key is missing', async () => {
    const missing = h.config(
      h.jobYaml({}).replace('password: { name: source-replication, key: password }', 'password: { name: no-such-secret, key: password }'),
    );
    const run = await h.local.run(missing);
    expectRefusedInPreflight(run, 'authentication-failed');
    expect(run.error?.message).toContain(`Secret ${h.namespace}/no-such-secret does not exist`);
    const wrongKey = h.config(h.jobYaml({}).replace('key: password }\n', 'key: pass }\n'));
    const keyRun = await h.local.run(wrongKey);
    expect(keyRun.error?.message).toContain('has no key "pass" (it has: password)');
  });

  it('refuses an owner secret whose username is not the owner, as CNPG would fail later', async () => {
    await h.putSecret('wrong-user', { username: 'someone', password: 'x' }, 'kubernetes.io/basic-auth');
    const run = await h.local.run(h.config(h.jobYaml({}).replace('secret: { name: app-secret }', 'secret: { name: wrong-user }')));
    expectRefusedInPreflight(run, 'authentication-failed');
    expect(run.error?.message).toContain("wrong username 'someone' in secret, expected 'app'");
  });

  it('refuses a missing namespace', async () => {
    const config = h.config(h.jobYaml({}).replaceAll(`namespace: ${h.namespace}`, 'namespace: no-such-namespace'));
    const run = await h.local.run(config);
    expect(run.status).toBe('failed');
    expect(run.error?.phase).toBe('preflight');
    expect(run.preflight?.find((c) => c.name === 'target namespace exists')?.message).toContain(
      'namespace no-such-namespace does not exist',
    );
  });

  it('refuses orphaned volumes CNPG would adopt instead of cloning', async () => {
    await h.core.createNamespacedPersistentVolumeClaim({
      namespace: h.namespace,
      body: {
        metadata: { name: 'orphaned-1', labels: { 'cnpg.io/cluster': 'orphaned' }, annotations: { 'cnpg.io/nodeSerial': '1' } },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
      },
    });
    const run = await h.local.run(h.config(h.jobYaml({ clusterName: 'orphaned' })));
    expectRefusedInPreflight(run, 'unsafe-target');
    expect(run.error?.message).toContain('would adopt it and reuse its old data instead of cloning');
  });

  it('a wrong replication password in the Secret is caught before anything is deleted', async () => {
    await h.putSecret('bad-replication', { password: 'wrong' });
    const run = await h.local.run(h.config(h.jobYaml({}).replace('name: source-replication', 'name: bad-replication')));
    expectRefusedInPreflight(run, 'authentication-failed');
    expect(run.error?.message).toContain('password authentication failed');
  });
});
