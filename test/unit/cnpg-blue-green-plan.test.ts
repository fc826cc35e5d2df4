import { describe, expect, it } from 'vitest';
import {
  activeSlot,
  BLUE_GREEN_ANNOTATIONS,
  buildStableService,
  type ClusterView,
  type CnpgBlueGreenView,
  planAfterFailure,
  planCleanup,
  planPrepare,
  planRollback,
  quotaShortfall,
} from '../../src/targets/cnpg/blue-green.js';

const ours = (extra: Record<string, string> = {}, healthy = true): ClusterView => ({
  exists: true,
  labels: { 'app.kubernetes.io/managed-by': 'db-refresher' },
  annotations: { 'db-refresher.io/job': 'qa', ...extra },
  healthy,
  deleting: false,
});
const service = (cluster: string) => ({
  labels: { 'app.kubernetes.io/managed-by': 'db-refresher' },
  annotations: { 'db-refresher.io/job': 'qa' },
  selector: { 'cnpg.io/cluster': cluster, 'cnpg.io/instanceRole': 'primary' },
});
const base: CnpgBlueGreenView = {
  job: 'qa',
  clusterName: 'qa-db',
  serviceName: 'qa-db',
  namespace: 'qa',
  service: undefined,
  clusters: { a: { exists: false }, b: { exists: false } },
};
const now = new Date('2026-12-02T12:00:00Z');

describe('CNPG blue/green plan', () => {
  it('the stable Service selects the active Cluster primary by the labels CNPG 1.30 puts on instance pods', () => {
    const svc = buildStableService({ name: 'qa-db', namespace: 'qa', job: 'qa', cluster: 'qa-db-b', runId: 'R2' });
    expect(svc.spec.selector).toEqual({ 'cnpg.io/cluster': 'qa-db-b', 'cnpg.io/instanceRole': 'primary' });
    expect(svc.spec.ports).toEqual([{ name: 'postgres', port: 5432, targetPort: 5432, protocol: 'TCP' }]);
    // BEHAVIOUR.md §10.5 exception 3: these labels would make the operator try to remove it.
    expect(svc.metadata.labels).not.toHaveProperty('cnpg.io/isManaged');
    expect(svc.metadata.labels).not.toHaveProperty('cnpg.io/cluster');
    expect(svc.metadata.labels['app.kubernetes.io/managed-by']).toBe('db-refresher');
    expect(svc.metadata.annotations['db-refresher.io/job']).toBe('qa');
  });

  it('builds the first copy in slot a, then alternates with the slot the Service does not select', () => {
    expect(planPrepare(base)).toEqual({ ok: true, slot: 'a', name: 'qa-db-a' });
    const afterFirst = { ...base, service: service('qa-db-a'), clusters: { a: ours(), b: { exists: false } as ClusterView } };
    expect(activeSlot(afterFirst)).toBe('a');
    expect(planPrepare(afterFirst)).toEqual({ ok: true, slot: 'b', name: 'qa-db-b' });
    // A retired copy in the other slot gives way to the new one.
    const retired = {
      ...afterFirst,
      service: service('qa-db-b'),
      clusters: { a: ours({ [BLUE_GREEN_ANNOTATIONS.retiredAt]: now.toISOString() }), b: ours() },
    };
    expect(planPrepare(retired)).toEqual({ ok: true, slot: 'a', name: 'qa-db-a', remove: 'qa-db-a' });
  });

  it("refuses a Service or a slot Cluster that is not this job's", () => {
    const foreignService = { ...base, service: { ...service('qa-db-a'), labels: {}, annotations: {} } };
    expect(planPrepare(foreignService)).toMatchObject({
      ok: false,
      message: expect.stringContaining('Service qa/qa-db exists and db-refresher did not create it'),
    });
    const foreignCluster = {
      ...base,
      clusters: { a: { ...ours(), annotations: { 'db-refresher.io/job': 'other' } } as ClusterView, b: { exists: false } as ClusterView },
    };
    expect(planPrepare(foreignCluster)).toMatchObject({
      ok: false,
      message: expect.stringContaining('Cluster qa/qa-db-a exists and db-refresher did not create it'),
    });
    expect(planRollback(foreignService)).toMatchObject({ ok: false });
    expect(planCleanup(foreignService, 0, now)).toEqual({ action: 'none' });
  });

  it('deletes the inactive Cluster after keepPrevious, at once when it never served, never before the first swap', () => {
    const retiredAt = (iso: string) => ({
      ...base,
      service: service('qa-db-b'),
      clusters: { a: ours({ [BLUE_GREEN_ANNOTATIONS.retiredAt]: iso }), b: ours() },
    });
    expect(planCleanup(retiredAt('2026-12-02T11:30:00Z'), 3600, now)).toEqual({
      action: 'wait',
      name: 'qa-db-a',
      until: new Date('2026-12-02T12:30:00Z'),
    });
    expect(planCleanup(retiredAt('2026-12-02T10:00:00Z'), 3600, now)).toMatchObject({ action: 'delete', name: 'qa-db-a' });
    expect(planCleanup(retiredAt('2026-12-02T12:00:00Z'), 0, now)).toMatchObject({ action: 'delete' });
    const halfMade = { ...base, service: service('qa-db-b'), clusters: { a: ours({}, false), b: ours() } };
    expect(planCleanup(halfMade, 3600, now)).toMatchObject({ action: 'delete', why: expect.stringContaining('never served') });
    expect(planCleanup({ ...base, clusters: { a: ours(), b: ours() } }, 0, now)).toEqual({ action: 'none' });
  });

  it('rolls back only to a kept, healthy copy that served before', () => {
    const kept = {
      ...base,
      service: service('qa-db-b'),
      clusters: { a: ours({ [BLUE_GREEN_ANNOTATIONS.retiredAt]: now.toISOString() }), b: ours() },
    };
    expect(planRollback(kept)).toEqual({ ok: true, from: 'qa-db-b', to: 'qa-db-a', toSlot: 'a' });
    expect(planRollback({ ...kept, clusters: { ...kept.clusters, a: { exists: false } } })).toMatchObject({
      ok: false,
      message: expect.stringContaining('no previous copy is kept'),
    });
    expect(planRollback({ ...kept, clusters: { ...kept.clusters, a: ours() } })).toMatchObject({
      ok: false,
      message: expect.stringContaining('never served'),
    });
    expect(
      planRollback({ ...kept, clusters: { ...kept.clusters, a: ours({ [BLUE_GREEN_ANNOTATIONS.retiredAt]: now.toISOString() }, false) } }),
    ).toMatchObject({
      ok: false,
      message: expect.stringContaining('not healthy'),
    });
    expect(planRollback(base)).toMatchObject({ ok: false, message: expect.stringContaining('nothing to roll back') });
  });

  it('checks ResourceQuotas for the second Cluster’s volumes', () => {
    const values = { instances: 2, storage: { size: '10Gi', storageClass: 'fast' } };
    expect(quotaShortfall({ quotas: [], values })).toBeUndefined();
    expect(
      quotaShortfall({ quotas: [{ name: 'q', hard: { 'requests.storage': '50Gi' }, used: { 'requests.storage': '20Gi' } }], values }),
    ).toMatchObject({ ok: true });
    const short = quotaShortfall({
      quotas: [
        {
          name: 'q',
          hard: { 'requests.storage': '30Gi', persistentvolumeclaims: '3' },
          used: { 'requests.storage': '20Gi', persistentvolumeclaims: '2' },
        },
      ],
      values,
    });
    expect(short?.ok).toBe(false);
    expect(short?.message).toContain('ResourceQuota q requests.storage: the new Cluster needs 10Gi × 2, 10Gi left');
    expect(short?.message).toContain('persistentvolumeclaims: the new Cluster needs 2, 1 left');
    expect(short?.message).toContain('use strategy recreate');
    const perClass = quotaShortfall({
      quotas: [{ name: 'q', hard: { 'fast.storageclass.storage.k8s.io/requests.storage': '25Gi' }, used: {} }],
      values,
    });
    expect(perClass?.ok).toBe(true);
    // A retired copy removed first gives its volumes back.
    expect(
      quotaShortfall({
        quotas: [{ name: 'q', hard: { 'requests.storage': '40Gi' }, used: { 'requests.storage': '40Gi' } }],
        values,
        reclaimed: { bytes: 20 * 2 ** 30, claims: 2 },
      })?.ok,
    ).toBe(true);
  });

  it('after a failure: removes only the Cluster this run made while the Service does not select it, and says what clients use', () => {
    const made = {
      ...base,
      service: service('qa-db-a'),
      clusters: { a: ours({ 'db-refresher.io/run-id': 'R1' }), b: ours({ 'db-refresher.io/run-id': 'R2' }) },
    };
    expect(planAfterFailure(made, 'R2')).toEqual({ remove: 'b', note: 'the current copy was not changed' });
    // Failed before it created its Cluster: the other slot holds an older copy, which stays.
    expect(planAfterFailure(made, 'R3')).toEqual({ note: 'the current copy was not changed' });
    // Failed after the swap (in cleanup-previous): clients already use the new copy; nothing is removed.
    const swapped = { ...made, service: service('qa-db-b') };
    const after = planAfterFailure(swapped, 'R2');
    expect(after.remove).toBeUndefined();
    expect(after.note).toContain('the swap was made: clients use qa-db-b');
    // The first run of a job, with no Service yet.
    expect(planAfterFailure({ ...base, clusters: { a: ours({ 'db-refresher.io/run-id': 'R1' }), b: { exists: false } } }, 'R1')).toEqual({
      remove: 'a',
      note: 'there was no copy before; the half-made one is removed',
    });
  });
});
