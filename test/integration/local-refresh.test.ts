import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileRunStore } from '../../src/history/file-store.js';
import { MARKER_FILE } from '../../src/targets/local/commands.js';
import { postmasterPid, queryCopy } from '../support/copy-queries.js';
import { dataDirOf, freePort, LocalHarness } from '../support/local-harness.js';

let harness: LocalHarness;
let targetPort: number;

beforeAll(async () => {
  harness = await LocalHarness.start();
  targetPort = await freePort();
});

afterAll(async () => {
  await harness?.destroy();
});

describe('local target, password authentication', () => {
  it('refreshes a copy end to end and records every phase', async () => {
    const config = harness.config(harness.jobYaml({ targetPort }));
    const run = await harness.run(config);

    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(run.phases.map((p) => [p.name, p.status])).toEqual([
      ['preflight', 'succeeded'],
      ['snapshot', 'succeeded'],
      ['teardown', 'succeeded'],
      ['clone', 'succeeded'],
      ['start', 'succeeded'],
      ['neutralise', 'succeeded'],
      ['prepare', 'succeeded'],
      ['mask', 'succeeded'],
      ['open', 'succeeded'],
      ['verify', 'succeeded'],
    ]);
    for (const phase of run.phases) {
      expect(Date.parse(phase.finishedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(phase.startedAt ?? ''));
    }
    const [{ users }] = (await queryCopy<{ users: string }>(
      targetPort,
      harness.ownerPassword,
      'SELECT count(*) AS users FROM public.users',
    )) as [{ users: string }];
    expect(Number(users)).toBe(500);

    const app = run.verification?.databases.find((d) => d.database === 'app');
    expect(app?.source?.tablesBySchema).toEqual({ analytics: 1, billing: 2, public: 2 });
    expect(app?.copy?.tablesBySchema).toEqual(app?.source?.tablesBySchema);
    expect(run.verification?.checks.map((c) => [c.name, c.ok])).toEqual([
      ['owner can log in', true],
      ['database owner', true],
      ['no synchronous standby', true],
      ['no enabled subscription', true],
      ['no active cron job', true],
    ]);

    const marker = JSON.parse(readFileSync(path.join(dataDirOf(config), MARKER_FILE), 'utf8'));
    expect(marker).toMatchObject({ managedBy: 'db-refresher', job: 'qa', runId: run.id });

    const stored = await new FileRunStore(config.stateDir).get(run.id);
    expect(stored).toEqual(run);
  });

  it('a second refresh replaces the first: writes to the copy vanish, new source data appears', async () => {
    const config = harness.config(harness.jobYaml({ targetPort }));
    const dataDir = dataDirOf(config);
    const pidBefore = postmasterPid(dataDir);
    expect(pidBefore).toBeDefined();
    await queryCopy(
      targetPort,
      harness.ownerPassword,
      "INSERT INTO public.users (id, email) VALUES (999999, 'written-to-the-copy@example.com')",
    );
    await queryCopy(targetPort, harness.ownerPassword, 'CREATE TABLE public.scratch (x int)');
    await harness.source.sql("INSERT INTO public.users (id, email) VALUES (500000, 'new-in-source@example.com')", 'app');

    const run = await harness.run(config);
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(run.phases.find((p) => p.name === 'teardown')?.detail).toMatchObject({ stopped: true, removed: true });

    const rows = await queryCopy<{ id: string }>(
      targetPort,
      harness.ownerPassword,
      'SELECT id FROM public.users WHERE id IN (500000, 999999) ORDER BY id',
    );
    expect(rows.map((r) => Number(r.id))).toEqual([500000]);
    const scratch = await queryCopy<{ n: string }>(
      targetPort,
      harness.ownerPassword,
      "SELECT count(*) AS n FROM pg_tables WHERE tablename = 'scratch'",
    );
    expect(Number(scratch[0]?.n)).toBe(0);
    expect(postmasterPid(dataDir)).not.toBe(pidBefore);
  });

  it('a dry run checks and snapshots but changes nothing', async () => {
    const config = harness.config(harness.jobYaml({ targetPort }));
    const dataDir = dataDirOf(config);
    const pidBefore = postmasterPid(dataDir);
    const run = await harness.run(config, 'qa', { dryRun: true });
    expect(run.status).toBe('succeeded');
    expect(run.dryRun).toBe(true);
    expect(run.phases.filter((p) => p.status === 'skipped').map((p) => p.name)).toEqual([
      'teardown',
      'clone',
      'start',
      'neutralise',
      'prepare',
      'mask',
      'open',
      'verify',
    ]);
    expect(run.snapshot?.databases.map((d) => d.database)).toEqual(['app']);
    expect(postmasterPid(dataDir)).toBe(pidBefore);
  });

  it('fails verification when the job expects more than the copy has, and says which check failed', async () => {
    const config = harness.config(
      harness.jobYaml({
        targetPort,
        verify: `      databases:
        - name: app
          minTables: 50
          requiredTables: [public.users, public.no_such_table]`,
      }),
    );
    const run = await harness.run(config);
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ phase: 'verify', class: 'verification-failed' });
    expect(run.error?.message).toContain('only 5 tables; the job expects at least 50');
    expect(run.error?.message).toContain('missing required tables: public.no_such_table');
    expect(run.verification?.ok).toBe(false);
    // Table counts and size still matched the source: only the expectations failed.
    const checks = run.verification?.databases[0]?.checks ?? [];
    expect(checks.find((c) => c.name === 'app: table counts')?.ok).toBe(true);
  });

  it("gives the copy's owner the job's password (local copies), and verification logs in with it", async () => {
    const config = harness.config(harness.jobYaml({ targetPort }), { ...harness.env, OWNER_PASSWORD: 'the-test-password' });
    const run = await harness.run(config);
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(run.phases.find((p) => p.name === 'prepare')?.detail).toMatchObject({ roles: { ownerPassword: 'app' } });
    expect(run.verification?.checks.find((c) => c.name === 'owner can log in')?.ok).toBe(true);
    expect(await queryCopy(targetPort, 'the-test-password', 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await expect(queryCopy(targetPort, harness.ownerPassword, 'SELECT 1')).rejects.toThrow(/password authentication failed/);
  });

  it('verifies every connectable database when none are listed', async () => {
    const config = harness.config(harness.jobYaml({ targetPort, verify: '      sizeTolerancePercent: 5' }));
    const run = await harness.run(config);
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(run.verification?.databases.map((d) => d.database)).toEqual(['app', 'postgres', 'reporting']);
  });

  it('never writes a secret to a log line or a run record', async () => {
    const secrets = [harness.replicationPassword, harness.ownerPassword];
    expect(harness.logLines.length).toBeGreaterThan(20);
    for (const line of harness.logLines) for (const secret of secrets) expect(line).not.toContain(secret);
    const runs = path.join(harness.sandbox.root, 'state', 'runs', 'qa');
    for (const file of readdirSync(runs)) {
      const text = readFileSync(path.join(runs, file), 'utf8');
      for (const secret of secrets) expect(text).not.toContain(secret);
    }
    // The per-run passfile and key copies lived in the staging directory, which is gone.
    expect(existsSync(`${path.join(harness.sandbox.root, 'copies', 'qa')}.db-refresher-staging`)).toBe(false);
  });
});
