import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, LocalHarness } from '../support/local-harness.js';
import { loadPersonalData, PERSONAL_MASK_YAML } from '../support/personal-data.js';

/**
 * The coverage check reads every database of the copy: a physical copy holds
 * them all, so a database the job neither verifies nor masks is still opened
 * to the copy's users with whatever it holds.
 */

let harness: LocalHarness;
let targetPort: number;

beforeAll(async () => {
  harness = await LocalHarness.start();
  targetPort = await freePort();
  await loadPersonalData(harness.source, 'crm', 50);
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
  return (
    harness.jobYaml({
      targetPort,
      source: `      password: { env: SOURCE_PASSWORD }
      sql: { user: postgres, password: { env: PG_SUPER } }`,
      verify: `      databases:
        - name: crm`,
    }) + PERSONAL_MASK_YAML('crm', `      allow: ${allow}\n      coverage: ${coverage}\n`)
  );
}

const env = () => ({ ...harness.env, MASK_KEY: 'mask-key-databases', PG_SUPER: harness.source.superuserPassword });

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
