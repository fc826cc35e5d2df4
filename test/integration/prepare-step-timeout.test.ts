import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox, type SandboxCluster } from '../../scripts/pg-sandbox.js';
import { Secret } from '../../src/config/secret.js';
import { PhaseFailure } from '../../src/errors.js';
import type { PhaseContext } from '../../src/ports.js';
import { PgConnector } from '../../src/postgres/sql.js';
import type { CopyAccess } from '../../src/safe-copy/access.js';
import { runPrepareSteps } from '../../src/safe-copy/prepare.js';

/**
 * A prepare step's timeoutSeconds bounds the whole step (issue #15), not each
 * statement: a step of many short statements is cancelled when its time is up.
 */

let sandbox: Sandbox;
let cluster: SandboxCluster;
let access: CopyAccess;

const ctx = {
  runId: 'r',
  log: pino({ level: 'silent' }),
  signal: new AbortController().signal,
  progress: () => undefined,
} as unknown as PhaseContext;

beforeAll(async () => {
  sandbox = Sandbox.create('dbr-step-timeout-');
  cluster = await sandbox.createCluster({ name: 'pg' });
  await cluster.sql('CREATE TABLE ticks (at timestamptz)');
  const password = new Secret(cluster.superuserPassword, 'test');
  access = {
    sql: new PgConnector(),
    endpoint: (database) => ({ host: '127.0.0.1', port: cluster.port, user: 'postgres', password, dbname: database, sslmode: 'disable' }),
    maintenanceDatabase: 'postgres',
  };
}, 60_000);

afterAll(async () => {
  await sandbox?.destroy();
});

const step = (sql: string, transaction: boolean) => ({ name: 'slow', database: 'postgres', sql, transaction, timeoutSeconds: 1 });

describe('prepare step timeout', () => {
  it('cancels a step whose statements each stay under the timeout but together exceed it', async () => {
    const sql = Array.from({ length: 6 }, () => 'SELECT pg_sleep(0.4); INSERT INTO ticks VALUES (now());').join('\n');
    const error = await runPrepareSteps(access, [step(sql, false)], ctx).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PhaseFailure);
    expect((error as PhaseFailure).message).toBe(
      'prepare step "slow" in database "postgres" ran longer than its timeoutSeconds (1 s) and was cancelled',
    );
    // Some statements committed (no transaction), but not all six.
    const [row] = await cluster.sql<{ n: number }>('SELECT count(*)::int AS n FROM ticks');
    expect(row?.n).toBeLessThan(6);
  });

  it('cancels a transaction step the same way, and nothing of it stays', async () => {
    await cluster.sql('TRUNCATE ticks');
    const sql = Array.from({ length: 6 }, () => 'SELECT pg_sleep(0.4); INSERT INTO ticks VALUES (now());').join('\n');
    const error = await runPrepareSteps(access, [step(sql, true)], ctx).catch((e: unknown) => e);
    expect((error as PhaseFailure).message).toContain('ran longer than its timeoutSeconds (1 s)');
    expect(await cluster.sql('SELECT count(*)::int AS n FROM ticks')).toEqual([{ n: 0 }]);
  });

  it('lets a step that finishes in time succeed', async () => {
    const [report] = await runPrepareSteps(access, [step('SELECT pg_sleep(0.2)', true)], ctx);
    expect(report?.name).toBe('slow');
  });
});
