import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { chooseConfigPath, formatPath, loadConfig, parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

const corpus = path.resolve(import.meta.dirname, '../fixtures/config-errors');
const env = { DBR_TEST_PASSWORD: 's3cret-value' };

function parse(text: string, environment: NodeJS.ProcessEnv = env) {
  return parseConfig(text, { source: 'test.yaml', baseDir: '/etc/db-refresher', env: environment });
}

function problemsOf(text: string, environment: NodeJS.ProcessEnv = env): readonly string[] {
  try {
    parse(text, environment);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

const minimal = `
jobs:
  - name: qa
    source: { host: db.example.com, user: replicator, password: { env: DBR_TEST_PASSWORD } }
    target: { kind: local, dataDir: data/qa, port: 5433 }
`;

describe('config error corpus', () => {
  const files = readdirSync(corpus).filter((f) => f.endsWith('.yaml'));

  it('has at least 15 bad files', () => {
    expect(files.length).toBeGreaterThanOrEqual(15);
  });

  for (const file of files) {
    it(`${file} is rejected with a message naming the right path`, () => {
      const text = readFileSync(path.join(corpus, file), 'utf8');
      const expected = [...text.matchAll(/^# expect: (.+)$/gm)].map((m) => m[1] as string);
      expect(expected.length).toBeGreaterThan(0);
      const problems = problemsOf(text);
      for (const want of expected) {
        expect(
          problems.some((p) => p.includes(want)),
          `no problem contains ${JSON.stringify(want)}; got:\n${problems.join('\n')}`,
        ).toBe(true);
      }
    });
  }

  it('reports every problem at once, not just the first', () => {
    const problems = problemsOf(readFileSync(path.join(corpus, 'many-problems.yaml'), 'utf8'));
    expect(problems.length).toBeGreaterThanOrEqual(4);
  });

  it('never echoes the secret value in a message', () => {
    const text = readFileSync(path.join(corpus, 'many-problems.yaml'), 'utf8');
    for (const p of problemsOf(text)) expect(p).not.toContain('s3cret-value');
  });
});

describe('valid config', () => {
  it('applies defaults and resolves relative paths against the config file', () => {
    const config = parse(minimal);
    const job = config.jobs[0];
    expect(job?.source.port).toBe(5432);
    expect(job?.source.sslmode).toBe('prefer');
    expect(job?.source.dbname).toBe('postgres');
    expect(job?.timezone).toBe('UTC');
    expect(job?.target).toMatchObject({ kind: 'local', dataDir: '/etc/db-refresher/data/qa', host: '127.0.0.1', adopt: false });
    expect(job?.verify.sizeTolerancePercent).toBe(10);
    expect(config.stateDir).toBe('/etc/db-refresher/state');
  });

  it('uses the replication credentials for SQL unless source.sql says otherwise', () => {
    const config = parse(minimal);
    expect(config.jobs[0]?.source.sql.user).toBe('replicator');
    expect(config.jobs[0]?.source.sql.password?.reveal()).toBe('s3cret-value');
    const split = parse(
      minimal.replace('password: { env: DBR_TEST_PASSWORD } }', 'password: { env: DBR_TEST_PASSWORD }, sql: { user: auditor } }'),
    );
    expect(split.jobs[0]?.source.sql.user).toBe('auditor');
  });

  it('reads file secrets and drops one trailing newline', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'dbr-config-'));
    writeFileSync(path.join(dir, 'pw'), 'from-a-file\n');
    const config = parse(minimal.replace('{ env: DBR_TEST_PASSWORD }', `{ file: ${path.join(dir, 'pw')} }`));
    expect(config.jobs[0]?.source.password?.reveal()).toBe('from-a-file');
  });

  it('keeps secrets out of JSON, inspect and string output', () => {
    const config = parse(minimal);
    const shown = [JSON.stringify(config), inspect(config, { depth: 10 }), `${config.jobs[0]?.source.password}`];
    for (const text of shown) {
      expect(text).not.toContain('s3cret-value');
      expect(text).toContain('env:DBR_TEST_PASSWORD');
    }
  });

  it('is frozen after loading', () => {
    const config = parse(minimal);
    expect(Object.isFrozen(config.jobs[0]?.target)).toBe(true);
    expect(() => {
      (config.jobs as unknown as unknown[]).push({});
    }).toThrow();
  });

  it('expands cron nicknames and accepts a 6-field expression with seconds', () => {
    expect(() => parse(minimal.replace('- name: qa', '- name: qa\n    schedule: "@weekly"'))).not.toThrow();
    expect(() => parse(minimal.replace('- name: qa', '- name: qa\n    schedule: "*/5 * * * * *"'))).not.toThrow();
  });

  it('loads every example in config/ when its secrets are present', () => {
    const dir = path.resolve(import.meta.dirname, '../../config');
    const examples = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(examples.length).toBeGreaterThan(0);
    const secrets = mkdtempSync(path.join(tmpdir(), 'dbr-secrets-'));
    for (const file of examples) {
      const text = readFileSync(path.join(dir, file), 'utf8');
      // Point every file reference at a real file and set every env reference.
      const environment: NodeJS.ProcessEnv = {};
      for (const m of text.matchAll(/env: ([A-Z0-9_]+)/g)) environment[m[1] as string] = 'x';
      const rewritten = text.replace(/file: (\S+?)( ?})?$/gm, (_all, file: string, close: string | undefined) => {
        const local = path.join(secrets, path.basename(file));
        writeFileSync(local, 'x');
        return `file: ${local}${close ?? ''}`;
      });
      expect(() => parseConfig(rewritten, { source: file, baseDir: dir, env: environment }), file).not.toThrow();
    }
  });
});

describe('loading', () => {
  it('names a missing file and how to point at another', () => {
    expect(() => loadConfig('/nonexistent/db-refresher.yaml', env)).toThrow(
      /does not exist; pass --config PATH or set DB_REFRESHER_CONFIG/,
    );
  });

  it('chooses --config, then DB_REFRESHER_CONFIG, then the default', () => {
    expect(chooseConfigPath('a.yaml', { DB_REFRESHER_CONFIG: 'b.yaml' })).toBe('a.yaml');
    expect(chooseConfigPath(undefined, { DB_REFRESHER_CONFIG: 'b.yaml' })).toBe('b.yaml');
    expect(chooseConfigPath(undefined, {})).toBe('config/db-refresher.yaml');
  });

  it('formats paths the way people write them', () => {
    expect(formatPath(['jobs', 1, 'schedule'])).toBe('jobs[1].schedule');
    expect(formatPath(['notifications', 'team slack', 'url'])).toBe('notifications["team slack"].url');
    expect(formatPath([])).toBe('(top level)');
  });
});
