import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryCopy } from '../support/copy-queries.js';
import { freePort, LocalHarness } from '../support/local-harness.js';
import { loadPersonalData, maskedCrmJobYaml, maskedJobEnv } from '../support/personal-data.js';

/**
 * A local refresh with masking, end to end, and what the copy still holds
 * besides the masked tables:
 * - the coverage check reads every database of the copy: a physical copy holds
 *   them all, so a database the job neither verifies nor masks is still opened
 *   to the copy's users with whatever it holds;
 * - a materialized view over a masked table is refreshed from the fakes.
 */

let harness: LocalHarness;
let targetPort: number;

beforeAll(async () => {
  harness = await LocalHarness.start();
  targetPort = await freePort();
  await loadPersonalData(harness.source, 'crm', 50);
  await harness.source.sql('CREATE MATERIALIZED VIEW public.customer_contacts AS SELECT id, email FROM public.customers', 'crm');
  await harness.source.sql('CREATE DATABASE legacy');
  await harness.source.sql(
    `CREATE TABLE public.subscribers (id int PRIMARY KEY, email text);
     INSERT INTO public.subscribers SELECT g, 'subscriber' || g || '@mail.example.org' FROM generate_series(1, 100) g;
     ANALYZE public.subscribers;`,
    'legacy',
  );
});

afterAll(async () => {
  await harness?.destroy();
});

function job(coverage: string, allow = '[public.products.name]') {
  return maskedCrmJobYaml(harness, targetPort, { allow, coverage });
}

const env = () => maskedJobEnv(harness, 'mask-key-databases');

describe('coverage: every database of the copy', () => {
  it('fails the run for personal data in a database the job neither verifies nor masks', async () => {
    const run = await harness.run(harness.config(job('fail'), env()));
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ phase: 'verify', class: 'verification-failed' });
    const found = run.verification?.coverage?.findings.map((f) => `${f.database}: ${f.table}.${f.column} ${f.rules.join(',')}`);
    // The harness's source also has an app database (with users.email), which the job does not name either.
    expect(found).toEqual(['app: public.users.email name:email,values:email', 'legacy: public.subscribers.email name:email,values:email']);
  });

  it('passes once the column is allowed with its database', async () => {
    const run = await harness.run(
      harness.config(job('fail', '[public.products.name, app.public.users.email, legacy.public.subscribers.email]'), env()),
    );
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(run.verification?.coverage?.findings).toEqual([]);
  });
});

describe('a materialized view over a masked table', () => {
  it('holds the masked e-mails in the opened copy', async () => {
    const yaml = maskedCrmJobYaml(harness, targetPort, {
      allow: '[public.products.name, app.public.users.email, legacy.*.*.*]',
      coverage: 'fail',
    });
    const run = await harness.run(harness.config(yaml, maskedJobEnv(harness, 'mask-key-review-16')));
    const rows = await queryCopy<{ same: boolean; source: number }>(
      targetPort,
      harness.source.superuserPassword,
      `SELECT bool_and(v.email = c.email) AS same, count(*) FILTER (WHERE v.email LIKE '%mail.example.org')::int AS source
       FROM public.customer_contacts v JOIN public.customers c USING (id)`,
      { user: 'postgres', database: 'crm' },
    );
    expect(rows[0]).toEqual({ same: true, source: 0 });
    expect(run.masking?.databases.find((d) => d.database === 'crm')?.refreshedViews.map((v) => v.view)).toEqual([
      'public.customer_contacts',
    ]);
    expect(run.verification?.coverage?.findings ?? []).toEqual([]);
    expect(run.status).toBe('succeeded');
  });
});
