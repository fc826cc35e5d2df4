import { describe, expect, it } from 'vitest';
import { DEFAULT_LEASE_TIMINGS, decide, leaseTimingProblems, observe } from '../../src/kube/lease-decision.js';

const timings = DEFAULT_LEASE_TIMINGS;
const other = { holderIdentity: 'pod-b', leaseDurationSeconds: 15, renewTime: '2030-01-01T00:00:00.000000Z', leaseTransitions: 3 };

describe('leader election decisions (client-go rules)', () => {
  it('creates the Lease when there is none', () => {
    const d = decide({ identity: 'pod-a', current: undefined, now: 1000, timings });
    expect(d).toMatchObject({ action: 'create', record: { holderIdentity: 'pod-a', leaseDurationSeconds: 15, leaseTransitions: 0 } });
  });

  it("waits while another holder's lease is valid, measured from when we saw it change", () => {
    const seen = observe(undefined, other, 10_000);
    expect(decide({ identity: 'pod-a', current: seen, now: 24_999, timings })).toEqual({ action: 'wait', holder: 'pod-b' });
    // Same record read again later: the window does not restart.
    const again = observe(seen, { ...other }, 20_000);
    expect(again.observedAt).toBe(10_000);
    expect(decide({ identity: 'pod-a', current: again, now: 25_000, timings })).toMatchObject({
      action: 'update',
      takeover: true,
      record: { holderIdentity: 'pod-a', leaseTransitions: 4 },
    });
  });

  it("never trusts the holder's own timestamps: a renewal restarts the window whatever its clock says", () => {
    const seen = observe(undefined, other, 10_000);
    const renewed = observe(seen, { ...other, renewTime: '1999-01-01T00:00:00.000000Z' }, 20_000);
    expect(renewed.observedAt).toBe(20_000);
    expect(decide({ identity: 'pod-a', current: renewed, now: 34_000, timings }).action).toBe('wait');
  });

  it('renews its own lease keeping acquireTime and transitions', () => {
    const mine = observe(undefined, { ...other, holderIdentity: 'pod-a', acquireTime: '2030-01-01T00:00:00.000Z' }, 0);
    const d = decide({ identity: 'pod-a', current: mine, now: 100_000, timings });
    expect(d).toMatchObject({
      action: 'update',
      takeover: false,
      record: { acquireTime: '2030-01-01T00:00:00.000Z', leaseTransitions: 3 },
    });
  });

  it('takes a released lease (empty holder) at once', () => {
    const released = observe(undefined, { ...other, holderIdentity: '', leaseDurationSeconds: 1 }, 5_000);
    expect(decide({ identity: 'pod-a', current: released, now: 5_001, timings })).toMatchObject({ action: 'update', takeover: true });
  });

  it('checks the timings client-go checks', () => {
    expect(leaseTimingProblems(timings)).toEqual([]);
    expect(leaseTimingProblems({ leaseDurationMs: 10_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 })).toHaveLength(1);
    expect(leaseTimingProblems({ leaseDurationMs: 15_000, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 })).toHaveLength(1);
  });
});
