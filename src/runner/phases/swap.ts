import { PhaseFailure } from '../../errors.js';
import { isBlueGreen } from './blue-green.js';
import type { Phase } from './phase.js';

/**
 * blueGreen: switches clients from the current copy to the verified new one (local: a journaled stop,
 * two renames and a start; cnpg: one update of the stable Service's selector). Resumable: the swap
 * continues from what the journal and the disk (or the Service) say.
 */
export const swap: Phase = {
  name: 'swap',
  changesTarget: true,
  runsInDryRun: false,
  resumable: { local: true, cnpg: true },
  appliesTo: (job, operation) => operation === 'refresh' && job.strategy.kind === 'blueGreen',
  plan: (job) =>
    job.target.kind === 'local'
      ? `stop the current copy after up to ${job.strategy.kind === 'blueGreen' ? job.strategy.drainSeconds : 0} s of draining (fast shutdown), move it to previous, move the new copy into place and start it on the job's port`
      : 'mark the current Cluster retired and point the stable Service at the new Cluster’s primary',
  run: async (ctx) => {
    if (!isBlueGreen(ctx.target)) throw new PhaseFailure('unknown', 'this target cannot swap');
    return { ok: true, detail: await ctx.target.swap(ctx.targetContext) };
  },
};
