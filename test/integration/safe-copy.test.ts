import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_HBA, type SandboxCluster } from '../../scripts/pg-sandbox.js';
import { APP_OWNER } from '../../scripts/sample-data.js';
import type { RunRecord } from '../../src/run/record.js';
import {
  hbaLoaded,
  hbaReloadWanted,
  OPENED_QUERY,
  type OpenedFacts,
  RELOAD_QUERY,
  type ReloadAsked,
} from '../../src/targets/cnpg/private-window.js';
import { queryCopy } from '../support/copy-queries.js';
import { freePort, LocalHarness } from '../support/local-harness.js';

/**
 * The copy is a safe test database (issue #15), against real servers: a
 * source that names a synchronous standby, subscribes to a third server's
 * publication, runs a pg_cron job every minute and has a production login
 * role; local copies of it are neutralised, get test roles and steps, and
 * admit no one before they are prepared.
 */

let harness: LocalHarness;
let publisher: SandboxCluster;
const QA_PASSWORD = 'qa-tester-password';
const ALICE_PASSWORD = 'alice-production-password';

function env(): NodeJS.ProcessEnv {
  return { ...harness.env, QA_PASSWORD };
}

beforeAll(async () => {
  harness = await LocalHarness.start({
    settings: {
      shared_preload_libraries: "'pg_cron'",
      'cron.use_background_workers': 'on',
      max_worker_processes: '20',
      wal_level: 'logical',
    },
  });
  const { source, sandbox } = harness;
  publisher = await sandbox.createCluster({
    name: 'publisher',
    settings: { wal_level: 'logical', log_connections: 'on', log_replication_commands: 'on' },
  });
  await publisher.sql('CREATE TABLE feed (id serial PRIMARY KEY, note text)');
  await publisher.sql(`INSERT INTO feed (note) VALUES ('before')`);
  await publisher.sql('CREATE PUBLICATION feed_pub FOR TABLE feed');
  await source.sql('CREATE TABLE feed (id int PRIMARY KEY, note text)', 'app');
  await source.sql(
    `CREATE SUBSCRIPTION feed_sub CONNECTION 'host=127.0.0.1 port=${publisher.port} user=postgres password=${publisher.superuserPassword} dbname=postgres' PUBLICATION feed_pub`,
    'app',
  );
  await waitFor(async () => (await source.sql<{ n: number }>('SELECT count(*)::int AS n FROM feed', 'app'))[0]?.n === 1, 'initial sync');

  await source.sql('CREATE EXTENSION pg_cron');
  await source.sql('CREATE TABLE cron_hits (at timestamptz DEFAULT now())');
  await source.sql(`SELECT cron.schedule('hit', '* * * * *', 'INSERT INTO cron_hits DEFAULT VALUES')`);

  await source.sql(`CREATE ROLE alice LOGIN PASSWORD '${ALICE_PASSWORD}'`);
  // What the user saw: production names a synchronous standby the copy will never have.
  await source.sql(`ALTER SYSTEM SET synchronous_standby_names = 'prod_standby'`);
  await source.sql(`ALTER SYSTEM SET archive_command = '/bin/false production-archive %p'`);
  await source.sql('SELECT pg_reload_conf()');
}, 120_000);

afterAll(async () => {
  await harness?.destroy();
});

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function phase(run: RunRecord, name: string) {
  return run.phases.find((p) => p.name === name);
}

/** Replication connections the publisher has accepted so far (log_connections + log_replication_commands). */
function publisherReplicationLogins(): number {
  return readFileSync(publisher.logFile, 'utf8')
    .split('\n')
    .filter((l) => /replication connection authorized/.test(l)).length;
}

describe('a neutralised local copy', () => {
  let run: RunRecord;
  let port: number;
  let loginsBefore: number;
  const walsenderPids = new Set<number>();

  beforeAll(async () => {
    port = await freePort();
    loginsBefore = publisherReplicationLogins();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const rows = await publisher.sql<{ pid: number }>('SELECT pid FROM pg_stat_replication').catch(() => []);
        for (const r of rows) walsenderPids.add(r.pid);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      // A step that records, from inside the private window, what the copy runs with there.
      const job = harness.jobYaml({ targetPort: port }).concat(`    prepare:
      - name: window probe
        database: postgres
        sql: "CREATE TABLE public.window_probe AS SELECT current_setting('shared_preload_libraries') AS libraries, (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher') AS launchers"
`);
      const config = harness.config(job, env());
      run = await harness.run(config);
      // The copy runs on; watch it for a while longer as it is now open.
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      watching = false;
      await watcher;
    }
  }, 120_000);

  it('succeeds with neutralise and verify recording what was switched off', () => {
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(run.phases.map((p) => p.name)).toEqual([
      'preflight',
      'snapshot',
      'teardown',
      'clone',
      'start',
      'neutralise',
      'prepare',
      'mask',
      'open',
      'verify',
    ]);
    expect(phase(run, 'start')?.detail).toMatchObject({ private: true });
    expect(phase(run, 'neutralise')?.detail).toMatchObject({
      synchronousReplication: { standbyNamesWere: '', autoConfReset: ['archive_command'] },
      subscriptions: { disabled: 1, detached: 1, names: ['app.feed_sub'] },
      cron: { database: 'postgres', deactivated: 1 },
    });
    expect(run.verification?.checks.map((c) => [c.name, c.ok])).toEqual(
      expect.arrayContaining([
        ['no synchronous standby', true],
        ['no enabled subscription', true],
        ['no active cron job', true],
      ]),
    );
  });

  it('commits a synchronous_commit = on INSERT within a second', async () => {
    const client = new pg.Client({ host: '127.0.0.1', port, user: APP_OWNER, password: harness.ownerPassword, database: 'app' });
    await client.connect();
    try {
      await client.query('SET synchronous_commit = on');
      await client.query('CREATE TABLE IF NOT EXISTS sync_probe (x int)');
      const started = Date.now();
      await client.query('INSERT INTO sync_probe VALUES (1)');
      expect(Date.now() - started).toBeLessThan(1000);
      expect((await client.query('SHOW synchronous_standby_names')).rows[0]).toEqual({ synchronous_standby_names: '' });
      expect((await client.query('SHOW archive_command')).rows[0]?.archive_command).not.toContain('production-archive');
    } finally {
      await client.end();
    }
  });

  it('never connects to the publisher, whose slot survives and still feeds the source', async () => {
    // Only the source's own apply worker ever streamed from the publisher.
    expect(walsenderPids.size).toBe(1);
    expect(publisherReplicationLogins()).toBe(loginsBefore);
    expect(await publisher.sql('SELECT slot_name FROM pg_replication_slots')).toEqual([{ slot_name: 'feed_sub' }]);
    const [sub] = await queryCopy<{ subenabled: boolean; subslotname: string | null }>(
      port,
      harness.source.superuserPassword,
      'SELECT subenabled, subslotname FROM pg_subscription',
      { user: 'postgres' },
    );
    expect(sub).toEqual({ subenabled: false, subslotname: null });
    await publisher.sql(`INSERT INTO feed (note) VALUES ('after')`);
    await waitFor(
      async () => (await harness.source.sql<{ n: number }>('SELECT count(*)::int AS n FROM feed', 'app'))[0]?.n === 2,
      'the source to receive the new row',
    );
    expect(await queryCopy(port, harness.source.superuserPassword, 'SELECT count(*)::int AS n FROM feed', { user: 'postgres' })).toEqual([
      { n: 1 },
    ]);
  });

  it('does not even load pg_cron in the private window (pg_cron turns max_running_jobs = 0 into 1), and loads it again once open', async () => {
    const login = { user: 'postgres', database: 'postgres' };
    const inWindow = await queryCopy(port, harness.source.superuserPassword, 'SELECT libraries, launchers FROM public.window_probe', login);
    expect(inWindow).toEqual([{ libraries: '', launchers: 0 }]);
    expect(phase(run, 'start')?.detail).toMatchObject({ private: true, pgCronLoaded: false });
    const open = await queryCopy(
      port,
      harness.source.superuserPassword,
      "SELECT current_setting('shared_preload_libraries') AS libraries",
      login,
    );
    expect(open).toEqual([{ libraries: 'pg_cron' }]);
  });

  it('never runs the pg_cron job on the copy, while the source keeps running it', async () => {
    const copyHits = async () =>
      (
        await queryCopy<{ n: number }>(port, harness.source.superuserPassword, 'SELECT count(*)::int AS n FROM cron_hits', {
          user: 'postgres',
          database: 'postgres',
        })
      )[0]?.n;
    const sourceHits = async () => (await harness.source.sql<{ n: number }>('SELECT count(*)::int AS n FROM cron_hits'))[0]?.n ?? 0;
    const copyAtOpen = await copyHits();
    const sourceAtOpen = await sourceHits();
    // The job fires at every minute boundary: wait past the next one.
    await waitFor(async () => (await sourceHits()) > sourceAtOpen, 'the source to run its job', 70_000);
    await new Promise((r) => setTimeout(r, 2000));
    expect(await copyHits()).toBe(copyAtOpen);
    const [runs] = await queryCopy<{ n: number }>(
      port,
      harness.source.superuserPassword,
      `SELECT count(*)::int AS n FROM cron.job_run_details WHERE start_time > $1`.replace('$1', `'${phase(run, 'start')?.startedAt}'`),
      { user: 'postgres', database: 'postgres' },
    );
    expect(runs).toEqual({ n: 0 });
  }, 90_000);
});

describe('test roles, the opt-in password reset and prepare steps', () => {
  it('a test role logs in after each of two refreshes; production passwords stop working', async () => {
    const port = await freePort();
    const job = harness.jobYaml({ name: 'roles', targetPort: port }).concat(`    neutralise: { passwords: true }
    roles:
      - name: qa_tester
        password: { env: QA_PASSWORD }
        grants: [{ database: app, schema: public, privileges: [SELECT] }]
    prepare:
      - { name: count users, database: app, sql: "UPDATE public.users SET email = 'masked-' || id || '@example.test' WHERE id <= 10" }
`);
    const config = harness.config(job, env());
    for (const round of [1, 2]) {
      const run = await harness.run(config, 'roles');
      expect(run.status, `round ${round}: ${JSON.stringify(run.error)}`).toBe('succeeded');
      expect(phase(run, 'prepare')?.detail).toMatchObject({
        roles: { created: ['qa_tester'], ownerPassword: APP_OWNER },
        steps: [{ name: 'count users', database: 'app', rows: 10, statements: 1 }],
      });
      expect(phase(run, 'neutralise')?.detail).toMatchObject({ passwords: { reset: 2, roles: ['alice', 'postgres'] } });
      expect(await queryCopy(port, QA_PASSWORD, 'SELECT count(*)::int AS n FROM public.users', { user: 'qa_tester' })).toEqual([
        { n: 500 },
      ]);
      await expect(queryCopy(port, ALICE_PASSWORD, 'SELECT 1', { user: 'alice', database: 'postgres' })).rejects.toThrow(
        /password authentication failed/,
      );
      // The owner and db-refresher's own roles keep working.
      expect(await queryCopy(port, harness.ownerPassword, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    }
    // Production still has its password.
    await expect(
      (async () => {
        const c = new pg.Client({
          host: '127.0.0.1',
          port: harness.source.port,
          user: 'alice',
          password: ALICE_PASSWORD,
          database: 'postgres',
        });
        await c.connect();
        await c.end();
      })(),
    ).resolves.toBeUndefined();
  }, 120_000);

  it('a failing step fails the run in prepare, names the step, and leaves the copy closed and unverified', async () => {
    const port = await freePort();
    const dir = path.join(harness.sandbox.root, 'steps');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'broken.sql'), 'UPDATE public.users SET email = email;\nUPDATE public.nope SET x = 1;\n');
    const job = harness.jobYaml({ name: 'broken', targetPort: port }).concat(`    prepare:
      - { name: fine, database: app, sql: "SELECT 1" }
      - { name: broken step, database: app, file: steps/broken.sql }
`);
    const run = await harness.run(harness.config(job, env()), 'broken');
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ phase: 'prepare', class: 'prepare-failed' });
    expect(run.error?.message).toBe(
      `prepare step "broken step" failed in database "app" at line 2, column 8 of file ${path.join(dir, 'broken.sql')}: relation "public.nope" does not exist (SQLSTATE 42P01)`,
    );
    expect(run.verification).toBeUndefined();
    expect(phase(run, 'verify')?.status).not.toBe('succeeded');
    await expect(queryCopy(port, harness.ownerPassword, 'SELECT 1')).rejects.toThrow(/ECONNREFUSED/);
  }, 120_000);
});

describe('no one reads the copy before it is prepared', () => {
  it("a client retrying with the owner's credentials through the whole run is refused until verify", async () => {
    const port = await freePort();
    const job = harness.jobYaml({ name: 'window', targetPort: port }).concat(`    prepare:
      - { name: slow step, database: app, sql: "SELECT pg_sleep(1.5)" }
`);
    const attempts: Array<{ at: number; ok: boolean }> = [];
    let trying = true;
    const client = (async () => {
      while (trying) {
        const at = Date.now();
        const c = new pg.Client({
          host: '127.0.0.1',
          port,
          user: APP_OWNER,
          password: harness.ownerPassword,
          database: 'app',
          connectionTimeoutMillis: 1000,
        });
        c.on('error', () => undefined);
        const ok = await c.connect().then(
          () => true,
          () => false,
        );
        await c.end().catch(() => undefined);
        attempts.push({ at, ok });
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    let run: RunRecord;
    try {
      run = await harness.run(harness.config(job, env()), 'window');
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      trying = false;
      await client;
    }
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    const verifyAt = Date.parse(phase(run, 'verify')?.startedAt ?? '');
    const openAt = Date.parse(phase(run, 'open')?.startedAt ?? '');
    const startAt = Date.parse(phase(run, 'start')?.startedAt ?? '');
    const inWindow = attempts.filter((a) => a.at >= startAt && a.at < openAt);
    expect(inWindow.length).toBeGreaterThan(20);
    expect(attempts.filter((a) => a.ok && a.at < openAt)).toEqual([]);
    const firstOk = attempts.find((a) => a.ok);
    expect(firstOk).toBeDefined();
    // The port opens at the end of `open`, as the run moves on to verify.
    expect(firstOk?.at ?? 0).toBeGreaterThanOrEqual(openAt);
    expect(Math.abs((firstOk?.at ?? 0) - verifyAt)).toBeLessThan(1000);
  }, 120_000);
});

/**
 * The CNPG window's "pg_hba loaded" decision (src/targets/cnpg/private-window.ts)
 * on a real server: pg_stat_file gives the file's mtime in whole seconds and
 * pg_hba_file_rules shows the file, not what the server loaded, so a file
 * written right after a reload in the same second looks loaded. The server
 * here plays CloudNativePG's part (write the user's rules, reload); the
 * decision must not believe them loaded until a reload came after the write.
 */
type Facts = OpenedFacts & Record<string, unknown>;

describe("pg_hba loaded after it was written (the CNPG window's check, on a real server)", () => {
  it('does not take a same-second reload for a load of the file, and proves the load with a reload of its own', async () => {
    const server = await harness.sandbox.createCluster({ name: 'hba-reload' });
    await server.sql(`CREATE ROLE tester LOGIN PASSWORD 'tester-password'`);
    const closed = ['local all all trust', 'host all tester 127.0.0.1/32 reject', ...DEFAULT_HBA.slice(1)];
    const testerLogsIn = async () => {
      const c = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'tester', password: 'tester-password', database: 'postgres' });
      c.on('error', () => undefined);
      const ok = await c.connect().then(
        () => true,
        () => false,
      );
      await c.end().catch(() => undefined);
      return ok;
    };
    const facts = async () => (await server.sql<Facts>(OPENED_QUERY, 'postgres', [[]]))[0] as Facts;
    const loadUs = async () => (await facts()).load_us;

    // Reload, then write the open rules within the same second (retried when the second turns in between).
    let before: Facts | undefined;
    for (let attempt = 0; attempt < 10 && !before; attempt += 1) {
      server.setHba(closed);
      await server.reload();
      await waitFor(async () => !(await testerLogsIn()), 'the closed rules to be in force');
      while (Date.now() % 1000 > 200) await new Promise((r) => setTimeout(r, 5));
      const previous = await loadUs();
      await server.reload();
      await waitFor(async () => (await loadUs()) > previous, 'the reload');
      server.setHba(DEFAULT_HBA);
      const seen = await facts();
      if (Math.floor(seen.load_us / 1_000_000) === seen.hba_mtime_s) before = seen;
    }
    if (!before) throw new Error('could not put a reload and a write in the same second');
    // The file says the tester may log in, yet the server still runs the closed rules...
    expect(await testerLogsIn()).toBe(false);
    // ...and the check the window used before (load time >= whole-second mtime) took the file for loaded:
    const [old] = await server.sql<{ loaded: boolean }>(
      `SELECT pg_conf_load_time() >= (pg_stat_file(current_setting('hba_file'))).modification AS loaded`,
    );
    expect(old?.loaded).toBe(true);
    // The decision does not, and asks for a reload.
    expect(hbaLoaded(before)).toBe(false);
    expect(hbaReloadWanted(before, {})).toBe(true);
    const [asked] = await server.sql<ReloadAsked & Record<string, unknown>>(RELOAD_QUERY);
    if (!asked) throw new Error('no answer to the reload');
    await waitFor(async () => hbaLoaded(await facts(), asked), 'the reload asked for');
    expect(await testerLogsIn()).toBe(true);
  }, 120_000);
});
