import type { Phase } from './phase.js';

/** Stops and removes the current copy; the target re-checks its safety rails first. */
export const teardown: Phase = {
  name: 'teardown',
  changesTarget: true,
  runsInDryRun: false,
  resumable: { local: false, cnpg: false },
  // blueGreen keeps the current copy and clones beside it (clone-beside).
  appliesTo: (job, operation) => operation === 'refresh' && job.strategy.kind === 'recreate',
  plan: (_job, target) => target.steps.teardown,
  run: async (ctx) => ({ ok: true, detail: await ctx.target.teardown(ctx.targetContext) }),
};
