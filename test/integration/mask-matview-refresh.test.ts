import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryCopy } from '../support/copy-queries.js';
import { freePort, LocalHarness } from '../support/local-harness.js';
import { loadPersonalData, PERSONAL_MASK_YAML } from '../support/personal-data.js';

/**
 * Review of issue #16, end to end through a local refresh: a materialized
 * view over a masked table opened to testers with the source's e-mails.
 * It must hold the fakes (the mask phase refreshes it) and pass coverage.
 */

let harness: LocalHarness;
let targetPort: number;

beforeAll(async () => {
  harness = await LocalHarness.start();
  targetPort = await freePort();
  await loadPersonalData(harness.source, 'crm', 50);
  await harness.source.sql('CREATE MATERIALIZED VIEW public.customer_contacts AS SELECT id, email FROM public.customers', 'crm');
});

afterAll(async () => {
  await harness?.destroy();
});

describe('a materialized view over a masked table, end to end', () => {
  it('holds the masked e-mails in the opened copy', async () => {
    const yaml =
      harness.jobYaml({
        targetPort,
        source: `      password: { env: SOURCE_PASSWORD }
      sql: { user: postgres, password: { env: PG_SUPER } }`,
        verify: `      databases:
        - name: crm`,
      }) + PERSONAL_MASK_YAML('crm', '      allow: [public.products.name, app.public.users.email]\n      coverage: fail\n');
    const run = await harness.run(
      harness.config(yaml, { ...harness.env, MASK_KEY: 'mask-key-review-16', PG_SUPER: harness.source.superuserPassword }),
    );
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
