/**
 * Every Cluster db-refresher renders is judged by the real Cluster CRD on a
 * real API server, with strict field validation: schema, CEL rules, unknown
 * fields. The guide's three complete examples must all be accepted.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { ApiException, CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { buildCluster, CLUSTER_GROUP, CLUSTER_PLURAL, CLUSTER_VERSION, renderCluster } from '../../src/targets/cnpg/manifests.js';

const guide = path.resolve(import.meta.dirname, '../fixtures/guide');
const kc = new KubeConfig();
kc.loadFromFile(inject('kubeconfigPath'));
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
const ns = `manifests-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  await core.createNamespace({ body: { metadata: { name: ns } } });
});
afterAll(async () => {
  await core.deleteNamespace({ name: ns });
});

function valuesOf(file: string) {
  const config = parseConfig(
    `jobs:\n  - name: qa\n    target: { kind: cnpg, namespace: ${ns}, clusterName: qa-db, valuesFile: ${file} }\n`,
    { source: 't', baseDir: guide, env: {} },
  );
  const target = config.jobs[0]?.target;
  if (target?.kind !== 'cnpg') throw new Error('not cnpg');
  return target.values;
}

function create(body: object) {
  return custom.createNamespacedCustomObject({
    group: CLUSTER_GROUP,
    version: CLUSTER_VERSION,
    namespace: ns,
    plural: CLUSTER_PLURAL,
    body,
    fieldValidation: 'Strict',
  });
}

describe('rendered Clusters on the real CRD', () => {
  for (const [i, file] of [
    'example-1-same-namespace.yaml',
    'example-2-external-postgres.yaml',
    'example-3-weekly-test-refresh.yaml',
  ].entries()) {
    it(`${file} is accepted with fieldValidation=Strict and stored as rendered`, async () => {
      const name = `guide-example-${i + 1}`;
      const manifest = buildCluster({
        name,
        namespace: ns,
        spec: renderCluster(valuesOf(file)).spec,
        metadata: { job: 'qa', runId: 'run-1', refreshedAt: new Date().toISOString() },
      });
      const created = (await create(manifest)) as { spec: Record<string, unknown>; metadata: { labels: Record<string, string> } };
      // Nothing was pruned: every rendered field survived the schema.
      expect(created.spec).toMatchObject(manifest.spec);
      expect(created.metadata.labels['app.kubernetes.io/managed-by']).toBe('db-refresher');
    });
  }

  it('a field the CRD does not know is refused, so a rendering mistake cannot slip through', async () => {
    const manifest = buildCluster({ name: 'bogus', namespace: ns, spec: renderCluster(valuesOf('example-2-external-postgres.yaml')).spec });
    const body = { ...manifest, spec: { ...manifest.spec, bootstrapDB: {} } };
    const error = await create(body).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiException);
    expect((error as ApiException<string>).code).toBe(400);
    expect(String((error as ApiException<string>).body)).toContain(String.raw`unknown field \"spec.bootstrapDB\"`);
  });
});
