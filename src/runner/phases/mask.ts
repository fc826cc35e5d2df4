import type { PgEndpoint } from '../../config/types.js';
import { PhaseFailure } from '../../errors.js';
import { maskCopy } from '../../mask/masker.js';
import { describeMaskConfig } from '../../mask/plan.js';
import { copyAccess } from '../../safe-copy/phases.js';
import type { Phase, PhaseRun } from './phase.js';

/**
 * Masks personal data in the copy (src/mask) inside the private window, after
 * `prepare` and before `open`: nobody but db-refresher can read the copy until
 * it is masked. A run paused before this phase may go on here; a run whose
 * masking was cut off may not: some tables would be masked and others not,
 * and masking a value twice gives another value, so that run fails and the
 * next run makes a fresh copy (which stays closed to everyone but
 * db-refresher until then).
 */
export const mask: Phase = {
  name: 'mask',
  changesTarget: true,
  runsInDryRun: false,
  resumable: { local: true, cnpg: true },
  plan: (job) => {
    if (!job.mask) return 'nothing: the job has no mask section';
    const columns = describeMaskConfig(job.mask.databases).length;
    return `check the ${columns} masked column${columns === 1 ? '' : 's'} (listed below) against the copy's catalog, then mask them with one set-based UPDATE per table, up to ${job.mask.parallel} tables at once, triggers and foreign-key checks off for the masking sessions only; ANALYZE each masked table; then REFRESH (and ANALYZE) every populated materialized view that reads a masked table, a view after the views it reads`;
  },
  async run(ctx) {
    const { job } = ctx;
    if (!job.mask) return { ok: true, detail: { skipped: 'the job has no mask section' } };
    const before = ctx.record.phases.find((p) => p.name === 'mask');
    if (before?.reason?.startsWith('restarted after an interruption')) {
      return {
        ok: false,
        failure: new PhaseFailure(
          'masking-failed',
          'masking was interrupted part-way; the copy may be partly masked and is not masked again',
          {
            hint: 'Run the job again: it makes a fresh copy and masks it from the start. Until then the copy stays as it is.',
          },
        ),
      };
    }
    const masking = await maskCopy({
      mask: job.mask,
      endpoint: await maskingEndpoint(ctx),
      sql: ctx.sql,
      log: ctx.targetContext.log,
      signal: ctx.signal,
      progress: (detail) => ctx.targetContext.progress(detail),
    });
    return {
      ok: true,
      patch: { masking },
      detail: {
        tables: masking.tables,
        columns: masking.columns,
        rows: masking.rows,
        parallel: masking.parallel,
        refreshedViews: masking.databases.reduce((n, d) => n + d.refreshedViews.length, 0),
      },
    };
  },
};

/** The private window's door when the target has one (the copy is not open yet), else the target's own endpoint. */
async function maskingEndpoint(ctx: PhaseRun): Promise<(database: string) => PgEndpoint> {
  if (!ctx.target.privateAccess) return (database) => ctx.target.endpoint(database);
  const access = await copyAccess(ctx, ctx.targetContext);
  return (database) => access.endpoint(database);
}
