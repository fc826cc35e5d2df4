import type { Phase } from './phase.js';

/** Starts the copy and waits until it accepts connections. */
export const start: Phase = {
  name: 'start',
  changesTarget: true,
  runsInDryRun: false,
  // Local: pg_ctl start is idempotent. CNPG: waiting for the new Cluster to become healthy only watches it.
  resumable: { local: true, cnpg: true },
  plan: (_job, target) => target.steps.start,
  run: async (ctx) => ({ ok: true, detail: await ctx.target.start(ctx.targetContext) }),
};
