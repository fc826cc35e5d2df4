import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { JobConfig, TestRole } from '../../src/config/types.js';
import { ConfigError } from '../../src/errors.js';
import { neutralisedChecks } from '../../src/safe-copy/checks.js';
import {
  describeNeutralisation,
  keptRoles,
  rolesToReset,
  subscriptionStatements,
  synchronousReplicationStatements,
} from '../../src/safe-copy/neutralise-sql.js';
import { needsPrivateWindow, safeCopyPlan } from '../../src/safe-copy/plan.js';
import { grantStatementsByDatabase, roleStatements } from '../../src/safe-copy/roles-sql.js';
import { scramSha256Verifier } from '../../src/safe-copy/scram.js';
import { lineAndColumn, quoteIdent, quoteLiteral, splitStatements } from '../../src/safe-copy/sql-text.js';
import { describeStepError } from '../../src/safe-copy/step-error.js';
import { openPatch, withPrivateWindow } from '../../src/targets/cnpg/private-window.js';
import { privateSocketDir, privateStartOptions, withoutPgCron } from '../../src/targets/local/private-start.js';

const env = { PW: 'pw-value', QA_PW: 'qa-secret' };
const base = `
jobs:
  - name: qa
    source: { host: db.example.com, user: replicator, password: { env: PW } }
    target: { kind: local, dataDir: data/qa, port: 5433 }
`;

function load(extra: string, baseDir = '/etc/db-refresher'): JobConfig {
  const config = parseConfig(`${base}${extra}`, { source: 'test.yaml', baseDir, env });
  return config.jobs[0] as JobConfig;
}

function problems(extra: string, baseDir = '/etc/db-refresher'): readonly string[] {
  try {
    load(extra, baseDir);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('safe-copy config', () => {
  it('neutralises by default, except passwords (opt-in), and has no roles or steps', () => {
    const job = load('');
    expect(job.neutralise).toEqual({ synchronousReplication: true, subscriptions: true, cron: true, passwords: false, keepRoles: [] });
    expect(job.roles).toEqual([]);
    expect(job.prepare).toEqual([]);
    expect(needsPrivateWindow(job)).toBe(true);
  });

  it('neutralise: false switches every item off, and an object switches items one by one', () => {
    expect(load('    neutralise: false\n').neutralise).toMatchObject({ synchronousReplication: false, subscriptions: false, cron: false });
    expect(load('    neutralise: { cron: false, passwords: true }\n').neutralise).toMatchObject({
      synchronousReplication: true,
      cron: false,
      passwords: true,
    });
    expect(needsPrivateWindow(load('    neutralise: false\n'))).toBe(false);
    // Masking alone needs the window: nobody may read the copy before it is masked.
    expect(
      needsPrivateWindow(
        load('    neutralise: false\n    mask: { key: { env: PW }, databases: { app: { public.users: { email: email } } } }\n'),
      ),
    ).toBe(true);
    expect(problems('    neutralise: true\n')[0]).toMatch(/jobs\[0\]\.neutralise: must be false .* or an object/);
  });

  it('reads roles with secret passwords and grants, and refuses duplicates', () => {
    const job = load(`    roles:
      - name: qa_tester
        password: { env: QA_PW }
        inRoles: [app_readonly]
        grants: [{ database: app, schema: public, privileges: [SELECT, INSERT] }]
`);
    const role = job.roles[0] as TestRole;
    expect(role.password?.reveal()).toBe('qa-secret');
    expect(role.login).toBe(true);
    expect(String(role.password)).toBe('[secret env:QA_PW]');
    expect(problems('    roles: [{ name: a }, { name: a }]\n')).toContainEqual(expect.stringContaining('role "a" is listed twice'));
    expect(problems('    roles: [{ name: a, password: { env: NOPE } }]\n')).toContainEqual(
      expect.stringContaining('jobs[0].roles[0].password (job "qa"): environment variable NOPE is not set'),
    );
  });

  it('reads step files when the config is loaded; a missing file is a config error with its path', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'dbr-prepare-'));
    writeFileSync(path.join(dir, 'shrink.sql'), 'DELETE FROM audit_log;\n');
    const job = load(
      `    prepare:
      - { name: shrink, database: app, file: shrink.sql }
      - { name: vacuum, database: app, sql: VACUUM, transaction: false, timeoutSeconds: 30 }
`,
      dir,
    );
    expect(job.prepare[0]).toMatchObject({
      name: 'shrink',
      sql: 'DELETE FROM audit_log;\n',
      file: path.join(dir, 'shrink.sql'),
      transaction: true,
    });
    expect(job.prepare[1]).toMatchObject({ sql: 'VACUUM', transaction: false, timeoutSeconds: 30 });
    expect(problems('    prepare: [{ name: x, database: app, file: missing.sql }]\n', dir)).toEqual([
      `jobs[0].prepare[0].file (step "x"): ${path.join(dir, 'missing.sql')} does not exist; fix the path (relative paths are relative to the config file)`,
    ]);
    expect(problems('    prepare: [{ name: x, database: app }]\n')).toContainEqual(
      expect.stringContaining('give exactly one of sql or file'),
    );
    expect(problems('    prepare: [{ name: x, database: app, sql: a, file: b }]\n')).toContainEqual(
      expect.stringContaining('give exactly one of sql or file'),
    );
  });

  it('plan describes the items, roles and steps without secrets', () => {
    const plan = safeCopyPlan(
      load(`    neutralise: { passwords: true, keepRoles: [reporting] }
    roles: [{ name: qa, password: { env: QA_PW }, grants: [{ database: app, schema: public }] }]
    prepare: [{ name: shrink, database: app, sql: "DELETE FROM audit_log WHERE at < now() - interval '7 days'" }]
`),
    );
    expect(plan.neutralise).toHaveLength(4);
    expect(plan.neutralise[3]).toContain('reporting');
    expect(plan.roles).toEqual(['qa: LOGIN; password [secret env:QA_PW]; SELECT on app.public.*']);
    expect(plan.prepare[0]).toBe("1. shrink in app: DELETE FROM audit_log WHERE at < now() - interval '7 days', timeout 600 s");
    expect(JSON.stringify(plan)).not.toContain('qa-secret');
  });
});

describe('SQL text', () => {
  it('quotes identifiers and literals', () => {
    expect(quoteIdent('Mixed"Case')).toBe('"Mixed""Case"');
    expect(quoteLiteral("it's")).toBe("'it''s'");
    expect(quoteLiteral('a\\b')).toBe("E'a\\\\b'");
  });

  it('splits at top-level semicolons only', () => {
    const script = [
      "INSERT INTO t VALUES ('a;b', E'c\\';d');",
      'CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql;',
      '-- a comment; with a semicolon',
      '/* block; /* nested; */ still; */ SELECT "x;y" FROM t;',
      'VACUUM',
    ].join('\n');
    const parts = splitStatements(script);
    expect(parts.map((p) => p.text)).toEqual([
      "INSERT INTO t VALUES ('a;b', E'c\\';d')",
      'CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql',
      '-- a comment; with a semicolon\n/* block; /* nested; */ still; */ SELECT "x;y" FROM t',
      'VACUUM',
    ]);
    for (const part of parts) expect(script.slice(part.offset, part.offset + part.text.length)).toBe(part.text);
    expect(splitStatements(' ; -- nothing\n;')).toEqual([]);
  });

  it('maps an error position to line and column', () => {
    expect(lineAndColumn('SELECT 1;\nSELEC 2;', 11)).toEqual({ line: 2, column: 1 });
    expect(lineAndColumn('SELECT x', 8)).toEqual({ line: 1, column: 8 });
  });
});

describe('SCRAM verifier', () => {
  it('is the verifier PostgreSQL computes for the password and salt', () => {
    const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
    const verifier = scramSha256Verifier('pencil', { salt, iterations: 4096 });
    // Recomputed from RFC 5802's definitions, independently of the module's code path.
    const salted = pbkdf2Sync('pencil', salt, 4096, 32, 'sha256');
    const stored = createHash('sha256').update(createHmac('sha256', salted).update('Client Key').digest()).digest('base64');
    expect(verifier).toBe(
      `SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$${stored}:${createHmac('sha256', salted).update('Server Key').digest('base64')}`,
    );
    expect(scramSha256Verifier('pencil')).not.toBe(scramSha256Verifier('pencil'));
  });
});

describe('neutralise SQL', () => {
  it('empties synchronous_standby_names and resets the production ALTER SYSTEM settings postgresql.auto.conf holds', () => {
    expect(
      synchronousReplicationStatements([
        { name: 'archive_command', setting: '/bin/false %p' },
        { name: 'primary_conninfo', setting: 'host=prod' },
        { name: 'synchronous_standby_names', setting: 'prod_standby' },
      ]),
    ).toEqual([
      'ALTER SYSTEM RESET archive_command',
      'ALTER SYSTEM RESET primary_conninfo',
      "ALTER SYSTEM SET synchronous_standby_names = ''",
      'SELECT pg_reload_conf()',
    ]);
    // Nothing in the file: postgresql.conf may still name standbys, and the file is read after it.
    expect(synchronousReplicationStatements([])).toEqual(["ALTER SYSTEM SET synchronous_standby_names = ''", 'SELECT pg_reload_conf()']);
    // A second pass: nothing left to do, and the file is not rewritten.
    expect(synchronousReplicationStatements([{ name: 'synchronous_standby_names', setting: '' }])).toEqual([]);
  });

  it('disables, then detaches a subscription, and never drops it', () => {
    expect(subscriptionStatements({ name: 'Orders', database: 'app', enabled: true, slot: 'orders' })).toEqual([
      'ALTER SUBSCRIPTION "Orders" DISABLE',
      'ALTER SUBSCRIPTION "Orders" SET (slot_name = NONE)',
    ]);
    expect(subscriptionStatements({ name: 's', database: 'app', enabled: false, slot: null })).toEqual([]);
    expect(subscriptionStatements({ name: 's', database: 'app', enabled: true, slot: 's' }).join(' ')).not.toMatch(/DROP/);
  });

  it('keeps the owner, test roles, keepRoles and the roles db-refresher and the operator use', () => {
    const job = load('    neutralise: { passwords: true, keepRoles: [reporting] }\n');
    const keep = keptRoles({
      settings: job.neutralise,
      testRoles: ['qa'],
      owner: 'app',
      connectsAs: ['replicator'],
      operatorManaged: ['streaming_replica'],
    });
    expect(rolesToReset(['app', 'qa', 'reporting', 'replicator', 'streaming_replica', 'alice', 'bob'], keep)).toEqual(['alice', 'bob']);
  });

  it('describes only the items switched on', () => {
    expect(describeNeutralisation(load('    neutralise: { cron: false }\n').neutralise)).toHaveLength(2);
  });
});

describe('roles SQL', () => {
  const role = (extra: Partial<TestRole> = {}): TestRole => ({ name: 'qa', login: true, inRoles: [], grants: [], ...extra });

  it('creates a missing role and alters an existing one to match', () => {
    expect(roleStatements(role({ inRoles: ['readers'] }), { exists: false, passwordVerifier: 'SCRAM-SHA-256$x' })).toEqual([
      `CREATE ROLE "qa" WITH LOGIN PASSWORD 'SCRAM-SHA-256$x'`,
      'GRANT "readers" TO "qa"',
    ]);
    expect(roleStatements(role({ login: false }), { exists: true })).toEqual(['ALTER ROLE "qa" WITH NOLOGIN PASSWORD NULL']);
  });

  it('grants per database: CONNECT, USAGE, table privileges and the sequences writes need', () => {
    const grants = grantStatementsByDatabase([
      role({ grants: [{ database: 'app', schema: 'public', privileges: ['SELECT', 'INSERT'] }] }),
      role({ name: 'ro', grants: [{ database: 'app', schema: 'billing', privileges: ['SELECT'] }] }),
    ]);
    expect(grants.get('app')).toEqual([
      'GRANT CONNECT ON DATABASE "app" TO "qa"',
      'GRANT USAGE ON SCHEMA "public" TO "qa"',
      'GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA "public" TO "qa"',
      'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA "public" TO "qa"',
      'GRANT CONNECT ON DATABASE "app" TO "ro"',
      'GRANT USAGE ON SCHEMA "billing" TO "ro"',
      'GRANT SELECT ON ALL TABLES IN SCHEMA "billing" TO "ro"',
      'GRANT SELECT ON ALL SEQUENCES IN SCHEMA "billing" TO "ro"',
    ]);
  });
});

describe('prepare step errors', () => {
  it('name the step, the SQL error with SQLSTATE, and its line and column', () => {
    const step = {
      name: 'fix data',
      database: 'app',
      sql: 'UPDATE t SET a = 1;\nUPDATE nope SET a = 1;',
      transaction: true,
      timeoutSeconds: 60,
    };
    const error = Object.assign(new Error('relation "nope" does not exist'), { code: '42P01', position: '28' });
    const described = describeStepError(step, error, 0);
    expect(described.message).toBe(
      'prepare step "fix data" failed in database "app" at line 2, column 8 of its sql: relation "nope" does not exist (SQLSTATE 42P01)',
    );
    expect(described.details).toEqual(['2 | UPDATE nope SET a = 1;', '  |        ^']);
  });

  it('add the statement offset for steps run statement by statement, and name the file', () => {
    const step = { name: 's', database: 'app', sql: 'VACUUM;\nSELEC 1;', file: '/etc/steps/s.sql', transaction: false, timeoutSeconds: 60 };
    const error = Object.assign(new Error('syntax error at or near "SELEC"'), { code: '42601', position: '1' });
    expect(describeStepError(step, error, 8).message).toContain('at line 2, column 1 of file /etc/steps/s.sql');
  });
});

describe('neutralised checks', () => {
  const settings = { synchronousReplication: true, subscriptions: true, cron: true, passwords: false, keepRoles: [] };

  it('pass on a neutralised copy and fail on each leftover', () => {
    expect(neutralisedChecks(settings, { standbyNames: '', enabledSubscriptions: 0, activeCronJobs: null }).every((c) => c.ok)).toBe(true);
    const failing = neutralisedChecks(settings, { standbyNames: 'prod_standby', enabledSubscriptions: 2, activeCronJobs: 1 });
    expect(failing.map((c) => [c.name, c.ok])).toEqual([
      ['no synchronous standby', false],
      ['no enabled subscription', false],
      ['no active cron job', false],
    ]);
  });

  it('check nothing that was switched off', () => {
    expect(neutralisedChecks({ ...settings, cron: false, subscriptions: false }, { standbyNames: '' })).toHaveLength(1);
  });
});

describe('local private start', () => {
  it('listens on no TCP address, only a private socket, with its own pg_hba, and starts no workers', () => {
    const dir = privateSocketDir('/srv/copies/qa', '/tmp');
    expect(dir).toMatch(/^\/tmp\/db-refresher-[0-9a-f]{16}$/);
    expect(privateSocketDir('/srv/copies/qa', '/tmp')).toBe(dir);
    expect(privateStartOptions({ socketDir: dir, noLogicalWorkers: true })).toBe(
      [
        "-c 'listen_addresses='",
        `-c 'unix_socket_directories=${dir}'`,
        "-c 'unix_socket_permissions=0700'",
        `-c 'hba_file=${dir}/pg_hba.conf'`,
        "-c 'synchronous_standby_names='",
        "-c 'max_logical_replication_workers=0'",
      ].join(' '),
    );
    expect(
      privateStartOptions({ socketDir: dir, noLogicalWorkers: false, withoutCron: { libraries: 'auto_explain', cronDatabase: 'jobs' } }),
    ).toContain("-c 'shared_preload_libraries=auto_explain' -c 'cron.database_name=jobs'");
    expect(privateStartOptions({ socketDir: "/tmp/it's", noLogicalWorkers: false })).toContain(
      `-c 'unix_socket_directories=/tmp/it'\\''s'`,
    );
  });

  it('leave pg_cron out of the preload list in the window, keeping the other libraries', () => {
    expect(withoutPgCron('pg_cron')).toBe('');
    expect(withoutPgCron('pg_stat_statements, pg_cron,auto_explain')).toBe('pg_stat_statements,auto_explain');
    expect(withoutPgCron('"pg_cron"')).toBe('');
    expect(withoutPgCron('pg_stat_statements')).toBeUndefined();
    expect(withoutPgCron('')).toBeUndefined();
  });
});

describe('CNPG private window', () => {
  const settings = { synchronousReplication: true, subscriptions: true, cron: true, passwords: false, keepRoles: [] };

  it('creates the clone closed: only the superuser gets in, no apply workers, ALTER SYSTEM allowed', () => {
    const spec = withPrivateWindow({ instances: 1, postgresql: { parameters: { work_mem: '8MB' } } }, settings);
    expect(spec).toEqual({
      instances: 1,
      enableSuperuserAccess: true,
      postgresql: {
        enableAlterSystem: true,
        pg_hba: ['host all postgres all scram-sha-256', 'host all all all reject'],
        parameters: { work_mem: '8MB', max_logical_replication_workers: '0' },
      },
    });
  });

  it('opens with one merge patch that restores the user settings', () => {
    expect(openPatch({ settings })).toEqual({
      spec: {
        enableSuperuserAccess: false,
        postgresql: {
          enableAlterSystem: false,
          pg_hba: null,
          parameters: { max_logical_replication_workers: null },
        },
      },
    });
    expect(
      openPatch({
        settings,
        userHba: ['host app app 10.0.0.0/8 scram-sha-256'],
        userParameters: { max_logical_replication_workers: '2' },
      }),
    ).toEqual({
      spec: {
        enableSuperuserAccess: false,
        postgresql: {
          enableAlterSystem: false,
          pg_hba: ['host app app 10.0.0.0/8 scram-sha-256'],
          parameters: { max_logical_replication_workers: '2' },
        },
      },
    });
  });
});
