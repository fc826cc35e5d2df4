/**
 * charts/cnpg-database, the chart the pg_basebackup guide installs, rendered by Helm's engine (Go
 * text/template + sprig, test/charts/render): for the guide's three complete examples it must render
 * the same Cluster spec as db-refresher's own renderer (buildClusterSpec), the real Cluster CRD must
 * accept it with fieldValidation=Strict, and values db-refresher refuses must make the chart fail too.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { buildClusterSpec } from '../../src/targets/cnpg/manifests.js';
import { buildRenderer, render, renderError } from '../charts/helpers.js';

const guide = path.resolve(import.meta.dirname, '../fixtures/guide');
const EXAMPLES = ['example-1-same-namespace.yaml', 'example-2-external-postgres.yaml', 'example-3-weekly-test-refresh.yaml'];

const kc = new KubeConfig();
kc.loadFromFile(inject('kubeconfigPath'));
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
const ns = `chart-cnpg-${randomBytes(3).toString('hex')}`;
let tmp: string;

beforeAll(async () => {
  await buildRenderer();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'chart-cnpg-'));
  await core.createNamespace({ body: { metadata: { name: ns } } });
}, 600_000);
afterAll(async () => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
});

/** db-refresher's reading of a values file: a cnpg job with valuesFile, through the real config loader. */
function refresherValues(file: string) {
  const config = parseConfig(
    `jobs:\n  - name: qa\n    target: { kind: cnpg, namespace: ${ns}, clusterName: cluster-target-db, valuesFile: ${JSON.stringify(file)} }\n`,
    { source: 'test.yaml', baseDir: guide, env: {} },
  );
  const target = config.jobs[0]?.target;
  if (target?.kind !== 'cnpg') throw new Error('not a cnpg job');
  return target.values;
}

function refresherProblems(file: string): readonly string[] {
  try {
    refresherValues(file);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

let counter = 0;
function valuesFile(text: string): string {
  counter += 1;
  const file = path.join(tmp, `values-${counter}.yaml`);
  writeFileSync(file, text);
  return file;
}

async function renderCluster(file: string, name = 'target-db', namespace = ns) {
  const out = await render('cnpg-database', { valuesFiles: [file], name, namespace });
  expect(out.manifests).toHaveLength(1);
  const [cluster] = out.manifests;
  if (!cluster) throw new Error('nothing rendered');
  return { cluster, notes: out.notes };
}

describe("cnpg-database renders what db-refresher renders for the guide's complete examples", () => {
  for (const example of EXAMPLES) {
    it(`${example}: the same spec, named cluster-<release>, accepted by the Cluster CRD with fieldValidation=Strict`, async () => {
      const file = path.join(guide, example);
      const { cluster, notes } = await renderCluster(file);
      expect(cluster.apiVersion).toBe('postgresql.cnpg.io/v1');
      expect(cluster.kind).toBe('Cluster');
      // The guide's commands: kubectl describe cluster cluster-target-db -n target-namespace.
      expect(cluster.name).toBe('cluster-target-db');
      expect(cluster.namespace).toBe(ns);
      expect(cluster.object.spec).toStrictEqual(buildClusterSpec(refresherValues(file)));
      expect(notes).toContain(`kubectl describe cluster cluster-target-db -n ${ns}`);

      const stored = (await custom.createNamespacedCustomObject({
        group: 'postgresql.cnpg.io',
        version: 'v1',
        namespace: ns,
        plural: 'clusters',
        body: cluster.object,
        dryRun: 'All',
        fieldValidation: 'Strict',
      })) as { spec: Record<string, unknown> };
      // Nothing was pruned or refused: every rendered field is in the stored object.
      expect(stored.spec).toMatchObject(cluster.object.spec as Record<string, unknown>);
    });
  }

  it('the defaults match db-refresher\'s: one instance, database "app", owner = database, no image (operator default), numbers as strings', async () => {
    const file = valuesFile(`storage: { size: 1Gi }
bootstrapDB: { pg_basebackup: { source: src } }
externalClusters:
  - name: src
    connectionParameters: { host: db.example.com, port: 5433, user: streaming_replica, connect_timeout: 10 }
    password: { name: src-replication, key: password }
`);
    const { cluster } = await renderCluster(file);
    const spec = buildClusterSpec(refresherValues(file));
    expect(cluster.object.spec).toStrictEqual(spec);
    expect(spec).toMatchObject({
      instances: 1,
      bootstrap: { pg_basebackup: { source: 'src', database: 'app', owner: 'app' } },
      externalClusters: [{ connectionParameters: { port: '5433', connect_timeout: '10' } }],
    });
    expect(spec).not.toHaveProperty('imageName');
  });

  it('a named database without an owner gets the database as owner in both', async () => {
    const file = valuesFile(`instances: 2
imageName: registry.example.com:5000/postgresql:15.8-1@sha256:${'a'.repeat(64)}
storage: { size: 500Mi, storageClass: fast }
bootstrapDB: { pg_basebackup: { source: src, database: shop, secret: { name: shop-owner } } }
externalClusters:
  - name: other
    connectionParameters: { host: other.example.com, user: r }
  - name: src
    connectionParameters: { host: db.example.com, user: streaming_replica, sslmode: verify-full }
    sslKey: { name: src-tls, key: tls.key }
    sslCert: { name: src-tls, key: tls.crt }
`);
    const { cluster } = await renderCluster(file);
    expect(cluster.object.spec).toStrictEqual(buildClusterSpec(refresherValues(file)));
    expect((cluster.object.spec as { bootstrap: unknown }).bootstrap).toEqual({
      pg_basebackup: { source: 'src', database: 'shop', owner: 'shop', secret: { name: 'shop-owner' } },
    });
  });
});

describe('values db-refresher refuses, the chart refuses too', () => {
  const base = {
    imageName: 'ghcr.io/cloudnative-pg/postgresql:16.2-3',
    storage: '{ size: 1Gi }',
    bootstrap: '{ pg_basebackup: { source: src } }',
    clusters: `
  - name: src
    connectionParameters: { host: db.example.com, user: streaming_replica }
    password: { name: src-replication, key: password }`,
  };
  const values = (o: Partial<typeof base> & { extra?: string } = {}) => {
    const v = { ...base, ...o };
    return `imageName: ${v.imageName}\nstorage: ${v.storage}\nbootstrapDB: ${v.bootstrap}\nexternalClusters:${v.clusters}\n${o.extra ?? ''}`;
  };
  const cases: Array<[string, string, RegExp, RegExp]> = [
    ['an unknown key', values({ extra: 'bogus: 1\n' }), /additional properties 'bogus' not allowed/, /unknown key "bogus"/],
    [
      'a latest tag',
      values({ imageName: 'ghcr.io/cloudnative-pg/postgresql:latest' }),
      /Can't use 'latest' as image tag/,
      /Can't use 'latest'/,
    ],
    ['no tag', values({ imageName: 'ghcr.io/cloudnative-pg/postgresql' }), /has no version tag/, /has no version tag/],
    ['a tag that is not a version', values({ imageName: 'postgres:bookworm' }), /invalid version tag "bookworm"/, /invalid version tag/],
    [
      'an unknown bootstrap source',
      values({ bootstrap: '{ pg_basebackup: { source: prod } }' }),
      /External cluster prod not found/,
      /External cluster prod not found/,
    ],
    [
      'duplicate external cluster names',
      values({ clusters: `${base.clusters}\n  - name: src\n    connectionParameters: { host: b, user: r }` }),
      /contains duplicate values \("src"\)/,
      /contains duplicate values/,
    ],
    [
      'sslCert without sslKey',
      values({ clusters: `\n  - name: src\n    connectionParameters: { host: h, user: r }\n    sslCert: { name: s, key: tls.crt }` }),
      /needs both sslCert and sslKey/,
      /needs both sslCert and sslKey/,
    ],
    ['a size that is not a quantity', values({ storage: '{ size: 10 GB }' }), /at '\/storage\/size'/, /not a Kubernetes quantity/],
    ['no storage.size', values({ storage: '{ storageClass: fast }' }), /missing property 'size'/, /storage\.size: is required/],
    [
      'a secret key with a path separator',
      values({ clusters: `\n  - name: src\n    connectionParameters: { host: h, user: r }\n    password: { name: s, key: a/b }` }),
      /at '\/externalClusters\/0\/password\/key'/,
      /cannot contain a path separator/,
    ],
    [
      'no host in the connection parameters',
      values({ clusters: `\n  - name: src\n    connectionParameters: { user: r }` }),
      /missing property 'host'/,
      /connectionParameters\.host: is required/,
    ],
    ['no external clusters', values({ clusters: ' []' }), /minItems/, /at least one external cluster/],
    ['zero instances', values({ extra: 'instances: 0\n' }), /at '\/instances'/, /instances/],
  ];
  for (const [what, text, chartError, refresherError] of cases) {
    it(what, async () => {
      const file = valuesFile(text);
      expect(await renderError('cnpg-database', { valuesFiles: [file], name: 'target-db', namespace: ns })).toMatch(chartError);
      expect(refresherProblems(file).join('\n')).toMatch(refresherError);
    });
  }

  it('the valid base of these cases renders in both, so each case fails for its own reason', async () => {
    const file = valuesFile(values());
    expect(refresherProblems(file)).toEqual([]);
    const { cluster } = await renderCluster(file);
    expect(cluster.object.spec).toStrictEqual(buildClusterSpec(refresherValues(file)));
  });

  it('a release name that makes an invalid Cluster name is refused with the reason', async () => {
    const file = valuesFile(values());
    expect(await renderError('cnpg-database', { valuesFiles: [file], name: 'a'.repeat(43), namespace: ns })).toMatch(
      /would be named "cluster-a{43}", which is not a valid Cluster name .*at most 50 characters/,
    );
  });

  it('backup.enabled: true is refused by both: the values configure no object store', async () => {
    const file = valuesFile(values({ extra: 'backup: { enabled: true }\n' }));
    expect(await renderError('cnpg-database', { valuesFiles: [file], name: 'target-db', namespace: ns })).toMatch(
      /backup\.enabled: true is not supported/,
    );
    expect(() => refresherValues(file)).toThrow(/backups of a refreshed copy are not supported/);
  });
});

describe('the chart itself', () => {
  it('its values.yaml documents every key of the guide format, and its defaults alone are refused for want of the required keys', async () => {
    const defaults = parseYaml(readFileSync(path.resolve(import.meta.dirname, '../../charts/cnpg-database/values.yaml'), 'utf8'));
    expect(defaults).toEqual({ instances: 1, bootstrapDB: { pg_basebackup: { database: 'app' } }, backup: { enabled: false } });
    const error = await renderError('cnpg-database', { name: 'target-db', namespace: ns });
    expect(error).toMatch(/missing properties 'storage', 'externalClusters'|missing property/);
  });
});
