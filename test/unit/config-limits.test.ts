import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { z } from 'zod';
import { MAX_DURATION_SECONDS, MAX_TIMER_MS } from '../../src/config/limits.js';
import { formatPath, parseConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';

/**
 * Every number in the config has an upper bound in the schema, and the bound is
 * the one enforced: the test walks the JSON Schema that `db-refresher schema`
 * prints, finds every numeric key, and loads a valid config with the key at its
 * maximum (accepted) and at maximum + 1 (refused, naming the key).
 */

type JsonSchema = {
  type?: string | string[];
  maximum?: number;
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  const?: unknown;
};

/** Numbers that are data written into the copy, not amounts db-refresher acts on: no bound. */
const DATA_VALUES = new Set(['.jobs[].mask.databases{}{}{}.constant']);

const jsonSchema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;

const isNumeric = (s: JsonSchema) =>
  [s.type ?? []].flat().some((t) => t === 'number' || t === 'integer') ||
  [...(s.anyOf ?? []), ...(s.oneOf ?? [])].some((b) => b.type === 'number' || b.type === 'integer');

const maximumOf = (s: JsonSchema): number | undefined =>
  s.maximum ?? [...(s.anyOf ?? []), ...(s.oneOf ?? [])].find((b) => b.maximum !== undefined)?.maximum;

/** Every numeric key in the schema, as a pattern such as `jobs[].target(cnpg).readyTimeoutSeconds`. */
function numericKeys(schema: JsonSchema, at = ''): Array<{ key: string; maximum: number | undefined }> {
  const found: Array<{ key: string; maximum: number | undefined }> = [];
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    // target.cluster is CloudNativePG's own Cluster spec (from its CRD): its numbers are CloudNativePG's,
    // checked by the API server, and none of them reaches a timer of db-refresher's.
    if (at.endsWith('target(cnpg)') && name === 'cluster') continue;
    if (isNumeric(child)) found.push({ key: `${at}.${name}`, maximum: maximumOf(child) });
    else found.push(...numericKeys(child, `${at}.${name}`));
  }
  if (schema.items) found.push(...numericKeys(schema.items, `${at}[]`));
  if (typeof schema.additionalProperties === 'object') found.push(...numericKeys(schema.additionalProperties, `${at}{}`));
  for (const branch of [...(schema.anyOf ?? []), ...(schema.oneOf ?? []), ...(schema.allOf ?? [])]) {
    const kind = branch.properties?.kind?.const;
    found.push(...numericKeys(branch, kind === undefined ? at : `${at}(${String(kind)})`));
  }
  return found;
}

/** The same keys, found by walking the schema alongside a config's data: concrete paths to set. */
function concretePaths(schema: JsonSchema, data: unknown, at: PropertyKey[], pattern: string): Array<{ path: PropertyKey[]; key: string }> {
  if (!data || typeof data !== 'object') return [];
  const found: Array<{ path: PropertyKey[]; key: string }> = [];
  if (Array.isArray(data)) {
    const items = schema.items;
    if (items) {
      for (const [i, item] of data.entries()) found.push(...concretePaths(items, item, [...at, i], `${pattern}[]`));
    }
    return found;
  }
  const record = data as Record<string, unknown>;
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    if (pattern.endsWith('target(cnpg)') && name === 'cluster') continue;
    if (isNumeric(child)) found.push({ path: [...at, name], key: `${pattern}.${name}` });
    else found.push(...concretePaths(child, record[name], [...at, name], `${pattern}.${name}`));
  }
  if (typeof schema.additionalProperties === 'object') {
    for (const [name, child] of Object.entries(record)) {
      found.push(...concretePaths(schema.additionalProperties, child, [...at, name], `${pattern}{}`));
    }
  }
  for (const branch of [...(schema.anyOf ?? []), ...(schema.oneOf ?? []), ...(schema.allOf ?? [])]) {
    const kind = branch.properties?.kind?.const;
    if (kind !== undefined && record.kind !== kind) continue;
    // A union of strict objects without a kind (mask strategies): the branch that has every key of the data.
    const known = branch.properties;
    if (kind === undefined && known && !Object.keys(record).every((key) => key in known)) continue;
    found.push(...concretePaths(branch, data, at, kind === undefined ? pattern : `${pattern}(${String(kind)})`));
  }
  return found;
}

const cnpgValues = {
  storage: { size: '1Gi' },
  bootstrapDB: { pg_basebackup: { source: 'prod' } },
  externalClusters: [{ name: 'prod', connectionParameters: { host: 'db.example.com', user: 'streaming_replica' } }],
};

const job = (name: string, target: Record<string, unknown>) => ({
  name,
  source: { host: 'db.example.com', user: 'replicator', password: { env: 'PW' } },
  target,
  verify: { databases: [{ name: 'app', minTables: 1, minSize: 1 }] },
  notify: ['team'],
});

/** Valid configs that between them hold every object with a numeric key, each of those keys set. */
const bases = ['file', 'kubernetes'].map((history) => ({
  server: {
    port: 8080,
    history: { kind: history, keepRuns: 10 },
    // Leader election needs the Kubernetes history store.
    ...(history === 'kubernetes'
      ? { leaderElection: { leaseName: 'db-refresher', leaseDurationSeconds: 3600, renewDeadlineSeconds: 3599, retryPeriodSeconds: 2 } }
      : {}),
  },
  notifications: { team: { kind: 'generic', url: { env: 'HOOK' }, events: ['upcoming'] } },
  jobs: [
    {
      ...job('local', { kind: 'local', dataDir: 'data/local', port: 5433 }),
      strategy: { kind: 'blueGreen', keepPrevious: 60, drainSeconds: 1, sparePort: 6000 },
      mask: {
        key: { env: 'PW' },
        databases: { app: { 'public.users': { email: { keepLast: 4 }, born: { dateShift: 30 }, c: { constant: 1 } } } },
        parallel: 2,
        sampleRows: 10,
      },
      prepare: [{ name: 'step', database: 'app', sql: 'SELECT 1', timeoutSeconds: 60 }],
    },
    {
      ...job('cnpg', { kind: 'cnpg', namespace: 'qa', clusterName: 'qa', values: cnpgValues, connect: { host: 'qa' } }),
      source: undefined,
      strategy: { kind: 'blueGreen', connect: { a: { host: 'qa-a' }, b: { host: 'qa-b' } } },
    },
    {
      ...job('local-bg', { kind: 'local', dataDir: 'data/local-bg', port: 5434 }),
      strategy: { kind: 'blueGreen', keepPrevious: 60, drainSeconds: 1, sparePort: 5499 },
    },
    {
      ...job('cnpg-bg', { kind: 'cnpg', namespace: 'qa', clusterName: 'qa-bg', values: cnpgValues }),
      source: undefined,
      strategy: { kind: 'blueGreen', connect: { a: { host: 'a' }, b: { host: 'b' } } },
    },
  ],
}));

const env = { PW: 'password', HOOK: 'https://hooks.example.com/x' };

function load(data: unknown) {
  return parseConfig(stringify(data), { source: 'limits.yaml', baseDir: '/etc/db-refresher', env });
}

function problems(data: unknown): readonly string[] {
  try {
    load(data);
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
}

function setAt(data: unknown, path: readonly PropertyKey[], value: unknown): unknown {
  const copy = structuredClone(data) as Record<PropertyKey, unknown>;
  let node = copy;
  for (const segment of path.slice(0, -1)) node = node[segment] as Record<PropertyKey, unknown>;
  node[path[path.length - 1] as PropertyKey] = value;
  return copy;
}

describe('config limits', () => {
  const keys = numericKeys(jsonSchema);

  it('finds the numeric keys (a sanity check on the walk)', () => {
    expect(keys.map((k) => k.key)).toEqual(
      expect.arrayContaining([
        '.jobs[].target(local).cloneTimeoutSeconds',
        '.server.shutdownGraceSeconds',
        '.jobs[].startingDeadlineSeconds',
      ]),
    );
    expect(keys.length).toBeGreaterThanOrEqual(19);
  });

  it('every numeric key has a maximum in the schema', () => {
    expect(keys.filter((k) => k.maximum === undefined && !DATA_VALUES.has(k.key)).map((k) => k.key)).toEqual([]);
  });

  it('every duration fits a Node timer', () => {
    expect(MAX_DURATION_SECONDS * 1000).toBeLessThanOrEqual(MAX_TIMER_MS);
    for (const { key, maximum } of keys.filter((k) => /Seconds$/.test(k.key))) {
      expect(maximum, key).toBeLessThanOrEqual(MAX_DURATION_SECONDS);
    }
    for (const { key, maximum } of keys.filter((k) => /Minutes$/.test(k.key))) {
      expect((maximum ?? Number.POSITIVE_INFINITY) * 60_000, key).toBeLessThanOrEqual(MAX_TIMER_MS);
    }
  });

  it('the base configs are valid and between them reach every numeric key', () => {
    for (const base of bases) expect(problems(base)).toEqual([]);
    const reached = new Set(bases.flatMap((base) => concretePaths(jsonSchema, base, [], '').map((p) => p.key)));
    expect(keys.map((k) => k.key).filter((k) => !reached.has(k) && !DATA_VALUES.has(k))).toEqual([]);
  });

  const maxima = new Map(keys.map((k) => [k.key, k.maximum ?? Number.NaN]));
  const cases = bases.flatMap((base) => concretePaths(jsonSchema, base, [], '').map((p) => ({ ...p, base })));
  const seen = new Set<string>();
  for (const { path, key, base } of cases) {
    if (seen.has(key)) continue;
    seen.add(key);
    it(`${key}: its maximum loads; maximum + 1 is refused, naming the key and the limit`, () => {
      const maximum = maxima.get(key) as number;
      expect(problems(setAt(base, path, maximum))).toEqual([]);
      const over = problems(setAt(base, path, maximum + 1));
      const where = formatPath(path);
      expect(
        over.some((p) => p.startsWith(`${where}: `) && p.includes(String(maximum))),
        `no problem names ${where} and its limit ${maximum}; got:\n${over.join('\n')}`,
      ).toBe(true);
    });
  }
});
