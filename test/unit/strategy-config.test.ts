import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { parseDurationSeconds } from '../../src/config/schema-strategy.js';
import { ConfigError } from '../../src/errors.js';

const env = { DBR_TEST_PASSWORD: 's3cret-value' };

function parse(text: string) {
  return parseConfig(text, { source: 'test.yaml', baseDir: '/etc/db-refresher', env });
}

function problemsOf(text: string): readonly string[] {
  try {
    parse(text);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

const local = (strategy: string) => `
jobs:
  - name: qa
    source: { host: db.example.com, user: replicator, password: { env: DBR_TEST_PASSWORD } }
    target: { kind: local, dataDir: data/qa, port: 5433 }
${strategy ? `    strategy: ${strategy}\n` : ''}`;

const cnpg = (clusterName: string, strategy: string) => `
jobs:
  - name: qa
    target:
      kind: cnpg
      namespace: qa
      clusterName: ${clusterName}
      values:
        storage: { size: 1Gi }
        bootstrapDB: { pg_basebackup: { source: prod } }
        externalClusters: [{ name: prod, connectionParameters: { host: prod-rw.prod.svc, user: streaming_replica } }]
    strategy: ${strategy}
`;

describe('strategy config', () => {
  it('defaults to recreate', () => {
    expect(parse(local('')).jobs[0]?.strategy).toEqual({ kind: 'recreate' });
  });

  it('takes blueGreen as a word, with keepPrevious 1h and drainSeconds 10', () => {
    expect(parse(local('blueGreen')).jobs[0]?.strategy).toEqual({
      kind: 'blueGreen',
      keepPrevious: '1h',
      keepPreviousSeconds: 3600,
      drainSeconds: 10,
    });
  });

  it('reads keepPrevious as a duration, 0 included', () => {
    expect(parse(local('{ kind: blueGreen, keepPrevious: 0, drainSeconds: 0, sparePort: 5499 }')).jobs[0]?.strategy).toMatchObject({
      keepPreviousSeconds: 0,
      drainSeconds: 0,
      sparePort: 5499,
    });
    expect(parseDurationSeconds('1h30m')).toBe(5400);
    expect(parseDurationSeconds('7d')).toBe(604_800);
    expect(parseDurationSeconds(90)).toBe(90);
    expect(parseDurationSeconds('1 hour')).toBeUndefined();
    expect(parseDurationSeconds(-1)).toBeUndefined();
  });

  it('names a bad kind, a bad duration and keys that do not fit the target', () => {
    expect(problemsOf(local('blueGren')).join('\n')).toContain('jobs[0].strategy.kind: strategy kind "blueGren" is not supported');
    expect(problemsOf(local('{ kind: blueGreen, keepPrevious: 1 hour }')).join('\n')).toContain(
      'jobs[0].strategy.keepPrevious: "1 hour" is not a duration',
    );
    expect(problemsOf(local('{ kind: blueGreen, sparePort: 5433 }')).join('\n')).toContain(
      'jobs[0].strategy.sparePort: must differ from target.port (5433)',
    );
    expect(problemsOf(local('{ kind: blueGreen, serviceName: qa }')).join('\n')).toContain(
      'jobs[0].strategy.serviceName: applies to cnpg targets only',
    );
    expect(problemsOf(cnpg('qa-db', '{ kind: blueGreen, sparePort: 5499 }')).join('\n')).toContain(
      'jobs[0].strategy.sparePort: applies to local targets only',
    );
  });

  it('cnpg: leaves room for the -a/-b suffix and refuses a Service name CloudNativePG uses itself', () => {
    expect(problemsOf(cnpg('c'.repeat(49), 'blueGreen')).join('\n')).toContain('jobs[0].target.clusterName: must be at most 48 characters');
    expect(problemsOf(cnpg('qa-db', '{ kind: blueGreen, serviceName: qa-db-a-rw }')).join('\n')).toContain(
      'is a name CloudNativePG gives one of the Clusters',
    );
    expect(parse(cnpg('qa-db', 'blueGreen')).jobs[0]?.strategy).toMatchObject({ kind: 'blueGreen' });
  });
});
