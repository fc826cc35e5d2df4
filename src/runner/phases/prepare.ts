import { preparePhase } from '../../safe-copy/phases.js';
import { safeCopyPlan } from '../../safe-copy/plan.js';
import type { Phase } from './phase.js';

/**
 * The user's part of making the copy a test database: the job's test roles
 * and grants (and, on local copies, the owner's password), then its SQL steps
 * in order, as the superuser in the private window. The steps may not be
 * idempotent, so a run stopped here is not taken up again.
 */
export const prepare: Phase = {
  name: 'prepare',
  changesTarget: true,
  runsInDryRun: false,
  resumable: { local: false, cnpg: false },
  plan: (job) => {
    const { roles, prepare: steps } = safeCopyPlan(job);
    return (
      [
        ...(roles.length ? [`test roles: ${roles.join('; ')}`] : []),
        ...(steps.length ? [`steps as the superuser: ${steps.join('; ')}`] : []),
      ].join('; ') || 'nothing (no roles or steps)'
    );
  },
  run: async (ctx) => ({ ok: true, detail: await preparePhase(ctx, ctx.targetContext) }),
};
