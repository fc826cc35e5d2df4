/**
 * What the parts of the simulator share: the API client, timings, PostgreSQL binaries, folders, the
 * operator log, and a clock that stop() interrupts.
 */
import type { Kube } from './kube.js';
import type { PgRuntime } from './postgres.js';
import type { SourceResolver } from './source.js';
import type { Volumes } from './volumes.js';

export interface Timings {
  /** Retry interval of the IDENTIFY_SYSTEM probe (CNPG: 5 s, forever). */
  probeRetryMs: number;
  /** Garbage collector latency after an owner is deleted. */
  deletionDelayMs: number;
  /** How long an instance Pod stays Terminating after PostgreSQL stopped. */
  podTerminationMs: number;
  /** Pending/ContainerCreating time of every Pod, and the duration of simulated steps (replica joins). */
  phaseStepMs: number;
  /** First delay before a failed Job Pod is replaced; doubles each time (Kubernetes: 10 s, capped at 6 min). */
  podRetryDelayMs: number;
  podRetryMaxDelayMs: number;
  /** Pods a Job may fail before it is Failed; undefined: the Job's spec.backoffLimit (6, since CNPG sets none). */
  jobBackoffLimit: number | undefined;
  /** Periodic reconcile of every Cluster (CNPG requeues; its instance manager polls). */
  resyncMs: number;
}

export interface OperatorLogEntry {
  level: 'info' | 'error';
  ts: string;
  msg: string;
  [field: string]: unknown;
}

export interface SimContext {
  kube: Kube;
  timings: Timings;
  rt: PgRuntime;
  workDir: string;
  logDir: string;
  nodeName: string;
  volumes: Volumes;
  resolveSource: SourceResolver | undefined;
  signal: AbortSignal;
  log(level: 'info' | 'error', msg: string, fields?: Record<string, unknown>): void;
  enqueueCluster(namespace: string, name: string, delayMs?: number): void;
  portFor(namespace: string, cluster: string): Promise<number>;
}

/** A sleep that ends early (rejecting) when `signal` aborts. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason ?? new Error('aborted'));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason ?? new Error('aborted'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
