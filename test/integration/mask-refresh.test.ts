import { tmpdir } from 'node:os';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { privateSocketDir } from '../../src/targets/local/private-start.js';
import { queryCopy } from '../support/copy-queries.js';
import { dataDirOf, freePort, LocalHarness } from '../support/local-harness.js';
import { loadPersonalData, maskedCrmJobYaml, maskedJobEnv } from '../support/personal-data.js';

/**
 * Masking through the real runner and local target: a source with personal
 * data in database `crm`, refreshed into a local copy with a mask section.
 * Masking runs in the private window (the copy's superuser on its private
 * Unix socket), between prepare and open; the coverage check runs in verify
 * on the open copy as the source's superuser (the SQL role of these jobs).
 */

let harness: LocalHarness;
let targetPort: number;
const KEY = 'mask-key-0f3c9a7e';
const CUSTOMERS = 300;

beforeAll(async () => {
  harness = await LocalHarness.start();
  targetPort = await freePort();
  await loadPersonalData(harness.source, 'crm', CUSTOMERS);
});

afterAll(async () => {
  await harness?.destroy();
});

function env(key = KEY): NodeJS.ProcessEnv {
  return maskedJobEnv(harness, key);
}

function job(extra = '', coverage = 'fail') {
  return maskedCrmJobYaml(harness, targetPort, { allow: '[public.products.name, app.public.users.email]', coverage, extra });
}

const copy = <Row extends Record<string, unknown>>(text: string) =>
  queryCopy<Row>(targetPort, harness.source.superuserPassword, text, { user: 'postgres', database: 'crm' });

describe('local refresh with masking', () => {
  let firstEmails: string;

  it('masks the copy in the private window before it opens, records it, and keeps the key out of logs and records', async () => {
    const run = await harness.run(harness.config(job(), env()));
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
    const phase = (name: string) => run.phases.find((p) => p.name === name);
    // The copy started privately and opened only after masking ended.
    expect(phase('start')?.detail).toMatchObject({ private: true });
    expect(Date.parse(phase('mask')?.finishedAt ?? '')).toBeLessThanOrEqual(Date.parse(phase('open')?.startedAt ?? ''));
    expect(run.masking).toMatchObject({ tables: 3, columns: 9, rows: CUSTOMERS * 4 });
    expect(run.masking?.databases[0]?.tables.map((t) => [t.table, t.rows, t.columns.map((c) => c.strategy)])).toEqual([
      ['billing.cards', CUSTOMERS, ['keepLast 4', 'name']],
      ['public.customers', CUSTOMERS, ['email', 'name', 'phone', 'dateShift ±30 days', 'redact']],
      ['public.orders', CUSTOMERS * 2, ['email', `sql '(comment removed)'`]],
    ]);
    expect(run.verification?.coverage).toMatchObject({ mode: 'fail', ok: true, findings: [] });
    // Every database of the copy (crm, app, postgres), a fixed number of queries each, whatever their tables.
    expect(run.verification?.coverage?.queries).toBeLessThanOrEqual(3 * 2);
    expect(run.verification?.checks.find((c) => c.name === 'masking coverage')?.ok).toBe(true);

    const [masked] = await copy<{ leaked: string; joined: string; emails: string }>(
      `SELECT (SELECT count(*) FROM public.customers WHERE email LIKE '%@mail.example.org') AS leaked,
              (SELECT count(*) FROM public.orders o JOIN public.customers c ON c.email = o.customer_email) AS joined,
              (SELECT string_agg(email, ',' ORDER BY id) FROM public.customers) AS emails`,
    );
    expect(masked).toMatchObject({ leaked: '0', joined: String(CUSTOMERS * 2) });
    firstEmails = masked?.emails ?? '';

    const everything = `${harness.logLines.join('\n')}\n${JSON.stringify(run)}`;
    expect(everything).not.toContain(KEY);
  });

  it('a second refresh under the same key gives the same values', async () => {
    const run = await harness.run(harness.config(job(), env()));
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    const [row] = await copy<{ emails: string }>("SELECT string_agg(email, ',' ORDER BY id) AS emails FROM public.customers");
    expect(row?.emails).toBe(firstEmails);
  });

  it('an unlisted column of e-mails fails the run under coverage: fail, and only warns under warn', async () => {
    await harness.source.sql(
      `CREATE TABLE public.leads (id int PRIMARY KEY, contact text);
       INSERT INTO public.leads SELECT g, 'lead' || g || '@prospects.example.net' FROM generate_series(1, 100) g;
       ANALYZE public.leads;`,
      'crm',
    );
    const failed = await harness.run(harness.config(job(), env()));
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatchObject({ phase: 'verify', class: 'verification-failed' });
    expect(failed.error?.details?.join('\n')).toMatch(
      /masking coverage: crm: public\.leads\.contact: looks personal and is neither masked nor allowed \(values:email\): \d+ of \d+ sampled values are e-mail addresses/,
    );
    expect(failed.verification?.coverage?.findings.map((f) => `${f.table}.${f.column}`)).toEqual(['public.leads.contact']);

    const warned = await harness.run(harness.config(job('', 'warn'), env()));
    expect(warned.status, JSON.stringify(warned.error)).toBe('succeeded');
    expect(warned.verification?.coverage).toMatchObject({ mode: 'warn', ok: false });
    expect(warned.verification?.checks.find((c) => c.name.includes('public.leads.contact'))).toMatchObject({
      ok: false,
      severity: 'warning',
    });
  });

  it('a wrong column is reported before any update runs, and the unmasked copy stays closed', async () => {
    const yaml = job().replace('full_name: name', 'fullname: name').replace('coverage: fail', 'coverage: off');
    const config = harness.config(yaml, env());
    const run = await harness.run(config);
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ phase: 'mask', class: 'masking-failed' });
    expect(run.error?.details).toContain(
      'crm: public.customers.fullname: no such column; the table has id, email, full_name, phone, birth_date, note',
    );
    expect(run.phases.find((p) => p.name === 'open')?.status).not.toBe('succeeded');
    // Nobody reaches the unmasked copy on its port.
    await expect(copy('SELECT 1')).rejects.toThrow(/ECONNREFUSED/);
    // Nothing was masked: through the private socket the copy still holds the source's values.
    const client = new pg.Client({
      host: privateSocketDir(dataDirOf(config), tmpdir()),
      port: targetPort,
      user: 'postgres',
      database: 'crm',
    });
    await client.connect();
    try {
      const { rows } = await client.query<{ email: string }>('SELECT email FROM public.customers WHERE id = 1');
      expect(rows[0]?.email).toBe('customer1@mail.example.org');
    } finally {
      await client.end();
    }
  });
});
