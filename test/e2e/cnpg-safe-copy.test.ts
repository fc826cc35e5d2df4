/**
 * The copy is a safe test database on CloudNativePG (issue #15): the real
 * runner and CNPG target, the test API server, the simulated operator (which
 * applies spec.postgresql.pg_hba, parameters and shared_preload_libraries to
 * the real PostgreSQL it runs, reloads on a spec change and restarts in place
 * when a setting needs it), and a real source that names a synchronous
 * standby, subscribes to a third server's publication, runs a pg_cron job and
 * has a production login role.
 */
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandboxCluster } from '../../scripts/pg-sandbox.js';
import { APP_OWNER } from '../../scripts/sample-data.js';
import { buildRunner } from '../../src/composition-root.js';
import type { Config } from '../../src/config/types.js';
import { Kube } from '../../src/kube/client.js';
import { type RunRecord, startPhase } from '../../src/run/record.js';
import { ClusterApi } from '../../src/targets/cnpg/cluster-api.js';
import { openPatch, userWindowSettings } from '../../src/targets/cnpg/private-window.js';
import type { SimulatedOperator } from '../cnpg-sim/index.js';
import { type CnpgFixture, startCnpgFixture } from '../support/cnpg-fixture.js';
import type { CnpgHarness } from '../support/cnpg-harness.js';
import { queryCopy } from '../support/copy-queries.js';

let h: CnpgHarness;
let sim: SimulatedOperator;
let fixture: CnpgFixture;
let publisher: SandboxCluster;
const QA_PASSWORD = 'qa-tester-password';
const ALICE_PASSWORD = 'alice-production-password';

beforeAll(async () => {
  fixture = await startCnpgFixture('cnpg-safe', {
    harness: {
      settings: {
        shared_preload_libraries: "'pg_cron'",
        'cron.use_background_workers': 'on',
        max_worker_processes: '20',
        wal_level: 'logical',
      },
    },
  });
  ({ h, sim } = fixture);
  const { source, sandbox } = h.local;
  publisher = await sandbox.createCluster({ name: 'publisher', settings: { wal_level: 'logical' } });
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
  await source.sql(`ALTER SYSTEM SET synchronous_standby_names = 'prod_standby'`);
  await source.sql(`ALTER SYSTEM SET archive_command = '/bin/false production-archive %p'`);
  await source.sql('SELECT pg_reload_conf()');
}, 180_000);

afterAll(async () => {
  await fixture?.stop();
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

/** A job whose copy loads pg_cron like its source (CNPG never preloads it by itself, BEHAVIOUR.md §10.6). */
async function job(name: string, extra = ''): Promise<Config> {
  const yaml = h.jobYaml({
    name,
    clusterName: `${name}-db`,
    connectPort: await sim.clusterPort(h.namespace, `${name}-db`),
    target: `      cluster:
        postgresql:
          shared_preload_libraries: [pg_cron]
          parameters: { cron.database_name: postgres, cron.use_background_workers: "on", max_worker_processes: "20" }
`,
    job: h.directSourceYaml(),
  });
  return h.local.config(`${yaml}${extra}`, { ...h.directEnv(), QA_PASSWORD });
}

async function refresh(config: Config): Promise<RunRecord> {
  const { runner } = buildRunner(config, pino({ level: 'silent' }));
  const j = config.jobs[0];
  if (!j) throw new Error('no job');
  return runner.run(j, { kind: 'cli', by: 'test' });
}

/** Keeps connecting as the owner until stopped; each attempt's time and outcome. */
function ownerKeepsTrying(port: number): { stop: () => Promise<Array<{ at: number; ok: boolean; error?: string }>> } {
  const attempts: Array<{ at: number; ok: boolean; error?: string }> = [];
  let trying = true;
  const loop = (async () => {
    while (trying) {
      const at = Date.now();
      const c = new pg.Client({
        host: '127.0.0.1',
        port,
        user: APP_OWNER,
        password: h.local.ownerPassword,
        database: 'app',
        connectionTimeoutMillis: 1000,
      });
      c.on('error', () => undefined);
      const error = await c.connect().then(
        () => undefined,
        (e: Error) => e.message,
      );
      await c.end().catch(() => undefined);
      attempts.push({ at, ok: error === undefined, ...(error ? { error } : {}) });
      await new Promise((r) => setTimeout(r, 30));
    }
  })();
  return {
    stop: async () => {
      trying = false;
      await loop;
      return attempts;
    },
  };
}

describe('a neutralised CNPG copy with test roles', () => {
  let run: RunRecord;
  let port: number;
  let attempts: Array<{ at: number; ok: boolean; error?: string }>;

  beforeAll(async () => {
    port = await sim.clusterPort(h.namespace, 'safe-db');
    const config = await job(
      'safe',
      `    neutralise: { passwords: true }
    roles:
      - name: qa_tester
        password: { env: QA_PASSWORD }
        grants: [{ database: app, schema: public, privileges: [SELECT] }]
    prepare:
      - { name: mask emails, database: app, sql: "UPDATE public.users SET email = 'masked-' || id || '@example.test' WHERE id <= 10" }
      - { name: slow step, database: app, sql: "SELECT pg_sleep(1)" }
`,
    );
    const client = ownerKeepsTrying(port);
    try {
      run = await refresh(config);
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      attempts = await client.stop();
    }
  }, 240_000);

  it('succeeds through neutralise, prepare and open, recording what was switched off', () => {
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
    expect(phase(run, 'neutralise')?.detail).toMatchObject({
      synchronousReplication: { standbyNamesWere: 'prod_standby', autoConfReset: ['archive_command'] },
      subscriptions: { disabled: 1, detached: 1, names: ['app.feed_sub'] },
      cron: { database: 'postgres', deactivated: 1 },
      passwords: { roles: ['alice', 'replicator'] },
    });
    expect(phase(run, 'prepare')?.detail).toMatchObject({
      roles: { created: ['qa_tester'] },
      steps: [
        { name: 'mask emails', database: 'app', rows: 10 },
        { name: 'slow step', database: 'app' },
      ],
    });
    expect(phase(run, 'open')?.detail).toMatchObject({ opened: true, superuserAccess: false, pgCronLoaded: true });
    expect(run.verification?.checks.map((c) => [c.name, c.ok])).toEqual(
      expect.arrayContaining([
        ['no synchronous standby', true],
        ['no enabled subscription', true],
        ['no active cron job', true],
      ]),
    );
  });

  it("refuses the owner's connections by pg_hba until open, and lets them in from then on", () => {
    const startAt = Date.parse(phase(run, 'start')?.startedAt ?? '');
    const openAt = Date.parse(phase(run, 'open')?.startedAt ?? '');
    const verifyAt = Date.parse(phase(run, 'verify')?.startedAt ?? '');
    expect(attempts.filter((a) => a.ok && a.at < openAt)).toEqual([]);
    // The server was up and said no: the private window's reject rule, not a closed port.
    const refusedByHba = attempts.filter((a) => a.at >= startAt && a.at < openAt && /pg_hba\.conf rejects connection/.test(a.error ?? ''));
    expect(refusedByHba.length).toBeGreaterThan(5);
    const firstOk = attempts.find((a) => a.ok);
    expect(firstOk?.at ?? 0).toBeGreaterThanOrEqual(openAt);
    expect(firstOk?.at ?? Number.POSITIVE_INFINITY).toBeLessThanOrEqual(verifyAt + 1000);
  });

  it('applies the spec the window ends with: user rules, no private parameters, no superuser over TCP', async () => {
    const cluster = (await h.custom.getNamespacedCustomObject({
      group: 'postgresql.cnpg.io',
      version: 'v1',
      namespace: h.namespace,
      plural: 'clusters',
      name: 'safe-db',
    })) as { spec: { enableSuperuserAccess?: boolean; postgresql: Record<string, unknown> } };
    expect(cluster.spec.enableSuperuserAccess).toBe(false);
    expect(cluster.spec.postgresql.pg_hba).toBeUndefined();
    expect(cluster.spec.postgresql.parameters).not.toHaveProperty('max_logical_replication_workers');
    expect(cluster.spec.postgresql.shared_preload_libraries).toEqual(['pg_cron']);
    // Both need a restart: CloudNativePG (here the simulator) restarted the primary in place.
    expect(
      await sim.sql(
        h.namespace,
        'safe-db',
        `SELECT setting = boot_val AS built_in, pending_restart, current_setting('shared_preload_libraries') AS libraries
          FROM pg_settings WHERE name = 'max_logical_replication_workers'`,
      ),
    ).toEqual([{ built_in: true, pending_restart: false, libraries: 'pg_cron' }]);
  });

  it('commits a synchronous_commit = on INSERT within a second', async () => {
    const client = new pg.Client({ host: '127.0.0.1', port, user: APP_OWNER, password: h.local.ownerPassword, database: 'app' });
    await client.connect();
    try {
      await client.query('SET synchronous_commit = on');
      await client.query('CREATE TABLE IF NOT EXISTS sync_probe (x int)');
      const started = Date.now();
      await client.query('INSERT INTO sync_probe VALUES (1)');
      expect(Date.now() - started).toBeLessThan(1000);
      expect((await client.query('SHOW synchronous_standby_names')).rows[0]).toEqual({ synchronous_standby_names: '' });
    } finally {
      await client.end();
    }
  });

  it('leaves the subscription disabled and detached, and the publisher keeps its slot', async () => {
    expect(await sim.sql(h.namespace, 'safe-db', 'SELECT subenabled, subslotname FROM pg_subscription', [], 'app')).toEqual([
      { subenabled: false, subslotname: null },
    ]);
    expect(await publisher.sql('SELECT slot_name FROM pg_replication_slots')).toEqual([{ slot_name: 'feed_sub' }]);
  });

  it('has every pg_cron job inactive, and none ran on the copy (pg_cron was not loaded during the window)', async () => {
    expect(await sim.sql(h.namespace, 'safe-db', 'SELECT jobname, active FROM cron.job')).toEqual([{ jobname: 'hit', active: false }]);
    // CNPG clones during `start`, so the copy holds the source's runs up to then; a run of its own would be a row the source lacks.
    const runs = `SELECT runid::text, extract(epoch FROM start_time)::text AS at FROM cron.job_run_details WHERE start_time > $1 ORDER BY runid`;
    const since = [phase(run, 'clone')?.startedAt];
    const onCopy = await sim.sql<{ runid: string; at: string }>(h.namespace, 'safe-db', runs, since);
    const onSource = await h.local.source.sql<{ runid: string; at: string }>(runs, 'postgres', since);
    const sourceRuns = new Set(onSource.map((r) => `${r.runid}@${r.at}`));
    expect(onCopy.filter((r) => !sourceRuns.has(`${r.runid}@${r.at}`))).toEqual([]);
  });

  it('the test role logs in; the production role no longer does', async () => {
    expect(await queryCopy(port, QA_PASSWORD, 'SELECT count(*)::int AS n FROM public.users', { user: 'qa_tester' })).toEqual([{ n: 500 }]);
    await expect(queryCopy(port, ALICE_PASSWORD, 'SELECT 1', { user: 'alice', database: 'postgres' })).rejects.toThrow(
      /password authentication failed/,
    );
  });
});

describe('a failure inside the window', () => {
  it('fails in prepare, names the step, and leaves the copy closed', async () => {
    const port = await sim.clusterPort(h.namespace, 'broken-db');
    const config = await job(
      'broken',
      `    prepare:
      - { name: broken step, database: app, sql: "UPDATE public.nope SET x = 1" }
`,
    );
    const run = await refresh(config);
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ phase: 'prepare', class: 'prepare-failed' });
    expect(run.error?.message).toContain('prepare step "broken step" failed in database "app"');
    expect(run.verification).toBeUndefined();
    await expect(queryCopy(port, h.local.ownerPassword, 'SELECT 1')).rejects.toThrow(/pg_hba\.conf rejects connection/);
  }, 240_000);
});

/**
 * A service killed inside `open` (BEHAVIOUR.md §10.7: with superuser access
 * off, CloudNativePG deletes the generated Secret and empties the password).
 * The record says open is running (it is saved before the phase starts); the
 * Cluster shows what open's patches did before the kill, each one API request.
 * A restarted service takes the run up again (Runner.resume, as its recovery
 * does) and must finish open by itself.
 */
describe('an open interrupted after each of its patches', () => {
  for (const [patches, what] of [
    [1, 'after pg_hba and the parameters went back to the user'],
    [2, 'after superuser access went off too'],
  ] as const) {
    it(`is finished by a resumed run, ${what}`, async () => {
      const name = `reopen-${patches}`;
      const port = await sim.clusterPort(h.namespace, `${name}-db`);
      const config = await job(name);
      const j = config.jobs[0];
      if (!j) throw new Error('no job');
      const first = buildRunner(config, pino({ level: 'silent' }), {
        onEvent: (e) => {
          if (e.type === 'phase-finished' && e.phase === 'mask') first.runner.pauseAll('killed');
        },
      });
      const paused = await first.runner.run(j, { kind: 'cli', by: 'test' });
      expect(paused.status, JSON.stringify(paused.error)).toBe('running');
      expect(phase(paused, 'open')?.status).toBe('pending');
      // Still closed: neutralise, prepare and mask are done, open is not.
      await expect(queryCopy(port, h.local.ownerPassword, 'SELECT 1')).rejects.toThrow(/pg_hba\.conf rejects connection/);
      const killed = startPhase(paused, 'open', new Date());

      // What open did before the kill, with its own patches (the job's cluster values: pg_cron preloaded).
      const api = new ClusterApi({
        namespace: h.namespace,
        name: `${name}-db`,
        kubeconfig: undefined,
        clock: { now: () => new Date() },
        kube: new Kube(h.kc),
      });
      const user = userWindowSettings({
        postgresql: {
          shared_preload_libraries: ['pg_cron'],
          parameters: { 'cron.database_name': 'postgres', 'cron.use_background_workers': 'on', max_worker_processes: '20' },
        },
      });
      await api.patchCluster(openPatch({ ...user, settings: j.neutralise, part: 'access' }));
      if (patches === 2) {
        await api.patchCluster(openPatch({ ...user, settings: j.neutralise, part: 'superuser' }));
        // The operator has acted on it: the generated superuser Secret is gone.
        await waitFor(
          async () => (await api.readSecretKey({ name: `${name}-db-superuser`, key: 'password' })).value === undefined,
          'the superuser Secret to go',
        );
      }

      const second = buildRunner(config, pino({ level: 'silent' }));
      const resumed = await (await second.runner.resume(killed, j)).done;
      expect(resumed.status, JSON.stringify(resumed.error)).toBe('succeeded');
      expect(resumed.resumed?.[0]?.fromPhase).toBe('open');
      expect(phase(resumed, 'open')?.detail).toMatchObject({ opened: true, superuserAccess: false });
      expect(resumed.verification?.checks.filter((c) => !c.ok)).toEqual([]);
      const cluster = (await api.getCluster()) as { spec?: { enableSuperuserAccess?: boolean } } | undefined;
      expect(cluster?.spec?.enableSuperuserAccess).toBe(false);
      expect(await queryCopy(port, h.local.ownerPassword, 'SELECT 1 AS ok')).toEqual([{ ok: 1 }]);
    }, 300_000);
  }
});
