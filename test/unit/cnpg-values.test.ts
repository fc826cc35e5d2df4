import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { CnpgTargetConfig } from '../../src/config/types.js';
import { ConfigError } from '../../src/errors.js';
import { buildCluster, buildClusterSpec, imageMajorVersion, quantityToBytes, renderCluster } from '../../src/targets/cnpg/manifests.js';

const guide = path.resolve(import.meta.dirname, '../fixtures/guide');
const EXAMPLES = ['example-1-same-namespace.yaml', 'example-2-external-postgres.yaml', 'example-3-weekly-test-refresh.yaml'];

function cnpgJob(targetYaml: string, jobExtra = '') {
  const config = parseConfig(
    `jobs:
  - name: qa
${jobExtra}    target:
      kind: cnpg
      namespace: qa
      clusterName: qa-db
${targetYaml}`,
    { source: 'test.yaml', baseDir: guide, env: {} },
  );
  const job = config.jobs[0];
  if (job?.target.kind !== 'cnpg') throw new Error('expected a cnpg job');
  return { job, target: job.target as CnpgTargetConfig };
}

function problems(targetYaml: string): readonly string[] {
  try {
    cnpgJob(targetYaml);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe("the guide's complete examples as valuesFile", () => {
  for (const file of EXAMPLES) {
    it(`${file} loads unchanged and derives the source from its externalClusters entry`, () => {
      const { job, target } = cnpgJob(`      valuesFile: ${file}\n`);
      expect(target.valuesFile).toBe(path.join(guide, file));
      const external = target.values.externalClusters.find((c) => c.name === target.values.bootstrapDB.pg_basebackup.source);
      expect(job.source.host).toBe(external?.connectionParameters.host);
      expect(job.source.user).toBe('streaming_replica');
      expect(job.source.password).toBeUndefined();
    });
  }

  it('example 1 renders the TLS source, the owner secret, and no backup section', () => {
    const { target } = cnpgJob(`      valuesFile: ${EXAMPLES[0]}\n`);
    const spec = buildClusterSpec(target.values);
    expect(spec).toEqual({
      instances: 3,
      imageName: 'ghcr.io/cloudnative-pg/postgresql:16.2-3',
      storage: { size: '10Gi', storageClass: 'ceph-blockpool-ssd-erasurecoded' },
      bootstrap: { pg_basebackup: { source: 'production-db', database: 'app', owner: 'app', secret: { name: 'app-secret' } } },
      externalClusters: [
        {
          name: 'production-db',
          connectionParameters: {
            host: 'cluster-production-db-rw.default.svc.cluster.local',
            user: 'streaming_replica',
            sslmode: 'verify-full',
          },
          sslKey: { name: 'production-db-replication', key: 'tls.key' },
          sslCert: { name: 'production-db-replication', key: 'tls.crt' },
          sslRootCert: { name: 'production-db-ca', key: 'ca.crt' },
        },
      ],
    });
  });

  it('example 2 keeps the quoted port as a string and takes the password from its secret', () => {
    const { job, target } = cnpgJob(`      valuesFile: ${EXAMPLES[1]}\n`);
    const spec = buildClusterSpec(target.values) as {
      bootstrap: unknown;
      externalClusters: Array<{ connectionParameters: Record<string, string>; password?: unknown }>;
    };
    expect(spec.externalClusters[0]?.connectionParameters.port).toBe('5432');
    expect(spec.externalClusters[0]?.password).toEqual({ name: 'external-postgres-replication', key: 'password' });
    expect(job.source).toMatchObject({ host: 'postgres.example.com', port: 5432, dbname: 'postgres' });
    expect(spec.bootstrap).toEqual({ pg_basebackup: { source: 'external-postgres', database: 'myapp', owner: 'myapp' } });
  });

  it('the same values inline give the same Cluster as the file', () => {
    const fromFile = cnpgJob(`      valuesFile: ${EXAMPLES[2]}\n`).target.values;
    const inline = cnpgJob(`      values:
        instances: 1
        imageName: ghcr.io/cloudnative-pg/postgresql:16.2-3
        storage: { size: 20Gi, storageClass: standard }
        bootstrapDB: { pg_basebackup: { source: production-db, database: app, owner: app, secret: { name: test-db-secret } } }
        externalClusters:
          - name: production-db
            connectionParameters: { host: cluster-production-db-rw.production.svc.cluster.local, user: streaming_replica, sslmode: verify-full }
            sslKey: { name: production-db-replication, key: tls.key }
            sslCert: { name: production-db-replication, key: tls.crt }
            sslRootCert: { name: production-db-ca, key: ca.crt }
        backup: { enabled: false }
`).target.values;
    expect(buildClusterSpec(inline)).toEqual(buildClusterSpec(fromFile));
  });
});

describe('cnpg values mistakes are config errors with their path', () => {
  const base = (values: string) => `      values:\n${values}`;
  it.each([
    [
      base(`        storage: { size: 1Gi }
        bootstrapDB: { pg_basebackup: { source: prod } }
        externalClusters: [{ name: production, connectionParameters: { host: db, user: r } }]
`),
      'jobs[0].target.values.bootstrapDB.pg_basebackup.source: External cluster prod not found',
    ],
    [
      base(`        bootstrapDB: { pg_basebackup: { source: p } }
        externalClusters: [{ name: p, connectionParameters: { host: db, user: r } }]
`),
      'jobs[0].target.values.storage: is required',
    ],
    [
      base(`        imageName: ghcr.io/cloudnative-pg/postgresql:latest
        storage: { size: 1Gi }
        bootstrapDB: { pg_basebackup: { source: p } }
        externalClusters: [{ name: p, connectionParameters: { host: db, user: r } }]
`),
      "Can't use 'latest' as image tag",
    ],
    [
      base(`        storage: { size: 1Gi }
        bootstrapDB: { pg_basebackup: { source: p } }
        externalClusters: [{ name: p, connectionParameters: { host: db, user: r } }, { name: p, connectionParameters: { host: db2, user: r } }]
`),
      'the list of external clusters contains duplicate values',
    ],
    [
      base(`        storage: { size: 1Gi, sizee: 2Gi }
        bootstrapDB: { pg_basebackup: { source: p } }
        externalClusters: [{ name: p, connectionParameters: { host: db, user: r } }]
`),
      'jobs[0].target.values.storage.sizee: unknown key "sizee"',
    ],
    ['      valuesFile: no-such-file.yaml\n', 'jobs[0].target.valuesFile: '],
    ['      adopt: true\n', 'jobs[0].target.values: give the cluster values either inline'],
  ])('%#: %s', (yaml, expected) => {
    const found = problems(yaml);
    expect(
      found.some((p) => p.includes(expected)),
      found.join('\n'),
    ).toBe(true);
  });

  it('rejects a Cluster name CloudNativePG would reject', () => {
    expect(() =>
      parseConfig(`jobs:\n  - name: qa\n    target: { kind: cnpg, namespace: qa, clusterName: 1-bad-name, valuesFile: ${EXAMPLES[1]} }\n`, {
        source: 't',
        baseDir: guide,
        env: {},
      }),
    ).toThrow(/not a valid Cluster name/);
  });
});

describe('manifest helpers', () => {
  it("labels and annotates db-refresher's Clusters", () => {
    const { target } = cnpgJob(`      valuesFile: ${EXAMPLES[1]}\n`);
    const cluster = buildCluster({
      name: 'qa-db',
      namespace: 'qa',
      spec: renderCluster(target.values).spec,
      metadata: { job: 'qa', runId: 'r1', refreshedAt: '2026-11-24T00:00:00Z', sourceSnapshotAt: '2026-11-23T23:59:00Z' },
    });
    expect(cluster.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'db-refresher', 'db-refresher.io/job': 'qa' });
    expect(cluster.metadata.annotations).toMatchObject({
      'db-refresher.io/job': 'qa',
      'db-refresher.io/run-id': 'r1',
      'db-refresher.io/source-snapshot-at': '2026-11-23T23:59:00Z',
    });
  });

  it('reads the major version from an image tag', () => {
    expect(imageMajorVersion('ghcr.io/cloudnative-pg/postgresql:16.2-3')).toBe(16);
    expect(imageMajorVersion('registry:5000/postgresql:15')).toBe(15);
    expect(imageMajorVersion('postgresql')).toBeUndefined();
  });

  it('converts quantities', () => {
    expect(quantityToBytes('10Gi')).toBe(10 * 2 ** 30);
    expect(quantityToBytes('500M')).toBe(500e6);
    expect(quantityToBytes('lots')).toBeUndefined();
  });
});
