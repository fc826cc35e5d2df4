import { openPhase } from '../../safe-copy/phases.js';
import { needsPrivateWindow } from '../../safe-copy/plan.js';
import type { Phase } from './phase.js';

/**
 * Ends the private window: checks as the superuser that nothing neutralised is
 * live, then lets the copy's users in (local: restart on the real port).
 * Idempotent, so it can be redone.
 */
export const open: Phase = {
  name: 'open',
  changesTarget: true,
  runsInDryRun: false,
  resumable: { local: true, cnpg: true },
  plan: (job) =>
    needsPrivateWindow(job)
      ? "check that nothing neutralised is live, then end the private window: the copy accepts its users' connections from now on"
      : 'nothing (the copy started open: nothing runs before its users)',
  run: async (ctx) => ({ ok: true, detail: await openPhase(ctx, ctx.targetContext) }),
};
