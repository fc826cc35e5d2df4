import { inspectSource } from '../../checks/source.js';
import { checksFailure, failingChecks, type Phase } from './phase.js';

/** Checks the source and the target; changes nothing. A failing check stops the run before anything is touched. */
export const preflight: Phase = {
  name: 'preflight',
  changesTarget: false,
  runsInDryRun: true,
  resumable: { local: false, cnpg: false },
  plan: () =>
    'check the source (reachable, replication connection, REPLICATION role, free walsender slots, tablespaces) and the target (same major version, safety marker, port, room); nothing is changed if any check fails',
  async run(ctx) {
    if (ctx.source.error !== undefined) throw ctx.source.error;
    const resolution = ctx.source.checks;
    // Without its credentials the source cannot be asked anything meaningful.
    const source = resolution.some((c) => !c.ok) ? { checks: [] } : await inspectSource(ctx.job, ctx.sql);
    // The target's own checks run even when the source could not be asked: its safety rails matter most.
    const targetChecks = await ctx.target.preflight(source.facts, ctx.targetContext);
    const checks = [...resolution, ...source.checks, ...targetChecks];
    const failing = failingChecks(checks).sort(
      (a, b) => Number(b.failureClass === 'unsafe-target') - Number(a.failureClass === 'unsafe-target'),
    );
    if (failing.length > 0)
      return { ok: false, patch: { preflight: checks }, failure: checksFailure(failing, failing[0]?.failureClass ?? 'unknown') };
    return {
      ok: true,
      patch: { preflight: checks },
      detail: {
        checks: checks.length,
        sourceMajorVersion: source.facts?.majorVersion,
        sourceSystemIdentifier: source.facts?.systemIdentifier,
      },
      ...(source.facts ? { learned: { facts: source.facts } } : {}),
    };
  },
};
