import { PhaseFailure } from '../../errors.js';
import { isBlueGreen } from './blue-green.js';
import type { Phase } from './phase.js';

/** A rollback run's only phase: switches clients back to the previous copy while it is kept. */
export const rollback: Phase = {
  name: 'rollback',
  changesTarget: true,
  runsInDryRun: false,
  resumable: { local: true, cnpg: true },
  appliesTo: (_job, operation) => operation === 'rollback',
  plan: () => 'switch clients back to the previous copy; the current one becomes the previous copy',
  run: async (ctx) => {
    if (!isBlueGreen(ctx.target))
      throw new PhaseFailure(
        'unsafe-target',
        `job "${ctx.job.name}" uses strategy ${ctx.job.strategy.kind}; only blueGreen keeps a previous copy to roll back to`,
      );
    return { ok: true, detail: await ctx.target.rollback(ctx.targetContext) };
  },
};
