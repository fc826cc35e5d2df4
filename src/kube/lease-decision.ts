/**
 * Leader election decisions, pure: client-go's `tryAcquireOrRenew` rules
 * (k8s.io/client-go/tools/leaderelection) without the API calls.
 *
 * Times on the Lease are written by other processes' clocks, so they are never
 * compared with ours. What counts is when *we* last saw the record change
 * (`observedAt`, our clock): another holder's lease is valid until
 * observedAt + leaseDuration. That is why a leader that cannot renew for
 * renewDeadline (< leaseDuration) has stopped before anyone else may start.
 */

export interface LeaseRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions: number;
}

export interface Observed {
  /** The record as last read, serialised; a change restarts the validity window. */
  raw: string;
  record: LeaseRecord;
  /** Our clock, when `raw` was first seen. */
  observedAt: number;
}

export type LeaseDecision =
  /** No Lease yet: create it as ours. */
  | { action: 'create'; record: LeaseRecord }
  /** Write this record over the one read (resourceVersion-guarded): a renewal or a takeover. */
  | { action: 'update'; record: LeaseRecord; takeover: boolean }
  /** Someone else holds a valid lease. */
  | { action: 'wait'; holder: string };

export interface LeaseTimings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export const DEFAULT_LEASE_TIMINGS: LeaseTimings = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

/** The timings client-go insists on: renewDeadline < leaseDuration, retryPeriod·1.2 < renewDeadline. */
export function leaseTimingProblems(t: LeaseTimings): string[] {
  const problems: string[] = [];
  if (t.leaseDurationMs <= t.renewDeadlineMs) problems.push('leaseDurationSeconds must be greater than renewDeadlineSeconds');
  if (t.renewDeadlineMs <= t.retryPeriodMs * 1.2) problems.push('renewDeadlineSeconds must be greater than 1.2 × retryPeriodSeconds');
  return problems;
}

/** Remembers the record read, restarting the validity window only when it changed. */
export function observe(previous: Observed | undefined, record: LeaseRecord, now: number): Observed {
  const raw = JSON.stringify(record);
  return previous?.raw === raw ? previous : { raw, record, observedAt: now };
}

export function decide(options: { identity: string; current: Observed | undefined; now: number; timings: LeaseTimings }): LeaseDecision {
  const { identity, current, now, timings } = options;
  const stamp = new Date(now).toISOString();
  const leaseDurationSeconds = Math.ceil(timings.leaseDurationMs / 1000);
  if (!current) {
    return {
      action: 'create',
      record: { holderIdentity: identity, leaseDurationSeconds, acquireTime: stamp, renewTime: stamp, leaseTransitions: 0 },
    };
  }
  const { record } = current;
  const mine = record.holderIdentity === identity;
  const held = record.holderIdentity !== '';
  // The holder's own duration, as client-go reads it; ours when the record has none.
  const validMs = (record.leaseDurationSeconds > 0 ? record.leaseDurationSeconds * 1000 : timings.leaseDurationMs) + current.observedAt;
  if (held && !mine && validMs > now) return { action: 'wait', holder: record.holderIdentity };
  return {
    action: 'update',
    takeover: !mine,
    record: {
      holderIdentity: identity,
      leaseDurationSeconds,
      acquireTime: mine ? (record.acquireTime ?? stamp) : stamp,
      renewTime: stamp,
      leaseTransitions: mine ? record.leaseTransitions : record.leaseTransitions + 1,
    },
  };
}
