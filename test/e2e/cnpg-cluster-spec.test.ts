/**
 * `target.cluster` judged three ways, which must agree: db-refresher's own
 * load-time check, the JSON Schema `db-refresher schema` exports (what an
 * editor validates against), and the real Cluster CRD on the test API server
 * with fieldValidation=Strict (schema, CEL rules, unknown fields).
 */
import { randomBytes } from 'node:crypto';
import { ApiException, CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { parseConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';
import { buildCluster, CLUSTER_GROUP, CLUSTER_PLURAL, CLUSTER_VERSION, renderCluster } from '../../src/targets/cnpg/manifests.js';

const kc = new KubeConfig();
kc.loadFromFile(inject('kubeconfigPath'));
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
const ns = `cluster-spec-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  await core.createNamespace({ body: { metadata: { name: ns } } });
});
afterAll(async () => {
  await core.deleteNamespace({ name: ns });
});

const VALUES = {
  instances: 1,
  imageName: 'ghcr.io/cloudnative-pg/postgresql:16.2-3',
  storage: { size: '10Gi' },
  bootstrapDB: { pg_basebackup: { source: 'prod', database: 'app', owner: 'app', secret: { name: 'app-secret' } } },
  externalClusters: [
    {
      name: 'prod',
      connectionParameters: { host: 'prod-rw.production.svc', user: 'streaming_replica' },
      password: { name: 'prod-replica', key: 'password' },
    },
  ],
};

/** What a QA team asks for: sized, tuned, scheduled, monitored, with declarative test roles. */
const SHAPED = {
  instances: 2,
  resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '2Gi' } },
  postgresql: { parameters: { work_mem: '64MB', max_connections: '200' }, pg_hba: ['host all tester all scram-sha-256'] },
  affinity: { enablePodAntiAffinity: false, nodeSelector: { pool: 'qa' }, tolerations: [{ key: 'qa', operator: 'Exists' }] },
  monitoring: { enablePodMonitor: true },
  managed: { roles: [{ name: 'tester', login: true, passwordSecret: { name: 'tester-secret' }, inRoles: ['pg_read_all_data'] }] },
  storage: { storageClass: 'fast' },
  enableSuperuserAccess: true,
  superuserSecret: { name: 'qa-postgres' },
};

const exported = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
const ajv = new Ajv2020({ strict: false, allErrors: true });
const validateConfig = ajv.compile(exported);

function configDoc(cluster: unknown) {
  return { jobs: [{ name: 'qa', target: { kind: 'cnpg', namespace: ns, clusterName: 'qa-db', values: VALUES, cluster } }] };
}

/** db-refresher's load-time verdict: the problems, or none. */
function loadProblems(cluster: unknown): readonly string[] {
  try {
    parseConfig(JSON.stringify(configDoc(cluster)), { source: 't', baseDir: '/tmp', env: {} });
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
}

async function serverVerdict(cluster: Record<string, unknown>, name: string): Promise<{ code: number; body: string } | 'accepted'> {
  const spec = renderCluster(VALUES as never, cluster).spec;
  try {
    await custom.createNamespacedCustomObject({
      group: CLUSTER_GROUP,
      version: CLUSTER_VERSION,
      namespace: ns,
      plural: CLUSTER_PLURAL,
      body: buildCluster({ name, namespace: ns, spec }),
      fieldValidation: 'Strict',
      dryRun: 'All',
    });
    return 'accepted';
  } catch (error) {
    if (!(error instanceof ApiException)) throw error;
    return { code: error.code, body: String(error.body) };
  }
}

describe('target.cluster, three judges', () => {
  it('a sized, tuned, scheduled, monitored Cluster with test roles passes all three, and the server keeps every field', async () => {
    expect(loadProblems(SHAPED)).toEqual([]);
    expect(validateConfig(configDoc(SHAPED)), JSON.stringify(validateConfig.errors)).toBe(true);
    const spec = renderCluster(VALUES as never, SHAPED).spec;
    const created = (await custom.createNamespacedCustomObject({
      group: CLUSTER_GROUP,
      version: CLUSTER_VERSION,
      namespace: ns,
      plural: CLUSTER_PLURAL,
      body: buildCluster({ name: 'shaped', namespace: ns, spec }),
      fieldValidation: 'Strict',
    })) as { spec: Record<string, unknown> };
    expect(created.spec).toMatchObject(spec);
  });

  it.each([
    ['an unknown field', { resourcess: {} }, 'resourcess'],
    ['a misspelt nested field', { postgresql: { pg_hbaa: [] } }, 'pg_hbaa'],
    ['a number where the CRD wants a string', { postgresql: { parameters: { work_mem: 64 } } }, 'work_mem'],
    ['a value outside the enum', { primaryUpdateStrategy: 'sometimes' }, 'primaryUpdateStrategy'],
    ['a role without a name', { managed: { roles: [{ login: true }] } }, 'name'],
  ])('%s is refused by all three', async (_what, cluster, field) => {
    expect(loadProblems(cluster).join('\n')).toContain(field);
    expect(validateConfig(configDoc(cluster))).toBe(false);
    const verdict = await serverVerdict(cluster, `bad-${randomBytes(2).toString('hex')}`);
    expect(verdict).not.toBe('accepted');
    expect(verdict === 'accepted' ? '' : verdict.body).toContain(field);
  });

  it.each([
    ['bootstrap', { bootstrap: { initdb: {} } }],
    ['externalClusters', { externalClusters: [{ name: 'x', connectionParameters: { host: 'x' } }] }],
    ['replica', { replica: { enabled: true, source: 'prod' } }],
  ])('%s is refused by db-refresher and by the exported schema (the CRD would take it)', (field, cluster) => {
    expect(loadProblems(cluster).join('\n')).toContain(`jobs[0].target.cluster.${field}: may not be set in cluster:`);
    expect(validateConfig(configDoc(cluster))).toBe(false);
  });

  it('a CEL rule only the API server checks: imageName with imageCatalogRef is accepted at load and refused at create', async () => {
    const cluster = { imageCatalogRef: { apiGroup: 'postgresql.cnpg.io', kind: 'ImageCatalog', name: 'pg', major: 16 } };
    expect(loadProblems(cluster)).toEqual([]);
    const verdict = await serverVerdict(cluster, 'cel');
    expect(verdict).toMatchObject({ code: 422 });
    expect(verdict === 'accepted' ? '' : verdict.body).toContain('imageName and imageCatalogRef are mutually exclusive');
  });
});
