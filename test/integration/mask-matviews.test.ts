import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox, type SandboxCluster } from '../../scripts/pg-sandbox.js';
import { Secret } from '../../src/config/secret.js';
import type { MaskConfig, PgEndpoint } from '../../src/config/types.js';
import { checkCoverage, coverageChecks } from '../../src/mask/coverage.js';
import { maskCopy } from '../../src/mask/masker.js';
import { silentLogger } from '../../src/observe/logger.js';
import { PgConnector } from '../../src/postgres/sql.js';
import { personalDataSql } from '../support/personal-data.js';
import { superuserEndpoint } from '../support/sandbox-endpoint.js';

/**
 * Materialized views on real PostgreSQL: a physical copy holds them as the
 * source filled them, so masking must refresh those that read masked tables
 * (a view over a view after it), and the coverage check must look at them.
 */

let sandbox: Sandbox;
let cluster: SandboxCluster;
const DB = 'app';

const endpoint = (database: string): PgEndpoint => superuserEndpoint(cluster, database);

const mask = {
  key: new Secret('matview-key', 'test'),
  databases: { [DB]: { 'public.customers': { email: 'email', full_name: 'name' }, 'public.orders': { customer_email: 'email' } } },
  allow: ['public.products.name', 'billing.cards.holder', 'billing.cards.pan', 'public.customers.phone', 'public.customers.birth_date'],
  coverage: 'fail',
  parallel: 2,
  sampleRows: 20,
} as MaskConfig;

beforeAll(async () => {
  sandbox = Sandbox.create('dbr-mask-mv-');
  cluster = await sandbox.createCluster({ name: 'pg' });
  await cluster.sql(`CREATE DATABASE ${DB}`);
  await cluster.sql(personalDataSql(300), DB);
  await cluster.sql(
    `-- Named so that refreshing by name alone would refresh contact_emails before the view it reads.
     CREATE MATERIALIZED VIEW public.customer_contacts AS SELECT id, email, full_name FROM public.customers;
     CREATE MATERIALIZED VIEW public.contact_emails AS SELECT id, email FROM public.customer_contacts;
     CREATE VIEW public.contact_view AS SELECT id, email FROM public.contact_emails;
     CREATE MATERIALIZED VIEW public.contact_domains AS SELECT id, email, split_part(email, '@', 2) AS domain FROM public.contact_view;
     CREATE MATERIALIZED VIEW public.cold_contacts AS SELECT id, email FROM public.customers WITH NO DATA;
     CREATE TABLE public.leads (id int PRIMARY KEY, contact text);
     INSERT INTO public.leads SELECT g, 'lead' || g || '@prospects.example.net' FROM generate_series(1, 100) g;
     CREATE MATERIALIZED VIEW public.lead_contacts AS SELECT id, contact FROM public.leads;
     ANALYZE;`,
    DB,
  );
});

afterAll(async () => {
  await sandbox?.destroy();
});

describe('materialized views and masking', () => {
  it('refreshes the populated materialized views that read masked tables, a view after the views it reads; coverage finds the one over an unmasked column', async () => {
    const record = await maskCopy({ mask, endpoint, sql: new PgConnector(), log: silentLogger(), signal: new AbortController().signal });
    expect(record.databases[0]?.refreshedViews.map((v) => v.view)).toEqual([
      'public.customer_contacts',
      'public.contact_emails',
      'public.contact_domains',
    ]);

    // Every view holds exactly the base table's fakes, and no source value, in its rows or its statistics.
    const [state] = await cluster.sql<Record<string, string>>(
      `SELECT (SELECT count(*) FROM public.customer_contacts v JOIN public.customers c USING (id) WHERE v.email = c.email AND v.full_name = c.full_name) AS contacts,
              (SELECT count(*) FROM public.contact_emails v JOIN public.customers c USING (id) WHERE v.email = c.email) AS emails,
              (SELECT count(*) FROM public.contact_domains v JOIN public.customers c USING (id) WHERE v.email = c.email AND v.domain = 'example.com') AS domains,
              (SELECT count(*) FROM public.customer_contacts WHERE email LIKE '%mail.example.org' OR full_name LIKE 'Customer Person%') AS source_rows,
              (SELECT count(*) FROM pg_stats WHERE tablename IN ('customer_contacts', 'contact_emails', 'contact_domains')
                 AND (most_common_vals::text LIKE '%mail.example.org%' OR histogram_bounds::text LIKE '%mail.example.org%')) AS source_stats,
              (SELECT count(*) FROM pg_stats WHERE tablename = 'contact_domains' AND attname = 'email') AS domain_stats,
              (SELECT relispopulated::text FROM pg_class WHERE relname = 'cold_contacts') AS cold_populated`,
      DB,
    );
    expect(state).toEqual({
      contacts: '300',
      emails: '300',
      domains: '300',
      source_rows: '0',
      source_stats: '0',
      domain_stats: '1',
      cold_populated: 'false',
    });

    const coverage = await checkCoverage({ mask, databases: [DB], endpoint, sql: new PgConnector() });
    expect(coverage.findings.map((f) => `${f.table}.${f.column}`)).toEqual(['public.lead_contacts.contact', 'public.leads.contact']);
    expect(coverage.findings[0]?.materializedView).toBe(true);
    const check = coverageChecks(coverage).find((c) => c.name.endsWith('public.lead_contacts.contact'));
    expect(check?.message).toMatch(
      /public\.lead_contacts is a materialized view, which cannot be masked itself: mask the column of the table it reads from/,
    );
  });

  it('a materialized view listed under mask.databases is refused with advice to mask the tables it reads', async () => {
    const error = await maskCopy({
      mask: { ...mask, databases: { [DB]: { 'public.customer_contacts': { email: 'email' } } } } as MaskConfig,
      endpoint,
      sql: new PgConnector(),
      log: silentLogger(),
      signal: new AbortController().signal,
    }).catch((e: unknown) => e as Error & { details?: string[] });
    expect(error).toBeInstanceOf(Error);
    expect((error as { details?: string[] }).details?.join('\n')).toMatch(
      /public\.customer_contacts: is a materialized view, not a table; mask the columns of the tables it reads from instead: after masking, db-refresher refreshes every materialized view that reads a masked table/,
    );
  });
});
