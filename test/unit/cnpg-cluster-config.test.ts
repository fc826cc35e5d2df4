import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildClusterSpecSchema, OUTPUT } from '../../scripts/cnpg-cluster-schema.js';
import { parseConfig } from '../../src/config/load.js';
import type { CnpgTargetConfig } from '../../src/config/types.js';
import { ConfigError } from '../../src/errors.js';
import { renderCluster } from '../../src/targets/cnpg/manifests.js';

/** `target.cluster`: a partial Cluster spec, checked against CNPG 1.30's CRD at load time. */

const VALUES = `      values:
        instances: 1
        imageName: ghcr.io/cloudnative-pg/postgresql:16.2-3
        storage: { size: 10Gi }
        bootstrapDB: { pg_basebackup: { source: prod, database: app, owner: app, secret: { name: app-secret } } }
        externalClusters:
          - name: prod
            connectionParameters: { host: prod-rw.production.svc, user: streaming_replica }
            password: { name: prod-replica, key: password }
`;

function load(cluster: string, values = VALUES): CnpgTargetConfig {
  const config = parseConfig(
    `jobs:
  - name: qa
    target:
      kind: cnpg
      namespace: qa
      clusterName: qa-db
${values}${cluster}`,
    { source: 'test.yaml', baseDir: '/tmp', env: {} },
  );
  const target = config.jobs[0]?.target;
  if (target?.kind !== 'cnpg') throw new Error('expected a cnpg target');
  return target;
}

function problems(cluster: string, values = VALUES): readonly string[] {
  try {
    load(cluster, values);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

const SHAPED = `      cluster:
        instances: 2
        resources: { requests: { cpu: 500m, memory: 1Gi }, limits: { memory: 2Gi } }
        postgresql:
          parameters: { work_mem: 64MB, max_connections: "200" }
        affinity: { enablePodAntiAffinity: false, nodeSelector: { pool: qa } }
        monitoring: { enablePodMonitor: true }
        managed:
          roles:
            - { name: tester, login: true, passwordSecret: { name: tester-secret }, inRoles: [pg_read_all_data] }
        storage: { storageClass: fast }
`;

describe('target.cluster', () => {
  it('accepts a sized, tuned, scheduled, monitored Cluster with test roles, and merges it over the rendered spec', () => {
    const target = load(SHAPED);
    const rendered = renderCluster(target.values, target.cluster);
    expect(rendered.spec).toMatchObject({
      instances: 2,
      resources: { requests: { cpu: '500m', memory: '1Gi' } },
      postgresql: { parameters: { work_mem: '64MB', max_connections: '200' } },
      managed: { roles: [{ name: 'tester', login: true }] },
      // Objects merge key by key: the values' size stays beside the new storage class.
      storage: { size: '10Gi', storageClass: 'fast' },
      bootstrap: { pg_basebackup: { source: 'prod', owner: 'app' } },
    });
    expect(rendered.instances).toBe(2);
  });

  it.each([
    [
      'bootstrap: { initdb: {} }',
      'jobs[0].target.cluster.bootstrap: may not be set in cluster: the copy is always bootstrapped with pg_basebackup',
    ],
    [
      'externalClusters: []',
      "jobs[0].target.cluster.externalClusters: may not be set in cluster: the source is the values' externalClusters entry",
    ],
    [
      'replica: { enabled: true, source: prod }',
      'jobs[0].target.cluster.replica: may not be set in cluster: a replica cluster keeps following its source',
    ],
  ])('refuses %s, saying why', (field, message) => {
    expect(problems(`      cluster: { ${field} }\n`).join('\n')).toContain(message);
  });

  it('reports unknown fields and wrong types with their paths, as the API server would with fieldValidation=Strict', () => {
    const found = problems(`      cluster:
        resourcess: {}
        postgresql: { parameters: { work_mem: 64 }, pg_hbaa: [] }
        instances: two
        primaryUpdateStrategy: sometimes
        managed: { roles: [{ login: true }] }
`);
    expect(found).toEqual(
      expect.arrayContaining([
        'jobs[0].target.cluster.resourcess: unknown field "resourcess" in CloudNativePG\'s Cluster spec (CNPG 1.30); check its spelling against `db-refresher schema`',
        'jobs[0].target.cluster.postgresql.parameters.work_mem: must be a string, not an integer',
        expect.stringContaining('jobs[0].target.cluster.postgresql.pg_hbaa: unknown field "pg_hbaa"'),
        'jobs[0].target.cluster.instances: must be an integer, not a string',
        'jobs[0].target.cluster.primaryUpdateStrategy: "sometimes" is not one of "unsupervised", "supervised"',
        'jobs[0].target.cluster.managed.roles[0].name: is required',
      ]),
    );
  });

  it("refuses a superuserSecret that cannot work: the owner's Secret, or one CloudNativePG generates and deletes", () => {
    expect(problems('      cluster: { enableSuperuserAccess: true, superuserSecret: { name: app-secret } }\n').join()).toContain(
      "CloudNativePG needs username postgres in the superuser Secret and would fail with \"wrong username 'app' in secret, expected 'postgres'\"",
    );
    expect(problems('      cluster: { superuserSecret: { name: qa-db-superuser } }\n').join()).toContain(
      'is a Secret CloudNativePG generates for Cluster qa-db and deletes with it at every refresh',
    );
    expect(load('      cluster: { enableSuperuserAccess: true, superuserSecret: { name: qa-postgres } }\n').cluster).toMatchObject({
      superuserSecret: { name: 'qa-postgres' },
    });
  });

  it('points a Cluster field written among the values to target.cluster', () => {
    const values = VALUES.replace('        instances: 1\n', '        instances: 1\n        resources: { requests: { cpu: 1 } }\n');
    expect(problems('', values)).toContain(
      'jobs[0].target.values.resources: unknown key "resources" in the cnpg-database values; it is a CloudNativePG Cluster field: put it under jobs[0].target.cluster',
    );
  });

  it('checks inline values in the same pass as the rest of the file', () => {
    const found = problems('      cluster: { bogus: 1 }\n', VALUES.replace('storage: { size: 10Gi }', 'storage: { size: lots }'));
    expect(found.some((p) => p.startsWith('jobs[0].target.values.storage.size'))).toBe(true);
    expect(found.some((p) => p.startsWith('jobs[0].target.cluster.bogus'))).toBe(true);
  });
});

describe('the Cluster spec schema', () => {
  it('is generated from the CRD in test/fixtures/cnpg, unchanged since (npx tsx scripts/cnpg-cluster-schema.ts)', () => {
    expect(JSON.parse(readFileSync(OUTPUT, 'utf8'))).toEqual(JSON.parse(JSON.stringify(buildClusterSpecSchema())));
  });
});
