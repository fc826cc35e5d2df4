import { PhaseFailure } from '../../errors.js';
import { isBlueGreen } from './blue-green.js';
import type { Phase } from './phase.js';

/** blueGreen: with keepPrevious 0 the previous copy goes now; otherwise the record says until when it is kept for rollback. */
export const cleanupPrevious: Phase = {
  name: 'cleanup-previous',
  changesTarget: true,
  runsInDryRun: false,
  resumable: { local: true, cnpg: true },
  appliesTo: (job, operation) => operation === 'refresh' && job.strategy.kind === 'blueGreen',
  plan: (job) =>
    job.strategy.kind === 'blueGreen' && job.strategy.keepPreviousSeconds === 0
      ? 'remove the previous copy (keepPrevious: 0)'
      : `keep the previous copy for ${job.strategy.kind === 'blueGreen' ? job.strategy.keepPrevious : ''} for rollback; the service removes it afterwards`,
  run: async (ctx) => {
    if (!isBlueGreen(ctx.target)) throw new PhaseFailure('unknown', 'this target keeps no previous copy');
    return { ok: true, detail: await ctx.target.cleanupPrevious(ctx.targetContext) };
  },
};
