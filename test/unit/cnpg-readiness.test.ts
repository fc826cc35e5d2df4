import { describe, expect, it } from 'vitest';
import { type ClusterObject, decideReadiness, type JobObject } from '../../src/targets/cnpg/readiness.js';

/**
 * Statuses as CloudNativePG 1.30 writes them: phases, reasons and conditions
 * copied from BEHAVIOUR.md §1.1–1.3 and §2.5 (the strings test/cnpg-sim writes),
 * and the Job conditions Kubernetes sets at BackoffLimitExceeded.
 */

const ready = (status: 'True' | 'False') => ({
  type: 'Ready',
  status,
  reason: status === 'True' ? 'ClusterIsReady' : 'ClusterIsNotReady',
  message: status === 'True' ? 'Cluster is Ready' : 'Cluster Is Not Ready',
});

function cluster(status: ClusterObject['status'], instances = 1): ClusterObject {
  return { metadata: { name: 'qa-db', namespace: 'qa' }, spec: { instances }, status };
}

const runningJob: JobObject = { metadata: { name: 'qa-db-1-pgbasebackup' }, status: { active: 1, startTime: '2026-01-01T10:00:00Z' } };
const failedJob: JobObject = {
  metadata: { name: 'qa-db-1-pgbasebackup' },
  status: {
    failed: 2,
    conditions: [
      { type: 'FailureTarget', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' },
      { type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' },
    ],
  },
};

describe('decideReadiness', () => {
  it('is healthy only with the healthy phase, Ready=True and every instance ready', () => {
    const healthy = { phase: 'Cluster in healthy state', phaseReason: '', readyInstances: 1, conditions: [ready('True')] };
    expect(decideReadiness({ cluster: cluster(healthy), job: undefined, instances: 1 })).toEqual({ state: 'healthy' });
    expect(decideReadiness({ cluster: cluster({ ...healthy, readyInstances: 1 }, 3), job: undefined, instances: 3 }).state).toBe('waiting');
    expect(decideReadiness({ cluster: cluster({ ...healthy, conditions: [ready('False')] }), job: undefined, instances: 1 }).state).toBe(
      'waiting',
    );
  });

  it.each([
    [{}, undefined],
    [{ phase: 'Setting up primary', phaseReason: 'Creating primary instance qa-db-1', conditions: [ready('False')] }, 'Setting up primary'],
    [
      { phase: 'Waiting for the instances to become active', phaseReason: 'Some instances are not yet active. Please wait.' },
      'Waiting for the instances to become active',
    ],
    [{ phase: 'Creating a new replica', phaseReason: 'Creating replica qa-db-2-join' }, 'Creating a new replica'],
  ])('keeps waiting in %j', (status, phase) => {
    expect(decideReadiness({ cluster: cluster(status), job: runningJob, instances: 1 })).toEqual({
      state: 'waiting',
      phase,
      jobActive: true,
    });
  });

  it.each([
    [
      'Unable to create required cluster objects',
      'refusing to reconcile service: qa-db-rw, not owned by the cluster',
      'cannot create the objects the Cluster needs',
    ],
    [
      'Invalid cluster definition',
      'the resource failed admission validation on: spec.storage.size (see the operator logs for details)',
      'failed CloudNativePG admission validation',
    ],
    [
      'Cluster is unrecoverable and needs manual intervention',
      'Instance creation failed for the following jobs: qa-db-1-pgbasebackup. Check the job logs to investigate the cause of the failure.',
      'needs manual intervention',
    ],
    ['Cluster is unrecoverable and needs manual intervention', 'No pods are active, the cluster needs manual intervention ', 'manual'],
    ['Cluster has incomplete or invalid image catalog', 'catalog not found', 'image catalog'],
    ['Waiting for user action', 'User must issue a supervised switchover', 'supervised'],
    ['Not enough disk space', 'Insufficient disk space detected in one or more pods is preventing PostgreSQL from running.', 'disk'],
  ])('fails at once in "%s", with the phaseReason', (phase, phaseReason, why) => {
    const decision = decideReadiness({
      cluster: cluster({ phase, phaseReason, conditions: [ready('False')] }),
      job: undefined,
      instances: 1,
    });
    expect(decision).toMatchObject({ state: 'failed', cause: `${phase}: ${phaseReason.trim()}`, jobFailed: false });
    expect(decision.state === 'failed' && decision.why).toContain(why);
  });

  it('fails on a failed clone Job without the stale "Setting up primary" phase', () => {
    const decision = decideReadiness({
      cluster: cluster({ phase: 'Setting up primary', phaseReason: 'Creating primary instance qa-db-1' }),
      job: failedJob,
      instances: 1,
    });
    expect(decision).toMatchObject({
      state: 'failed',
      cause: 'the clone Job qa-db-1-pgbasebackup failed (BackoffLimitExceeded: Job has reached the specified backoff limit)',
      jobFailed: true,
    });
    expect(JSON.stringify(decision)).not.toContain('Setting up primary');
  });

  it('fails when the Cluster is gone', () => {
    expect(decideReadiness({ cluster: undefined, job: undefined, instances: 1 })).toMatchObject({
      state: 'failed',
      cause: 'the Cluster is gone',
    });
  });
});
