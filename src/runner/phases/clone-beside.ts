import { PhaseFailure } from '../../errors.js';
import { isBlueGreen } from './blue-green.js';
import type { Phase } from './phase.js';

/** blueGreen: finishes an interrupted swap, clears the slot of the new copy, and clones into it while the current copy serves. */
export const cloneBeside: Phase = {
  name: 'clone-beside',
  changesTarget: false,
  runsInDryRun: false,
  resumable: { local: false, cnpg: false },
  appliesTo: (job, operation) => operation === 'refresh' && job.strategy.kind === 'blueGreen',
  plan: (_job, target) => target.steps.clone,
  run: async (ctx) => {
    if (!isBlueGreen(ctx.target)) throw new PhaseFailure('unknown', 'this target cannot clone beside the current copy');
    return { ok: true, detail: await ctx.target.cloneBeside(ctx.targetContext) };
  },
};
