import { describeNeutralisation } from '../../safe-copy/neutralise-sql.js';
import { neutralisePhase } from '../../safe-copy/phases.js';
import type { Phase } from './phase.js';

/**
 * Switches off what a physical clone carries over from production
 * (src/safe-copy): synchronous standby names, production ALTER SYSTEM settings,
 * subscriptions, pg_cron jobs and, opt-in, passwords. Runs in the private
 * window; doing it again finds nothing left to do, so it can be redone.
 */
export const neutralise: Phase = {
  name: 'neutralise',
  changesTarget: true,
  runsInDryRun: false,
  resumable: { local: true, cnpg: true },
  plan: (job) => describeNeutralisation(job.neutralise).join('; ') || 'nothing (neutralise: false)',
  run: async (ctx) => ({ ok: true, detail: await neutralisePhase(ctx, ctx.targetContext) }),
};
