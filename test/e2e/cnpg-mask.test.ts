/**
 * Masking on CloudNativePG (issue #16): the CNPG target masks through the same
 * code as the local one. The real runner and CNPG target, the test API server
 * and the simulated operator (the clone is a real PostgreSQL), and a real
 * source whose database `crm`, owned by the application's owner like every
 * database of a CNPG application, holds customers, orders that reference
 * customers by e-mail, cards and free text. Masking runs in the private
 * window as the clone's superuser; the coverage check runs in verify on the
 * open copy as the application's owner (the login CNPG's Secret gives).
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_OWNER } from '../../scripts/sample-data.js';
import { buildRunner } from '../../src/composition-root.js';
import type { Config } from '../../src/config/types.js';
import type { RunRecord } from '../../src/run/record.js';
import type { SimulatedOperator } from '../cnpg-sim/index.js';
import { type CnpgFixture, startCnpgFixture } from '../support/cnpg-fixture.js';
import type { CnpgHarness } from '../support/cnpg-harness.js';
import { queryCopy } from '../support/copy-queries.js';
import { personalDataSql } from '../support/personal-data.js';

let h: CnpgHarness;
let sim: SimulatedOperator;
let fixture: CnpgFixture;
const KEY = 'cnpg-mask-key-5b1e07d2';
const CUSTOMERS = 300;
const CLUSTER = 'masked-db';

beforeAll(async () => {
  fixture = await startCnpgFixture('cnpg-mask');
  ({ h, sim } = fixture);
  const { source } = h.local;
  await source.sql(`CREATE DATABASE crm OWNER ${APP_OWNER}`);
  await source.sql(`SET ROLE ${APP_OWNER};\n${personalDataSql(CUSTOMERS)}`, 'crm');
}, 180_000);

afterAll(async () => {
  await fixture?.stop();
});

/** A CNPG job masking crm (the tests' standard config) and the sample users' e-mails in app. */
async function job(): Promise<Config> {
  const yaml = h.jobYaml({
    name: 'masked',
    clusterName: CLUSTER,
    connectPort: await sim.clusterPort(h.namespace, CLUSTER),
    job: h.directSourceYaml(),
  });
  return h.local.config(
    `${yaml}    mask:
      key: { env: MASK_KEY }
      databases:
        app:
          public.users: { email: email }
        crm:
          public.customers: { email: email, full_name: name, phone: phone, birth_date: { dateShift: 30 }, note: redact }
          public.orders: { customer_email: email, comment: { sql: "'(comment removed)'" } }
          billing.cards: { pan: { keepLast: 4 }, holder: name }
      # reporting is in the copy too (a physical copy holds every database), but app, the role
      # the check runs as, may not read it: allowed whole, with a wildcard.
      allow: [public.products.name, reporting.*.*.*]
      coverage: fail
`,
    { ...h.directEnv(), MASK_KEY: KEY },
  );
}

async function refresh(config: Config): Promise<RunRecord> {
  const { runner } = buildRunner(config, pino({ level: 'silent' }));
  const j = config.jobs[0];
  if (!j) throw new Error('no job');
  return runner.run(j, { kind: 'cli', by: 'test' });
}

async function onCopy<Row extends Record<string, unknown>>(text: string): Promise<Row[]> {
  return queryCopy<Row>(await sim.clusterPort(h.namespace, CLUSTER), h.local.ownerPassword, text, { database: 'crm' });
}

const CUSTOMER_ROWS = 'SELECT id::int, email, full_name, phone, birth_date::text, note FROM public.customers ORDER BY id';
/** Each order with the id of the customer its e-mail joins to. */
const ORDER_JOIN =
  'SELECT o.id::int AS order_id, c.id::int AS customer_id FROM public.orders o JOIN public.customers c ON c.email = o.customer_email ORDER BY o.id';

type Customer = { id: number; email: string; full_name: string; phone: string | null; birth_date: string | null; note: string };

describe('a CNPG copy with a mask section', () => {
  let run: RunRecord;
  let firstEmails: string[];

  beforeAll(async () => {
    run = await refresh(await job());
  }, 300_000);

  it('masks between prepare and open, and records per table the rows, strategies and re-samples, and the coverage result', () => {
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    const names = run.phases.map((p) => p.name);
    expect(names.slice(names.indexOf('prepare'))).toEqual(['prepare', 'mask', 'open', 'verify']);
    expect(run.masking).toMatchObject({ tables: 4, columns: 10, rows: 500 + CUSTOMERS * 4 });
    const tables = run.masking?.databases.map((d) => [
      d.database,
      d.tables.map((t) => [t.table, t.rows, t.columns.map((c) => c.strategy), t.columns.every((c) => c.resampled?.unchanged === 0)]),
    ]);
    expect(tables).toEqual([
      ['app', [['public.users', 500, ['email'], true]]],
      [
        'crm',
        [
          ['billing.cards', CUSTOMERS, ['keepLast 4', 'name'], true],
          ['public.customers', CUSTOMERS, ['email', 'name', 'phone', 'dateShift ±30 days', 'redact'], true],
          ['public.orders', CUSTOMERS * 2, ['email', `sql '(comment removed)'`], true],
        ],
      ],
    ]);
    expect(run.masking?.databases.flatMap((d) => d.tables).every((t) => typeof t.durationMs === 'number')).toBe(true);
    // Verified as the application's owner: every column of app and crm was looked at, nothing personal left.
    expect(run.verification?.coverage).toMatchObject({ mode: 'fail', ok: true, findings: [] });
    expect(run.verification?.coverage?.tables).toBeGreaterThanOrEqual(5 + 4);
    expect(run.verification?.checks.find((c) => c.name === 'masking coverage')?.ok).toBe(true);
  });

  it('leaves no masked value equal to its source value, and keeps NULLs NULL', async () => {
    const source = await h.local.source.sql<Customer>(CUSTOMER_ROWS, 'crm');
    const copy = await onCopy<Customer>(CUSTOMER_ROWS);
    expect(copy.map((c) => c.id)).toEqual(source.map((s) => s.id));
    const same: string[] = [];
    copy.forEach((c, i) => {
      const s = source[i] as Customer;
      for (const column of ['email', 'full_name', 'phone', 'birth_date', 'note'] as const) {
        if (s[column] === null) expect(c[column], `${column} of customer ${c.id}`).toBeNull();
        else if (c[column] === s[column]) same.push(`${column} of customer ${c.id}`);
      }
    });
    expect(same).toEqual([]);
    expect(copy[0]?.email).toMatch(/^[a-z]+\.[a-z]+\.[0-9a-f]{16}@example\.com$/);
    const [orders] = await onCopy<{ leaked: string }>(
      `SELECT count(*) AS leaked FROM public.orders WHERE customer_email LIKE '%@mail.example.org' OR comment <> '(comment removed)'`,
    );
    expect(orders?.leaked).toBe('0');
    firstEmails = copy.map((c) => c.email);
  });

  it('keeps the orders joined to the same customers, row for row, through the masked e-mails', async () => {
    const source = await h.local.source.sql(ORDER_JOIN, 'crm');
    const copy = await onCopy(ORDER_JOIN);
    expect(copy).toHaveLength(CUSTOMERS * 2);
    expect(copy).toEqual(source);
  });

  it('keeps the unique index on the e-mails valid and unique, and the foreign key holding', async () => {
    const [facts] = await onCopy<{ valid: boolean; total: string; distinct: string; orphans: string }>(
      `SELECT (SELECT indisvalid AND indisunique FROM pg_index WHERE indexrelid = 'public.customers_email_key'::regclass) AS valid,
              (SELECT count(*) FROM public.customers) AS total, (SELECT count(DISTINCT email) FROM public.customers) AS distinct,
              (SELECT count(*) FROM public.orders o WHERE NOT EXISTS (SELECT FROM public.customers c WHERE c.email = o.customer_email)) AS orphans`,
    );
    expect(facts).toEqual({ valid: true, total: String(CUSTOMERS), distinct: String(CUSTOMERS), orphans: '0' });
    // The index was maintained by the UPDATE: a masked value finds its row.
    const [first] = await onCopy<{ id: number }>(`SELECT id::int FROM public.customers WHERE email = '${firstEmails[0]}'`);
    expect(first).toEqual({ id: 1 });
  });

  describe('a second refresh after an unlisted column of e-mails appeared on the source', () => {
    let second: RunRecord;

    beforeAll(async () => {
      await h.local.source.sql(
        `SET ROLE ${APP_OWNER};
         CREATE TABLE public.leads (id int PRIMARY KEY, contact text);
         INSERT INTO public.leads SELECT g, 'lead' || g || '@prospects.example.net' FROM generate_series(1, 100) g;
         ANALYZE public.leads;`,
        'crm',
      );
      second = await refresh(await job());
    }, 300_000);

    it('fails verification under coverage: fail, naming the column and the evidence', () => {
      expect(second.status).toBe('failed');
      expect(second.error).toMatchObject({ phase: 'verify', class: 'verification-failed' });
      expect(second.error?.details?.join('\n')).toMatch(
        /masking coverage: crm: public\.leads\.contact: looks personal and is neither masked nor allowed \(values:email\): \d+ of \d+ sampled values are e-mail addresses/,
      );
      expect(second.verification?.coverage?.findings.map((f) => `${f.database}: ${f.table}.${f.column}`)).toEqual([
        'crm: public.leads.contact',
      ]);
    });

    it('masked the same values as the first refresh under the same key', async () => {
      expect(second.masking?.rows).toBe(500 + CUSTOMERS * 4);
      const copy = await onCopy<Customer>(CUSTOMER_ROWS);
      expect(copy.map((c) => c.email)).toEqual(firstEmails);
    });
  });
});
