import { describe, expect, it } from 'vitest';
import {
  BLUE_GREEN_ANNOTATIONS,
  type ClusterView,
  type CnpgBlueGreenView,
  outgoingCluster,
  planAfterFailure,
  planCleanup,
  planLegacyCleanup,
  planPrepare,
  planRollback,
} from '../../src/targets/cnpg/blue-green.js';

/** A job switched from strategy recreate: the Cluster recreate made, `qa-db`, is adopted as the live copy. */

const ours = (extra: Record<string, string> = {}, job = 'qa'): ClusterView => ({
  exists: true,
  labels: { 'app.kubernetes.io/managed-by': 'db-refresher' },
  annotations: { 'db-refresher.io/job': job, ...extra },
  healthy: true,
  deleting: false,
});
const service = (cluster: string) => ({
  labels: { 'app.kubernetes.io/managed-by': 'db-refresher' },
  annotations: { 'db-refresher.io/job': 'qa' },
  selector: { 'cnpg.io/cluster': cluster, 'cnpg.io/instanceRole': 'primary' },
});
const now = new Date('2026-12-02T12:00:00Z');
const retired = (at: string) => ours({ [BLUE_GREEN_ANNOTATIONS.retiredAt]: at });
const before: CnpgBlueGreenView = {
  job: 'qa',
  clusterName: 'qa-db',
  serviceName: 'qa-stable',
  namespace: 'qa',
  service: undefined,
  clusters: { a: { exists: false }, b: { exists: false } },
  legacy: ours(),
};
const afterFirstSwap = (legacy: ClusterView): CnpgBlueGreenView => ({
  ...before,
  service: service('qa-db-a'),
  clusters: { a: ours({ 'db-refresher.io/run-id': 'R1' }), b: { exists: false } },
  legacy,
});

describe('CNPG blue/green after strategy recreate', () => {
  it('before the first swap the Cluster recreate made is the live copy: the new one goes to slot a beside it, and the swap retires it', () => {
    expect(planPrepare(before)).toEqual({ ok: true, slot: 'a', name: 'qa-db-a' });
    expect(outgoingCluster(before)).toBe('qa-db');
    // Nothing to clean while it serves, and a failed first run says it was not changed.
    expect(planLegacyCleanup(before, 0, now)).toEqual({ action: 'none' });
    expect(planAfterFailure({ ...before, clusters: { a: ours({ 'db-refresher.io/run-id': 'R1' }), b: { exists: false } } }, 'R1')).toEqual({
      remove: 'a',
      note: 'the current copy was not changed',
    });
  });

  it('a Cluster of that name that is not this job’s is not adopted', () => {
    const foreign = { ...before, legacy: ours({}, 'other-job') };
    expect(outgoingCluster(foreign)).toBeUndefined();
    expect(planAfterFailure(foreign, 'R1')).toEqual({ note: 'there was no copy before' });
    expect(planLegacyCleanup({ ...afterFirstSwap(ours({}, 'other-job')) }, 0, now)).toEqual({ action: 'none' });
  });

  it('after the first swap it is the previous copy: kept for keepPrevious since it retired, then deleted', () => {
    const view = afterFirstSwap(retired('2026-12-02T11:30:00Z'));
    expect(planLegacyCleanup(view, 3600, now)).toEqual({ action: 'wait', name: 'qa-db', until: new Date('2026-12-02T12:30:00Z') });
    expect(planLegacyCleanup(view, 1800, now)).toMatchObject({ action: 'delete', name: 'qa-db', why: expect.stringContaining('recreate') });
    // The slots' own clean-up is not confused by it.
    expect(planCleanup(view, 0, now)).toEqual({ action: 'none' });
    // Without a retirement mark (made again by a switch back to recreate) it is never deleted here.
    expect(planLegacyCleanup(afterFirstSwap(ours()), 0, now)).toEqual({ action: 'none' });
  });

  it('rollback does not switch the Service to it, and says why', () => {
    const plan = planRollback(afterFirstSwap(retired('2026-12-02T11:30:00Z')));
    expect(plan).toMatchObject({ ok: false, message: expect.stringContaining('Cluster qa/qa-db, which strategy recreate made') });
    expect(plan).toMatchObject({ message: expect.stringContaining('qa-db-rw') });
  });
});
