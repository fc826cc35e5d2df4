import type { RunContext } from '../context.js';
import { checksFailure, failingChecks, type PhaseResult } from './phase.js';

/**
 * For phases that talk to the source: the failure that resolving its
 * credentials ended in, if it did. Preflight reports the resolution's checks
 * itself; this matters for a resumed run, which starts after preflight.
 */
export function sourceUnavailable(ctx: RunContext): Extract<PhaseResult, { ok: false }> | undefined {
  if (ctx.source.error !== undefined) throw ctx.source.error;
  const failing = failingChecks(ctx.source.checks);
  if (failing.length === 0) return undefined;
  return { ok: false, failure: checksFailure(failing, failing[0]?.failureClass ?? 'unknown') };
}
