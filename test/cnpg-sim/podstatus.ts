/** Pure: the Pod and Job statuses kubelet and the Job controller would write. */
import type { Obj } from './kube.js';
import { metaTime } from './specs.js';

const IP = '127.0.0.1';

function podConditions(ready: boolean, reason: string | undefined, now: string): Obj[] {
  const c = (type: string, status: boolean, why?: string): Obj => ({
    type,
    status: status ? 'True' : 'False',
    lastProbeTime: null,
    lastTransitionTime: now,
    ...(why && !status ? { reason: why } : {}),
  });
  return [
    c('PodReadyToStartContainers', true),
    c('Initialized', true),
    c('Ready', ready, reason ?? 'ContainersNotReady'),
    c('ContainersReady', ready, reason ?? 'ContainersNotReady'),
    c('PodScheduled', true),
  ];
}

function initStatuses(pod: Obj, startedAt: string): Obj[] {
  return ((pod.spec?.initContainers ?? []) as Obj[]).map((c) => ({
    name: c.name,
    image: c.image,
    imageID: '',
    ready: true,
    restartCount: 0,
    started: false,
    state: { terminated: { exitCode: 0, reason: 'Completed', startedAt, finishedAt: startedAt } },
  }));
}

export type ContainerState =
  | { kind: 'running'; ready: boolean }
  | { kind: 'waiting'; reason: string; message: string; restartCount: number }
  | { kind: 'terminated'; exitCode: number };

/** Status for a Pod whose single main container is in `state`. */
export function podStatus(pod: Obj, state: ContainerState, startedAt: string, now = new Date()): Obj {
  const at = metaTime(now);
  const container = ((pod.spec?.containers ?? []) as Obj[])[0] ?? { name: 'main', image: '' };
  const base = { name: container.name, image: container.image, imageID: '', containerID: `sim://${pod.metadata.uid}` };
  let phase: string;
  let containerStatus: Obj;
  let ready = false;
  let notReadyReason: string | undefined;
  switch (state.kind) {
    case 'running':
      phase = 'Running';
      ready = state.ready;
      containerStatus = { ...base, ready, started: true, restartCount: 0, state: { running: { startedAt } } };
      break;
    case 'waiting':
      phase = 'Running';
      containerStatus = {
        ...base,
        ready: false,
        started: false,
        restartCount: state.restartCount,
        state: { waiting: { reason: state.reason, message: state.message } },
      };
      break;
    case 'terminated':
      phase = state.exitCode === 0 ? 'Succeeded' : 'Failed';
      notReadyReason = state.exitCode === 0 ? 'PodCompleted' : 'PodFailed';
      containerStatus = {
        ...base,
        ready: false,
        started: false,
        restartCount: 0,
        state: {
          terminated: { exitCode: state.exitCode, reason: state.exitCode === 0 ? 'Completed' : 'Error', startedAt, finishedAt: at },
        },
      };
      break;
  }
  return {
    phase,
    startTime: startedAt,
    hostIP: IP,
    hostIPs: [{ ip: IP }],
    podIP: IP,
    podIPs: [{ ip: IP }],
    qosClass: 'BestEffort',
    conditions: podConditions(ready, notReadyReason, at),
    initContainerStatuses: initStatuses(pod, startedAt),
    containerStatuses: [containerStatus],
  };
}

export function isPodReady(pod: Obj): boolean {
  return ((pod.status?.conditions ?? []) as Obj[]).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** CNPG's "active" Pod: not Pending, Succeeded or Failed, and not terminating. */
export function isPodActive(pod: Obj): boolean {
  const phase = pod.status?.phase;
  return !pod.metadata?.deletionTimestamp && phase !== 'Pending' && phase !== 'Succeeded' && phase !== 'Failed' && phase !== undefined;
}

function jobCondition(type: string, reason: string, message: string, now: string): Obj {
  return { type, status: 'True', reason, message, lastProbeTime: now, lastTransitionTime: now };
}

export function jobSucceededStatus(job: Obj, now = new Date()): Obj {
  const at = metaTime(now);
  const message = 'Reached expected number of succeeded pods';
  return {
    active: 0,
    ready: 0,
    terminating: 0,
    succeeded: 1,
    completionTime: at,
    uncountedTerminatedPods: {},
    conditions: [
      ...((job.status?.conditions ?? []) as Obj[]),
      jobCondition('SuccessCriteriaMet', 'CompletionsReached', message, at),
      jobCondition('Complete', 'CompletionsReached', message, at),
    ],
  };
}

export function jobFailedStatus(job: Obj, failed: number, now = new Date()): Obj {
  const at = metaTime(now);
  const message = 'Job has reached the specified backoff limit';
  return {
    active: 0,
    ready: 0,
    terminating: 0,
    failed,
    uncountedTerminatedPods: {},
    conditions: [
      ...((job.status?.conditions ?? []) as Obj[]),
      jobCondition('FailureTarget', 'BackoffLimitExceeded', message, at),
      jobCondition('Failed', 'BackoffLimitExceeded', message, at),
    ],
  };
}

export function jobHasCondition(job: Obj, type: 'Complete' | 'Failed'): boolean {
  return ((job.status?.conditions ?? []) as Obj[]).some((c) => c.type === type && c.status === 'True');
}
