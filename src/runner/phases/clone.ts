import type { Phase } from './phase.js';

/** Makes a new physical copy of the source. */
export const clone: Phase = {
  name: 'clone',
  changesTarget: true,
  runsInDryRun: false,
  resumable: { local: false, cnpg: false },
  // blueGreen keeps the current copy and clones beside it (clone-beside).
  appliesTo: (job, operation) => operation === 'refresh' && job.strategy.kind === 'recreate',
  plan: (_job, target) => target.steps.clone,
  run: async (ctx) => ({ ok: true, detail: await ctx.target.clone(ctx.targetContext) }),
};
