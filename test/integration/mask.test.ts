import { createHash, createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox, type SandboxCluster } from '../../scripts/pg-sandbox.js';
import { type MaskStrategy, maskSchema } from '../../src/config/schema-mask.js';
import { Secret } from '../../src/config/secret.js';
import type { MaskConfig, PgEndpoint } from '../../src/config/types.js';
import { checkCoverage, coverageChecks } from '../../src/mask/coverage.js';
import { keyParams } from '../../src/mask/key.js';
import { maskCopy } from '../../src/mask/masker.js';
import { silentLogger } from '../../src/observe/logger.js';
import { PgConnector } from '../../src/postgres/sql.js';
import { ibanWithCheckDigits, personalDataSql } from '../support/personal-data.js';
import { superuserEndpoint } from '../support/sandbox-endpoint.js';

/**
 * The masking module on real PostgreSQL, driven directly: one cluster, a
 * template database with personal data, and a fresh copy of it per test
 * (CREATE DATABASE … TEMPLATE), so every test starts from the same source.
 */

let sandbox: Sandbox;
let cluster: SandboxCluster;
const CUSTOMERS = 2000;

/** public.phones masked under 'pinned-phone-key' (see the test that uses it). */
const PINNED_PHONES: Array<string | null> = [
  null,
  '',
  '53',
  '+1330',
  '0020068643493283459388',
  '',
  '+13918988506',
  '+5361522508477913485',
  '5152110474',
  '+082995469956',
  // The usual separators take a cheaper path to the digits (replace() instead of translate()); same values.
  '7732402189',
  '7732402189',
  '579812',
  '+777878804812',
  '',
  '761792071',
  '+',
  '',
  '+04421767103',
  '5123337616318',
];

/** public.people masked under 'pinned-phone-key'. */
const PINNED_PEOPLE = [
  { email: 'noah.moreno.bcb2022b97dd2c01@example.com', full_name: 'Yusuf Costa 317c1a287f4656f1' },
  { email: 'ursula.romero.242c08018303a9a0@example.com', full_name: 'Petra Huber 7a2ca452e15acdf2' },
];

const STANDARD: Record<string, Record<string, MaskStrategy>> = {
  'public.customers': { email: 'email', full_name: 'name', phone: 'phone', birth_date: { dateShift: 30 }, note: 'redact' },
  'public.orders': { customer_email: 'email', comment: { sql: "'(comment removed)'" } },
  'billing.cards': { pan: { keepLast: 4 }, holder: 'name' },
};

const endpoint = (database: string): PgEndpoint => superuserEndpoint(cluster, database);

function maskConfig(database: string, key: string, tables = STANDARD, parallel = 3): MaskConfig {
  return {
    key: new Secret(key, 'test'),
    databases: { [database]: tables },
    allow: [],
    coverage: 'fail',
    parallel,
    sampleRows: 20,
  } as MaskConfig;
}

let copies = 0;
async function freshCopy(): Promise<string> {
  copies += 1;
  const name = `copy${copies}`;
  await cluster.sql(`CREATE DATABASE ${name} TEMPLATE source`);
  return name;
}

type MaskError = Error & { failureClass?: string; details?: string[]; hint?: string };

async function maskFails(database: string, tables: Record<string, Record<string, MaskStrategy>>): Promise<MaskError> {
  try {
    await mask(database, 'key-one', tables);
  } catch (error) {
    return error as MaskError;
  }
  throw new Error('masking succeeded');
}

async function mask(database: string, key = 'key-one', tables = STANDARD) {
  return maskCopy({
    mask: maskConfig(database, key, tables),
    endpoint,
    sql: new PgConnector(),
    log: silentLogger(),
    signal: new AbortController().signal,
  });
}

/** The coverage check on one copy, as the superuser unless `as` says otherwise, with products.name allowed unless `allow` says otherwise. */
function coverageOf(
  database: string,
  options: { tables?: Record<string, Record<string, MaskStrategy>>; allow?: string[]; as?: (database: string) => PgEndpoint } = {},
) {
  return checkCoverage({
    mask: { ...maskConfig(database, 'key-one', options.tables), allow: options.allow ?? ['public.products.name'] },
    databases: [database],
    endpoint: options.as ?? endpoint,
    sql: new PgConnector(),
  });
}

beforeAll(async () => {
  sandbox = Sandbox.create('dbr-mask-');
  cluster = await sandbox.createCluster({ name: 'pg' });
  await cluster.sql('CREATE DATABASE source');
  await cluster.sql(personalDataSql(CUSTOMERS), 'source');
});

afterAll(async () => {
  await sandbox?.destroy();
});

describe('maskCopy on real PostgreSQL', () => {
  it('masks every configured column set-based, keeps joins, unique indexes, NULLs and statistics right', async () => {
    const db = await freshCopy();
    const record = await mask(db);

    expect(record.tables).toBe(3);
    expect(record.columns).toBe(9);
    const customers = record.databases[0]?.tables.find((t) => t.table === 'public.customers');
    expect(customers?.rows).toBe(CUSTOMERS);
    expect(customers?.columns.map((c) => [c.column, c.strategy])).toEqual([
      ['email', 'email'],
      ['full_name', 'name'],
      ['phone', 'phone'],
      ['birth_date', 'dateShift ±30 days'],
      ['note', 'redact'],
    ]);
    // 20 rows re-sampled by primary key; every tenth has no phone and no birth date.
    expect(customers?.columns.map((c) => c.resampled)).toEqual([
      { rows: 20, unchanged: 0 },
      { rows: 20, unchanged: 0 },
      { rows: 18, unchanged: 0 },
      { rows: 18, unchanged: 0 },
      { rows: 20, unchanged: 0 },
    ]);

    // Every masked value differs from the source, row by row.
    const [diff] = await cluster.sql<Record<string, string>>(
      `SELECT count(*) FILTER (WHERE c.email = s.email) AS email, count(*) FILTER (WHERE c.full_name = s.full_name) AS full_name,
              count(*) FILTER (WHERE c.phone = s.phone) AS phone, count(*) FILTER (WHERE c.birth_date = s.birth_date) AS birth_date,
              count(*) FILTER (WHERE c.note = s.note) AS note,
              count(*) FILTER (WHERE (c.phone IS NULL) <> (s.phone IS NULL) OR (c.birth_date IS NULL) <> (s.birth_date IS NULL)) AS nulls_moved,
              count(*) FILTER (WHERE abs(c.birth_date - s.birth_date) > 30) AS shifted_too_far
       FROM public.customers c JOIN json_populate_recordset(NULL::public.customers, $1::json) s USING (id)`,
      db,
      [JSON.stringify(await cluster.sql('SELECT * FROM public.customers', 'source'))],
    );
    expect(diff).toEqual({ email: '0', full_name: '0', phone: '0', birth_date: '0', note: '0', nulls_moved: '0', shifted_too_far: '0' });

    const [shape] = await cluster.sql<Record<string, string>>(
      `SELECT (SELECT count(*) FROM public.customers WHERE email !~ '^[a-z]+\\.[a-z]+\\.[0-9a-f]{16}@example\\.com$') AS bad_emails,
              (SELECT count(*) FROM public.customers WHERE phone IS NOT NULL AND phone !~ '^\\+[0-9]{11}$') AS bad_phones,
              (SELECT count(*) FROM public.customers WHERE phone IS NULL) AS null_phones,
              (SELECT count(DISTINCT phone) FROM public.customers) AS distinct_phones,
              (SELECT count(*) FROM billing.cards WHERE pan !~ '^0{12}[0-9]{4}$') AS bad_pans,
              (SELECT count(*) FROM public.orders o JOIN public.customers c ON c.email = o.customer_email) AS joined_orders,
              (SELECT count(*) FROM public.orders) AS orders`,
      db,
    );
    expect(shape).toEqual({
      bad_emails: '0',
      bad_phones: '0',
      null_phones: String(CUSTOMERS / 10),
      distinct_phones: String(CUSTOMERS - CUSTOMERS / 10),
      bad_pans: '0',
      joined_orders: String(CUSTOMERS * 2),
      orders: String(CUSTOMERS * 2),
    });

    // The join matches row for row: each order still points at the same customer id as in the source.
    const [pairs] = await cluster.sql<{ n: string }>(
      `SELECT count(*) AS n FROM public.orders o JOIN public.customers c ON c.email = o.customer_email
       WHERE c.id = 1 + o.id % ${CUSTOMERS}`,
      db,
    );
    expect(Number(pairs?.n)).toBe(CUSTOMERS * 2);

    // Indexes and constraints are intact and valid; statistics were refreshed and hold no source value.
    const [state] = await cluster.sql<Record<string, unknown>>(
      `SELECT (SELECT count(*) FROM pg_index WHERE NOT indisvalid) AS invalid_indexes,
              (SELECT count(*) FROM pg_constraint WHERE NOT convalidated) AS unvalidated,
              (SELECT count(*) FROM pg_trigger WHERE tgenabled = 'D') AS disabled_triggers,
              (SELECT count(*) FROM pg_stats WHERE tablename = 'customers' AND attname = 'email'
                 AND (histogram_bounds::text LIKE '%mail.example.org%' OR most_common_vals::text LIKE '%mail.example.org%')) AS stale_stats,
              (SELECT count(*) FROM pg_stats WHERE tablename = 'customers' AND attname = 'email') AS email_stats`,
      db,
    );
    expect(state).toEqual({ invalid_indexes: '0', unvalidated: '0', disabled_triggers: '0', stale_stats: '0', email_stats: '1' });
    // The trigger is still there and still fires for ordinary sessions.
    await expect(cluster.sql("UPDATE public.customers SET note = 'x' WHERE id = 1", db)).rejects.toThrow(/read-only/);
  });

  it('gives identical values under the same key and different ones under another key', async () => {
    const [a, b, c] = [await freshCopy(), await freshCopy(), await freshCopy()];
    await mask(a, 'key-one');
    await mask(b, 'key-one');
    await mask(c, 'key-two');
    const dump = (db: string) =>
      cluster.sql<{ v: string }>(
        `SELECT string_agg(concat_ws('|', email, full_name, phone, birth_date, note), ',' ORDER BY id) AS v FROM public.customers`,
        db,
      );
    const [[va], [vb], [vc]] = await Promise.all([dump(a), dump(b), dump(c)]);
    expect(va?.v).toBe(vb?.v);
    expect(va?.v).not.toBe(vc?.v);
    const [{ same } = { same: '' }] = await cluster.sql<{ same: string }>(
      `SELECT count(*) AS same FROM public.customers c JOIN (SELECT * FROM json_populate_recordset(NULL::public.customers, $1::json)) o USING (id) WHERE c.email = o.email OR c.phone = o.phone`,
      c,
      [JSON.stringify(await cluster.sql('SELECT * FROM public.customers', a))],
    );
    expect(same).toBe('0');
  });

  it('gives fakes that stay the same from release to release; tables with only unkeyed, phone or hash columns work', async () => {
    // Pinned values under a fixed key: a refresh after an upgrade must give the same
    // fakes as before, so joins between copies and saved test data keep working.
    // A release that changes them must say so (docs/masking.md, "Stable fakes").
    const db = await freshCopy();
    await cluster.sql(
      `CREATE TABLE public.phones (id int PRIMARY KEY, phone text);
       INSERT INTO public.phones VALUES (1, NULL), (2, ''), (3, '12'), (4, '+12 34'), (5, '1234567890123456789012'),
         (6, 'abc'), (7, '+1 (555) 0000042'), (8, '+1 234 567 890 123 456 789'), (9, '030 1234567'), (10, '+44 20 7946 0958'),
         (11, '555-123-4567'), (12, '(555) 123.4567'), (13, '12+34 56'), (14, '+49 (0)30 1234567'), (15, '１２３４５６'),
         (16, '555 0142 ext. 12'), (17, '+'), (18, ' - '), (19, '+1/555/1234567'), (20, '0049 30 1234567');
       CREATE TABLE public.remarks (id int PRIMARY KEY, remark text);
       INSERT INTO public.remarks VALUES (1, 'Call Ann at 555-0142');
       CREATE TABLE public.people (id int PRIMARY KEY, email text, full_name text);
       INSERT INTO public.people VALUES (1, 'ann@corp.test', 'Ann Smith'), (2, 'bob@corp.test', 'Bob Jones');
       CREATE TABLE public.tokens (id int PRIMARY KEY, token text);
       INSERT INTO public.tokens VALUES (1, 'tok-1'), (2, NULL)`,
      db,
    );
    // A statement binds only the key parameters it uses: phone takes one, redact none, hash all four.
    await mask(db, 'pinned-phone-key', {
      'public.phones': { phone: 'phone' },
      'public.remarks': { remark: 'redact' },
      'public.people': { email: 'email', full_name: 'name' },
      'public.tokens': { token: 'hash' },
    });
    const rows = await cluster.sql<{ phone: string | null }>('SELECT phone FROM public.phones ORDER BY id', db);
    expect(rows.map((r) => r.phone)).toEqual(PINNED_PHONES);
    expect(await cluster.sql('SELECT remark FROM public.remarks', db)).toEqual([{ remark: 'xxxx xxx xx 000-0000' }]);
    expect(await cluster.sql('SELECT email, full_name FROM public.people ORDER BY id', db)).toEqual(PINNED_PEOPLE);
    // The tag is the first 64 bits of the HMAC's inner hash, sha256((key ⊕ ipad) || 'email:' || value).
    const inner = (message: string) =>
      createHash('sha256')
        .update(Buffer.concat([keyParams('pinned-phone-key').ipad, Buffer.from(message)]))
        .digest('hex')
        .slice(0, 16);
    expect(PINNED_PEOPLE[0]?.email).toContain(`.${inner('email:ann@corp.test')}@`);
    expect(PINNED_PEOPLE[1]?.full_name).toMatch(new RegExp(` ${inner('name:Bob Jones')}$`));
    // hash is the plain HMAC-SHA256 of the value: what openssl dgst -sha256 -hmac KEY gives.
    expect(await cluster.sql('SELECT token FROM public.tokens ORDER BY id', db)).toEqual([
      { token: createHmac('sha256', 'pinned-phone-key').update('tok-1').digest('hex') },
      { token: null },
    ]);
  });

  describe('a large table split into page ranges', () => {
    const PEOPLE = 30_000;
    const TABLES: Record<string, Record<string, MaskStrategy>> = {
      'public.people': { email: 'email', name: 'name', phone: 'phone' },
      'public.events': { email: 'email' },
      'public.tiny': { email: 'email' },
    };

    /**
     * people (about 370 pages) splits into two ranges with a minimum of 50 pages. events, a partitioned
     * table with more rows, is never split and goes first (biggest first), so with two connections the
     * second range of people starts only after the first one committed: the interleaving in which a
     * range that did not share the first one's snapshot would see, and mask again, the new row versions
     * the first one wrote at the end of the table.
     */
    async function splitSource(): Promise<string> {
      const name = 'splitsource';
      await cluster.sql(`CREATE DATABASE ${name}`);
      await cluster.sql(
        `CREATE TABLE public.people (id int PRIMARY KEY, email text UNIQUE, name text, phone text);
         INSERT INTO public.people SELECT g, 'person' || g || '@mail.example.org', 'Person Number ' || g,
           CASE WHEN g % 7 = 0 THEN NULL ELSE '+49 30 ' || (1000000 + g) END FROM generate_series(1, ${PEOPLE}) g;
         CREATE TABLE public.events (id int, email text) PARTITION BY RANGE (id);
         CREATE TABLE public.events_a PARTITION OF public.events FOR VALUES FROM (0) TO (60000);
         CREATE TABLE public.events_b PARTITION OF public.events FOR VALUES FROM (60000) TO (200000);
         INSERT INTO public.events SELECT g, 'event' || g || '@mail.example.org' FROM generate_series(1, 120000) g;
         CREATE TABLE public.tiny (id int PRIMARY KEY, email text UNIQUE);
         INSERT INTO public.tiny SELECT g, 't' || g || '@mail.example.org' FROM generate_series(1, 100) g;
         ANALYZE;`,
        name,
      );
      return name;
    }

    const maskSplit = (database: string, minChunkPages: number, tables = TABLES) =>
      maskCopy({
        mask: maskConfig(database, 'key-one', tables, 2),
        endpoint,
        sql: new PgConnector(),
        log: silentLogger(),
        signal: new AbortController().signal,
        minChunkPages,
      });

    /** Other sessions on the database, waiting up to 5 s for closed connections' backends to exit. */
    async function sessionsLeft(database: string): Promise<number> {
      for (let attempt = 0; ; attempt++) {
        const [row] = await cluster.sql<{ n: string }>(
          'SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
          database,
        );
        if (Number(row?.n) === 0 || attempt === 50) return Number(row?.n);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }

    const dump = async (database: string) =>
      (await cluster.sql<{ id: number; email: string; name: string; phone: string | null }>(
        'SELECT id, email, name, phone FROM public.people ORDER BY id',
        database,
      )) as Array<Record<string, unknown>>;

    let template: string;
    beforeAll(async () => {
      template = await splitSource();
    });

    it('masks every row exactly once, as one UPDATE would, on one shared snapshot', async () => {
      await cluster.sql('CREATE DATABASE split_copy TEMPLATE splitsource');
      await cluster.sql('CREATE DATABASE whole_copy TEMPLATE splitsource');
      // The snapshot session idles in its transaction while the ranges run; a server's timeout for that must not end it.
      await cluster.sql("ALTER DATABASE split_copy SET idle_in_transaction_session_timeout = '100ms'");
      const [{ pages } = { pages: '0' }] = await cluster.sql<{ pages: string }>(
        "SELECT pg_relation_size('public.people') / current_setting('block_size')::int AS pages",
        template,
      );
      expect(Number(pages)).toBeGreaterThanOrEqual(100);

      const split = await maskSplit('split_copy', 50);
      const whole = await maskSplit('whole_copy', 1_000_000);
      const tables = (record: typeof split) => new Map(record.databases[0]?.tables.map((t) => [t.table, t]));
      const people = tables(split).get('public.people');
      expect(people?.chunks).toBe(2);
      expect(people?.rows).toBe(PEOPLE);
      expect(people?.columns.map((c) => c.resampled?.unchanged)).toEqual([0, 0, 0]);
      expect(people?.columns.map((c) => c.resampled?.rows)).toEqual([20, 20, expect.any(Number)]);
      // The partitioned parent and the small table stay one statement each.
      expect(tables(split).get('public.events')?.chunks).toBeUndefined();
      expect(tables(split).get('public.events')?.rows).toBe(120_000);
      expect(tables(split).get('public.tiny')?.chunks).toBeUndefined();
      expect(tables(whole).get('public.people')?.chunks).toBeUndefined();
      expect(tables(whole).get('public.people')?.rows).toBe(PEOPLE);

      // A row masked twice or not at all would differ from the one-statement copy.
      const [splitRows, wholeRows, sourceRows] = await Promise.all([dump('split_copy'), dump('whole_copy'), dump(template)]);
      expect(splitRows).toHaveLength(PEOPLE);
      const different = splitRows.filter((row, i) => JSON.stringify(row) !== JSON.stringify(wholeRows[i]));
      expect(different).toEqual([]);
      expect(splitRows.filter((row, i) => row.email === sourceRows[i]?.email || row.name === sourceRows[i]?.name)).toEqual([]);

      const [state] = await cluster.sql<Record<string, string>>(
        `SELECT (SELECT count(DISTINCT email) FROM public.people) AS emails,
                (SELECT count(*) FROM pg_index WHERE NOT indisvalid) AS invalid_indexes`,
        'split_copy',
      );
      expect(state).toEqual({ emails: String(PEOPLE), invalid_indexes: '0' });
      expect(await sessionsLeft('split_copy')).toBe(0);
      // The unique index holds: a duplicate of a masked address is refused.
      await expect(
        cluster.sql('INSERT INTO public.people (id, email) SELECT 0, email FROM public.people WHERE id = 1', 'split_copy'),
      ).rejects.toThrow(/people_email_key/);
    });

    it('cancels every range on abort, ends the snapshot session, and commits nothing', async () => {
      await cluster.sql('CREATE DATABASE split_abort TEMPLATE splitsource');
      const controller = new AbortController();
      // About 1 ms per row (a sleep correlated with the row), so both ranges are still running when the abort comes.
      const slowName: MaskStrategy = { sql: "name || (SELECT '' FROM pg_sleep(0.001 + 0 * id))" };
      const masking = maskCopy({
        mask: maskConfig('split_abort', 'key-one', { 'public.people': { email: 'email', name: slowName } }, 2),
        endpoint,
        sql: new PgConnector(),
        log: silentLogger(),
        signal: controller.signal,
        minChunkPages: 50,
      }).then(
        () => new Error('masking was not stopped'),
        (e: unknown) => e as Error,
      );
      for (let attempt = 0; attempt < 300; attempt++) {
        const [row] = await cluster.sql<{ n: string }>(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = 'split_abort' AND state = 'active' AND query LIKE 'UPDATE%'",
        );
        if (Number(row?.n) === 2) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const aborted = Date.now();
      controller.abort(new Error('stopped by the test'));
      expect((await masking).message).toBe('stopped by the test');
      expect(Date.now() - aborted).toBeLessThan(5000);
      expect(await sessionsLeft('split_abort')).toBe(0);
      const [left] = await cluster.sql<{ n: string }>(
        "SELECT count(*) AS n FROM public.people WHERE email LIKE '%@mail.example.org'",
        'split_abort',
      );
      expect(left?.n).toBe(String(PEOPLE));
    });

    it('fails masking with the range and the cause when one range fails, and leaves no session behind', async () => {
      await cluster.sql('CREATE DATABASE split_fail TEMPLATE splitsource');
      const error = await maskSplit('split_fail', 50, {
        'public.people': { email: 'email', name: { sql: `CASE WHEN id = ${PEOPLE} THEN (1 / (id - id))::text ELSE name END` } },
      }).then(
        () => undefined,
        (e: unknown) => e as MaskError,
      );
      expect(error?.failureClass).toBe('masking-failed');
      expect(error?.message).toMatch(/^masking split_fail: public\.people failed: pages \d+–end: division by zero/);
      // The coordinator's snapshot session and both ranges' sessions are closed.
      expect(await sessionsLeft('split_fail')).toBe(0);
    });
  });

  it('re-samples tables without a primary key by looking for the sampled source values', async () => {
    const db = await freshCopy();
    await cluster.sql(
      `CREATE TABLE public.contacts_log (email text, note text);
       INSERT INTO public.contacts_log SELECT 'person' || i || '@corp.test', 'same ' || (i % 3) FROM generate_series(1, 50) i`,
      db,
    );
    const record = await mask(db, 'key-one', { 'public.contacts_log': { email: 'email', note: { sql: 'note' } } });
    const [table] = record.databases.flatMap((d) => d.tables);
    // email is masked: none of the 20 sampled addresses is left; the identity "mask" leaves every sampled value.
    expect(table?.columns.map((c) => c.resampled)).toEqual([
      { rows: 20, unchanged: 0 },
      { rows: 20, unchanged: 20 },
    ]);
  });

  it('reports every wrong table, column and type before any update', async () => {
    const db = await freshCopy();
    const bad: Record<string, Record<string, MaskStrategy>> = {
      'public.customers': { email: 'email', emial: 'email', birth_date: 'phone', id: 'null' },
      'public.orders': { amount: { dateShift: 5 } },
      'public.nothere': { x: 'hash' },
      'billing.cards': { pan: { constant: 'abc' }, holder: { sql: 'no_such_function(holder)' } },
    };
    const error = await maskFails(db, bad);
    expect(error.failureClass).toBe('masking-failed');
    const details = (error.details ?? []).join('\n');
    expect(details).toMatch(/copy\d+: public\.customers\.emial: no such column.*the table has id, email/);
    expect(details).toMatch(/public\.customers\.birth_date: phone needs a text column .* date/);
    expect(details).toMatch(/public\.customers\.id: null cannot be used: the column is NOT NULL/);
    expect(details).toMatch(/public\.orders\.amount: dateShift needs a date or timestamp column, but the column is numeric\(10,2\)/);
    expect(details).toMatch(/public\.nothere: no such table/);
    // email on customers without orders.customer_email breaks the foreign key.
    expect(details).toMatch(
      /foreign key orders_customer_email_fkey joins public\.customers\.email \(email\) to public\.orders\.customer_email, which is not masked/,
    );
    // Nothing changed.
    const [row] = await cluster.sql<{ email: string }>('SELECT email FROM public.customers WHERE id = 1', db);
    expect(row?.email).toBe('customer1@mail.example.org');
  });

  it('asks the server about sql and constant strategies before any update', async () => {
    const db = await freshCopy();
    const error = await maskFails(db, {
      'public.customers': { note: { sql: 'no_such_function(note)' } },
      'public.orders': { amount: { constant: 'not a number' } },
    });
    const details = (error.details ?? []).join('\n');
    expect(details).toMatch(
      /public\.customers: the masking statement is not valid for this table: function no_such_function\(text\) does not exist/,
    );
    expect(details).toMatch(/public\.orders: the masking statement is not valid .*invalid input syntax for type numeric/);
    const [row] = await cluster.sql<{ note: string }>('SELECT note FROM public.customers WHERE id = 1', db);
    expect(row?.note).toBe('called on 1');
  });

  it('says why a unique phone column collided: one number written two ways gives one fake', async () => {
    const db = await freshCopy();
    await cluster.sql(
      `CREATE TABLE public.contacts (id int PRIMARY KEY, phone text UNIQUE);
       INSERT INTO public.contacts VALUES (1, '555-123-4567'), (2, '(555) 123 4567'), (3, '+1 555 0000001')`,
      db,
    );
    const error = await maskFails(db, { 'public.contacts': { phone: 'phone' } });
    expect(error.failureClass).toBe('masking-failed');
    expect(error.message).toMatch(/public\.contacts failed: duplicate key value violates unique constraint "contacts_phone_key"/);
    // The detail names the fake, never the source value.
    expect(error.message).not.toMatch(/555-123-4567|\(555\) 123 4567/);
    expect(error.hint).toMatch(/phone keeps only the digits/);
    expect(error.hint).toMatch(/contacts_phone_key/);
    // Nothing was changed: the statement is one transaction.
    expect(await cluster.sql('SELECT phone FROM public.contacts ORDER BY id', db)).toEqual([
      { phone: '555-123-4567' },
      { phone: '(555) 123 4567' },
      { phone: '+1 555 0000001' },
    ]);
  });

  it('refuses a partition listed beside its partitioned table, which would mask its rows twice', async () => {
    const db = await freshCopy();
    await cluster.sql(
      `CREATE TABLE public.events (id int, at date, email text) PARTITION BY RANGE (at);
       CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
       INSERT INTO public.events SELECT g, '2024-03-01', 'customer' || g || '@mail.example.org' FROM generate_series(1, 50) g`,
      db,
    );
    const error = await maskFails(db, {
      'public.customers': { email: 'email' },
      'public.orders': { customer_email: 'email' },
      'public.events': { email: 'email' },
      'public.events_2024': { email: 'email' },
    });
    expect(error.failureClass).toBe('masking-failed');
    expect(error.details).toEqual([
      `${db}: public.events_2024: is a partition of public.events, which is masked too, so its rows would be masked twice; list the columns under public.events only (its UPDATE covers every partition), or list each partition instead of the partitioned table`,
    ]);
    // Refused before any update; listed alone, the partitioned table masks its partitions with the same fakes as customers.
    expect(await cluster.sql('SELECT count(*)::int AS n FROM public.events WHERE email LIKE $1', db, ['customer%'])).toEqual([{ n: 50 }]);
    await mask(db, 'key-one', {
      'public.customers': { email: 'email' },
      'public.orders': { customer_email: 'email' },
      'public.events': { email: 'email' },
    });
    const [row] = await cluster.sql<{ joined: number }>(
      'SELECT count(*)::int AS joined FROM public.events e JOIN public.customers c USING (email)',
      db,
    );
    expect(row?.joined).toBe(50);
  });

  it('refuses a strategy that would break a unique index', async () => {
    const db = await freshCopy();
    const error = await maskFails(db, {
      'public.customers': { email: { keepLast: 3 } },
      'public.orders': { customer_email: { keepLast: 3 } },
    });
    expect((error.details ?? []).join('\n')).toMatch(
      /public\.customers\.email: keepLast 3 gives equal values for different inputs, but the column is in unique index customers_email_key/,
    );
  });

  it('coverage: finds unmasked personal columns by name and by sampled values, with a fixed number of queries', async () => {
    const db = await freshCopy();
    const ibans = Array.from({ length: 30 }, (_, i) => ibanWithCheckDigits('DE', `3704004405320${String(13000 + i).padStart(5, '0')}`));
    await cluster.sql(
      `CREATE TABLE public.leads (id int PRIMARY KEY, contact text, remarks text);
       INSERT INTO public.leads SELECT g, 'lead' || g || '@prospects.example.net', CASE WHEN g % 2 = 0 THEN 'reach me at l' || g || '@x.example.com' ELSE 'no contact' END FROM generate_series(1, 200) g;
       CREATE TABLE billing.transfers (id int PRIMARY KEY, account text, ref bigint) WITH (autovacuum_enabled = false);
       ANALYZE public.leads;`,
      db,
    );
    // Luhn-valid 16-digit numbers in a bigint column of a table that has no statistics.
    await cluster.sql(
      'INSERT INTO billing.transfers SELECT i, a, 4000000000000002 + 0 * i FROM unnest($1::text[]) WITH ORDINALITY AS u(a, i)',
      db,
      [ibans],
    );
    await mask(db);
    const coverage = await coverageOf(db);
    expect(coverage.findings.map((f) => [`${f.table}.${f.column}`, f.rules])).toEqual([
      ['billing.transfers.account', ['values:iban']],
      ['billing.transfers.ref', ['values:card']],
      ['public.leads.contact', ['values:email']],
      ['public.leads.remarks', ['values:email-in-text']],
    ]);
    const contact = coverage.findings.find((f) => f.column === 'contact');
    expect(contact?.evidence).toMatch(/^\d+ of \d+ sampled values are e-mail addresses$/);
    // The statistics query, plus one read of the table that was never analysed.
    expect(coverage.queries).toBe(2);
    expect(coverage.ok).toBe(false);
    const checks = coverageChecks(coverage);
    expect(checks.every((c) => !c.ok && c.severity === 'error')).toBe(true);
    expect(coverageChecks({ ...coverage, mode: 'warn' }).every((c) => c.severity === 'warning')).toBe(true);

    // products.name matches a name rule; without the allow entry it is a finding.
    const strict = await coverageOf(db, { allow: [] });
    expect(strict.findings.find((f) => f.table === 'public.products')?.rules).toEqual(['name:name']);
  });

  it('coverage: no finding for columns whose type cannot hold what their name says, nor for generated columns', async () => {
    const db = await freshCopy();
    await cluster.sql(
      `CREATE TABLE public.addresses (id int PRIMARY KEY);
       CREATE TABLE public.accounts (id int PRIMARY KEY, email text, email_lower text GENERATED ALWAYS AS (lower(email)) STORED,
                                     email_verified boolean, address_id int REFERENCES public.addresses, phone_confirmed_at timestamptz,
                                     mobile bigint, birth date);
       INSERT INTO public.addresses SELECT generate_series(1, 100);
       INSERT INTO public.accounts (id, email, email_verified, address_id, phone_confirmed_at, mobile, birth)
         SELECT g, 'User' || g || '@Corp.example.org', true, g, now(), 4915112345000 + g, date '1980-01-01' + g FROM generate_series(1, 100) g;
       ANALYZE public.addresses, public.accounts;`,
      db,
    );
    const tables: Record<string, Record<string, MaskStrategy>> = { ...STANDARD, 'public.accounts': { email: 'email' } };
    await mask(db, 'key-one', tables);
    const coverage = await coverageOf(db, { tables });
    // A phone number may be stored as a number, a birth date as a date: those still are findings.
    expect(coverage.findings.filter((f) => f.table === 'public.accounts').map((f) => [f.column, f.rules])).toEqual([
      ['birth', ['name:birth']],
      ['mobile', ['name:phone']],
    ]);
  });

  it('coverage: reads long free text that the statistics hold no values of, JSON, and North American phone numbers', async () => {
    const db = await freshCopy();
    await cluster.sql(
      `CREATE TABLE public.tickets (id int PRIMARY KEY, body text, payload jsonb, caller text, topic text);
       INSERT INTO public.tickets SELECT g,
         repeat('The printer on floor 3 is broken again. ', 30) || 'Please reply to user' || g || '@corp.example.org',
         jsonb_build_object('email', 'j' || g || '@corp.example.org'),
         CASE g % 3 WHEN 0 THEN '(415) 555-' WHEN 1 THEN '415-555-' ELSE '415.555.' END || lpad(g::text, 4, '0'),
         repeat('nothing personal here ', 60)
       FROM generate_series(1, 300) g;
       ANALYZE public.tickets;`,
      db,
    );
    await mask(db);
    const coverage = await coverageOf(db);
    // body and topic are over 1 kB, so ANALYZE kept none of their values: both are read from the table.
    expect(coverage.findings.filter((f) => f.table === 'public.tickets').map((f) => [f.column, f.rules])).toEqual([
      ['body', ['values:email-in-text']],
      ['caller', ['values:phone']],
      ['payload', ['values:email-in-text']],
    ]);
  });

  it('masks and allows tables and columns whose names have spaces, written bare or quoted in the config', async () => {
    const db = await freshCopy();
    await cluster.sql(
      `CREATE TABLE public."Customer Data" (id int PRIMARY KEY, "First Name" text, mail text, "Contact Mail" text);
       INSERT INTO public."Customer Data" SELECT g, 'Person ' || g, 'p' || g || '@mail.example.org', 'c' || g || '@mail.example.org'
       FROM generate_series(1, 50) g;
       ANALYZE public."Customer Data";`,
      db,
    );
    const parsed = maskSchema.parse({
      key: { env: 'MASK_KEY' },
      databases: { [db]: { ...STANDARD, 'public."Customer Data"': { 'First Name': 'name', mail: 'email' } } },
      allow: ['public.products.name', 'public."Customer Data"."Contact Mail"'],
    });
    const tables = parsed.databases[db] ?? {};
    await mask(db, 'key-one', tables);
    const [row] = await cluster.sql<{ same: number }>(
      `SELECT count(*)::int AS same FROM public."Customer Data" WHERE "First Name" LIKE 'Person %' OR mail LIKE 'p%@mail.example.org'`,
      db,
    );
    expect(row?.same).toBe(0);
    const coverage = await coverageOf(db, { tables, allow: parsed.allow });
    expect(coverage.findings.filter((f) => f.table === 'public.Customer Data')).toEqual([]);
  });

  it('coverage: a column the checking role may not read is a finding that says so, not a permission error', async () => {
    const db = await freshCopy();
    await cluster.sql(
      `CREATE TABLE public.vault (id int PRIMARY KEY, contact text, label text);
       INSERT INTO public.vault SELECT g, 'v' || g || '@vault.example.net', 'x' FROM generate_series(1, 50) g;
       ANALYZE public.vault;
       CREATE ROLE checker LOGIN PASSWORD 'checker-pw';
       GRANT USAGE ON SCHEMA public, billing TO checker;
       GRANT SELECT ON ALL TABLES IN SCHEMA public, billing TO checker;
       REVOKE SELECT ON public.vault FROM checker;
       GRANT SELECT (id) ON public.vault TO checker;`,
      db,
    );
    await mask(db);
    const asChecker = (database: string): PgEndpoint => ({
      ...endpoint(database),
      user: 'checker',
      password: new Secret('checker-pw', 'test'),
    });
    const coverage = await coverageOf(db, { allow: [], as: asChecker });
    const vault = coverage.findings.filter((f) => f.table === 'public.vault');
    expect(vault.map((f) => [f.column, f.rules])).toEqual([
      ['contact', ['unreadable']],
      ['label', ['unreadable']],
    ]);
    expect(vault[0]?.evidence).toContain('the role "checker" may not read this column');
    expect(coverage.ok).toBe(false);
    // Masked or allowed columns it cannot read are not findings: masking ran as the superuser.
    const allowed = await coverageOf(db, { allow: ['public.vault.contact', 'public.vault.label'], as: asChecker });
    expect(allowed.findings.filter((f) => f.table === 'public.vault')).toEqual([]);
  });

  it('coverage: the query count does not grow with the number of tables', async () => {
    const db = await freshCopy();
    await cluster.sql(
      `DO $$ BEGIN FOR i IN 1..300 LOOP
         EXECUTE format('CREATE TABLE public.t%s (id int PRIMARY KEY, label text, mail text)', i);
         -- Two rows: ANALYZE keeps values (most common, histogram) only from two rows on; a one-row table is read directly.
         EXECUTE format('INSERT INTO public.t%s VALUES (1, %L, %L), (2, %L, %L)', i, 'x', 'someone' || i || '@example.org', 'x', 'other' || i || '@example.org');
       END LOOP; END $$; ANALYZE;`,
      db,
    );
    await mask(db);
    const coverage = await coverageOf(db, { allow: [] });
    expect(coverage.tables).toBe(304);
    expect(coverage.queries).toBe(1);
    expect(coverage.findings.filter((f) => f.column === 'mail')).toHaveLength(300);
  });
});
