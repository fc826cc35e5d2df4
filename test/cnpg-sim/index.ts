/**
 * A simulated CloudNativePG operator (1.30.0) for tests: it talks only to a Kubernetes API server
 * (test/envtest), and clones for real with PostgreSQL's own pg_basebackup. See README.md.
 *
 *   const sim = await startSimulatedOperator({ kubeConfig, logDir, namespaces: [ns] });
 *   const port = await sim.clusterPort(ns, 'pg');   // where `pg-rw.<ns>.svc:5432` is reachable
 *   ...create Secrets and a Cluster with bootstrap.pg_basebackup, wait for Ready...
 *   await sim.stop();
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { freePort } from '../../scripts/pg-sandbox.js';
import { findPgBinDir } from '../../src/postgres/binaries.js';
import { serverOsUser } from '../../src/postgres/os-user.js';
import { FINALIZER, LABEL } from './constants.js';
import { errorText, type OperatorLogEntry, type SimContext, type Timings } from './context.js';
import { GarbageCollector } from './gc.js';
import { Informer } from './informer.js';
import { JobController } from './jobs.js';
import { isConflict, isNotFound, Kube, keyOf, type Obj } from './kube.js';
import { Kubelet } from './kubelet.js';
import type { PgRuntime } from './postgres.js';
import { KeyedQueue } from './queue.js';
import { ClusterReconciler } from './reconciler.js';
import { type ForwardedConnection, ServiceForwarder } from './service-forwarder.js';
import type { SourceResolver } from './source.js';
import { releaseProtectedClaim, Volumes } from './volumes.js';

export { ANNOTATION, CNPG_OPERATOR_VERSION, LABEL, LOG_MSG, PHASE, REASON } from './constants.js';
export type { OperatorLogEntry, Timings } from './context.js';
export type { ForwardedConnection } from './service-forwarder.js';
export type { SourceResolver } from './source.js';

export interface SimulatedOperatorOptions {
  kubeConfig: KubeConfig;
  /** The API server's pod-log folder (`TestApiServer.logDir`, `inject('podLogDir')`). */
  logDir: string;
  /** Parent of the simulator's own temp folder (volumes, sockets, secret files). Default: the OS temp dir. */
  workDir?: string;
  /** Namespaces this operator manages; default: all. Give each test file its own, so operators never share a Cluster. */
  namespaces?: readonly string[];
  /**
   * The loopback port that stands for `<cluster>-rw.<namespace>.svc:5432`. Called once per
   * namespace/cluster and remembered (a recreated Cluster gets the same port). Default: a free port.
   */
  portFor?: (namespace: string, cluster: string) => number | Promise<number>;
  /** Maps an externalClusters host/port that does not resolve here to a loopback address (passed as libpq hostaddr). */
  resolveSource?: SourceResolver;
  /** IDENTIFY_SYSTEM retry interval. Default 5000 (CNPG). */
  probeRetryMs?: number;
  /** Garbage collector latency after an owner disappears. Default 1000. */
  deletionDelayMs?: number;
  /** How long an instance Pod stays Terminating after PostgreSQL stopped. Default 500. */
  podTerminationMs?: number;
  /** Pending time of each Pod, and the length of simulated steps. Default 200. */
  phaseStepMs?: number;
  /** Failed Pods a Job may have before it fails; default: the Job's spec.backoffLimit (6 → 7 Pods). */
  jobBackoffLimit?: number;
  /** First delay before a failed Job Pod is replaced, doubled each time up to podRetryMaxDelayMs. Default 10000 / 360000 (Kubernetes). */
  podRetryDelayMs?: number;
  podRetryMaxDelayMs?: number;
  /** Periodic reconcile of every Cluster. Default 1000. */
  resyncMs?: number;
  /** PostgreSQL server binaries (pg_ctl, postgres, pg_basebackup). Default: src/postgres/binaries.ts discovery. */
  pgBinDir?: string;
  /** Receives every operator log entry as it is written. */
  onLog?: (entry: OperatorLogEntry) => void;
}

export interface SimulatedVolume {
  namespace: string;
  pvc: string;
  uid: string;
  dir: string;
}

export interface SimulatedOperator {
  /** This operator's temp folder, removed by stop(). */
  readonly workDir: string;
  /** The loopback port for the Cluster's -rw Service (assigned on first call, stable afterwards). */
  clusterPort(namespace: string, cluster: string): Promise<number>;
  /** `{ host: '127.0.0.1', port }`: what a test puts in place of `<cluster>-rw.<namespace>.svc:5432`. */
  connection(namespace: string, cluster: string): Promise<{ host: string; port: number }>;
  /**
   * The loopback port standing for `<service>.<namespace>.svc:5432` of a Service that is not a Cluster's
   * own (kube-proxy): each new connection follows the Service's selector to a Ready Pod's PostgreSQL.
   */
  servicePort(namespace: string, service: string): Promise<number>;
  /** Where each connection through servicePort() went (pod undefined: no ready endpoint, refused). */
  serviceConnections(): readonly ForwardedConnection[];
  /** SQL as superuser on the Cluster's running instance (what `kubectl exec … psql -U postgres` gives on a real cluster). */
  sql<Row extends Record<string, unknown> = Record<string, unknown>>(
    namespace: string,
    cluster: string,
    text: string,
    params?: unknown[],
    database?: string,
  ): Promise<Row[]>;
  /** The operator's own log so far (the controller-manager log of a real operator). */
  operatorLog(): readonly OperatorLogEntry[];
  /** Volumes (PVC data folders) that currently exist. */
  volumes(): SimulatedVolume[];
  /** Changes timings from now on, e.g. a slow garbage collector for one test. */
  setTimings(
    timings: Partial<
      Pick<Timings, 'probeRetryMs' | 'deletionDelayMs' | 'podTerminationMs' | 'phaseStepMs' | 'podRetryDelayMs' | 'resyncMs'>
    >,
  ): void;
  /** Stops watches, timers, Jobs and every PostgreSQL it started (immediate mode), and removes its temp folder. */
  stop(): Promise<void>;
}

const MAX_LOG_ENTRIES = 20_000;

function pgRuntime(binDir: string | undefined): PgRuntime {
  const env = binDir ? { ...process.env, PG_BINDIR: binDir } : process.env;
  const found = findPgBinDir(undefined, env, ['pg_ctl', 'postgres', 'pg_basebackup']);
  if (!found)
    throw new Error('test/cnpg-sim needs PostgreSQL server binaries (pg_ctl, postgres, pg_basebackup); set pgBinDir or PG_BINDIR');
  return { binDir: found.dir, major: found.major, runAs: serverOsUser() };
}

export async function startSimulatedOperator(options: SimulatedOperatorOptions): Promise<SimulatedOperator> {
  const rt = pgRuntime(options.pgBinDir);
  const workDir = mkdtempSync(join(options.workDir ?? tmpdir(), 'cnpg-sim-'));
  // The PostgreSQL OS user must reach the volumes and sockets below it.
  chmodSync(workDir, 0o755);
  for (const sub of ['volumes', 'pods', 's']) mkdirSync(join(workDir, sub), { mode: 0o755 });
  const kube = new Kube(options.kubeConfig);
  const stopping = new AbortController();
  const timings: Timings = {
    probeRetryMs: options.probeRetryMs ?? 5000,
    deletionDelayMs: options.deletionDelayMs ?? 1000,
    podTerminationMs: options.podTerminationMs ?? 500,
    phaseStepMs: options.phaseStepMs ?? 200,
    podRetryDelayMs: options.podRetryDelayMs ?? 10_000,
    podRetryMaxDelayMs: options.podRetryMaxDelayMs ?? 360_000,
    jobBackoffLimit: options.jobBackoffLimit,
    resyncMs: options.resyncMs ?? 1000,
  };
  const scope = options.namespaces ? new Set(options.namespaces) : undefined;
  const inScope = (ns: string | undefined): boolean => !scope || (ns !== undefined && scope.has(ns));
  const entries: OperatorLogEntry[] = [];
  const ports = new Map<string, Promise<number>>();
  const volumes = new Volumes(join(workDir, 'volumes'), rt.runAs);

  let queue: KeyedQueue | undefined;
  const ctx: SimContext = {
    kube,
    timings,
    rt,
    workDir,
    logDir: options.logDir,
    nodeName: 'cnpg-sim-node',
    volumes,
    resolveSource: options.resolveSource,
    signal: stopping.signal,
    log(level, msg, fields = {}) {
      const entry: OperatorLogEntry = { level, ts: new Date().toISOString(), msg, ...fields };
      entries.push(entry);
      if (entries.length > MAX_LOG_ENTRIES) entries.shift();
      options.onLog?.(entry);
    },
    enqueueCluster(ns, name, delayMs) {
      if (name) queue?.enqueue(`${ns}/${name}`, delayMs);
    },
    portFor(ns, name) {
      const key = `${ns}/${name}`;
      let port = ports.get(key);
      if (!port) {
        port = Promise.resolve(options.portFor ? options.portFor(ns, name) : freePort());
        ports.set(key, port);
      }
      return port;
    },
  };

  const kubelet = new Kubelet(ctx);
  const jobs = new JobController(ctx);
  const reconciler = new ClusterReconciler(ctx, kubelet);
  const gc = new GarbageCollector(
    kube,
    () => timings.deletionDelayMs,
    (msg, fields) => ctx.log('info', msg, fields),
  );
  queue = new KeyedQueue(
    (key) => reconciler.reconcile(key),
    (key, err) => ctx.log('error', 'reconcile error', { cluster: key, error: errorText(err) }),
  );
  const background = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>): void => {
    const tracked = p.catch((err: unknown) => {
      if (!stopping.signal.aborted) ctx.log('error', 'background task failed', { error: errorText(err) });
    });
    background.add(tracked);
    void tracked.finally(() => background.delete(tracked));
  };
  const clusterOf = (obj: Obj): string => String(obj.metadata?.labels?.[LABEL.cluster] ?? '');
  const onInformerError = (kind: string) => (err: unknown) => ctx.log('error', 'watch failed; restarting', { kind, error: errorText(err) });

  const pods: Informer = new Informer(kube, {
    kind: 'pods',
    labelSelector: LABEL.cluster,
    onError: onInformerError('pods'),
    onEvent(type, pod) {
      const ns = pod.metadata?.namespace;
      if (!inScope(ns)) return;
      kubelet.onPod(type, pod);
      if (type === 'DELETED') {
        for (const pvc of pvcs.items()) {
          if (pvc.metadata?.namespace === ns && pvc.metadata?.deletionTimestamp) track(releaseProtectedClaim(kube, pvc, pods.items()));
        }
      }
      ctx.enqueueCluster(ns, clusterOf(pod));
    },
  });
  const pvcs: Informer = new Informer(kube, {
    kind: 'pvcs',
    labelSelector: LABEL.cluster,
    onError: onInformerError('persistentvolumeclaims'),
    onEvent(type, pvc) {
      const ns = pvc.metadata?.namespace;
      if (!inScope(ns)) return;
      if (type === 'DELETED') track(volumes.remove(String(pvc.metadata.uid)));
      else if (pvc.metadata?.deletionTimestamp) track(releaseProtectedClaim(kube, pvc, pods.items()));
      ctx.enqueueCluster(ns, clusterOf(pvc));
    },
  });
  const jobInformer = new Informer(kube, {
    kind: 'jobs',
    labelSelector: LABEL.cluster,
    onError: onInformerError('jobs'),
    onEvent(type, job) {
      const ns = job.metadata?.namespace;
      if (!inScope(ns)) return;
      jobs.onJob(type, job);
      if (type === 'DELETED') gc.ownerDeleted(ns, String(job.metadata.uid), `Job/${job.metadata.name}`);
      else if (job.metadata?.deletionTimestamp) gc.ownerTerminating('jobs', job);
      ctx.enqueueCluster(ns, clusterOf(job));
    },
  });
  const clusters = new Informer(kube, {
    kind: 'clusters',
    onError: onInformerError('clusters'),
    onEvent(type, cluster) {
      const ns = cluster.metadata?.namespace;
      if (!inScope(ns)) return;
      if (type === 'DELETED') {
        ctx.log('info', 'Cluster deleted; its dependents go with the garbage collector', { namespace: ns, name: cluster.metadata.name });
        gc.ownerDeleted(ns, String(cluster.metadata.uid), `Cluster/${cluster.metadata.name}`);
      } else if (cluster.metadata?.deletionTimestamp) {
        gc.ownerTerminating('clusters', cluster);
      }
      queue?.enqueue(keyOf(cluster));
    },
  });
  const forwarder = new ServiceForwarder(ctx, kubelet, () => pods.items());
  const services = new Informer(kube, {
    kind: 'services',
    onError: onInformerError('services'),
    onEvent(type, service) {
      if (inScope(service.metadata?.namespace)) forwarder.onService(type, service);
    },
  });
  const informers = [pods, pvcs, jobInformer, clusters, services];

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      stopping.abort(new Error('the simulated operator is stopping'));
      await Promise.allSettled(informers.map((i) => i.stop()));
      await queue?.stop();
      await forwarder.stop();
      await gc.stop();
      await jobs.stop();
      await kubelet.stop();
      await Promise.allSettled([...background]);
      await stripFinalizers(kube, inScope).catch(() => undefined);
      kube.abort();
      volumes.clear();
      rmSync(workDir, { recursive: true, force: true });
    })();
    return stopped;
  };

  try {
    // Pods and PVCs first: the kubelet and PVC protection must know what exists before Clusters move.
    await pods.start();
    await Promise.all([pvcs.start(), jobInformer.start()]);
    await clusters.start();
    await services.start();
  } catch (err) {
    await stop();
    throw new Error(`the simulated operator could not start: ${errorText(err)}`, { cause: err });
  }
  ctx.log('info', 'simulated CloudNativePG operator started', { namespaces: scope ? [...scope] : 'all', pgBinDir: rt.binDir, workDir });

  return {
    workDir,
    clusterPort: (ns, name) => ctx.portFor(ns, name),
    connection: async (ns, name) => ({ host: '127.0.0.1', port: await ctx.portFor(ns, name) }),
    servicePort: (ns, name) => forwarder.port(ns, name),
    serviceConnections: () => forwarder.connections(),
    sql: (ns, name, text, params, database) => kubelet.sql(ns, name, text, params, database),
    operatorLog: () => [...entries],
    volumes: () => volumes.list().map((v) => ({ namespace: v.namespace, pvc: v.pvc, uid: v.uid, dir: v.dir })),
    setTimings: (changes) => {
      for (const [key, value] of Object.entries(changes))
        if (typeof value === 'number') (timings as unknown as Record<string, number>)[key] = value;
    },
    stop,
  };
}

/**
 * The simulator's finalizers would keep Pods and PVCs Terminating forever once nobody acts on them:
 * they are removed from the objects in scope when the simulator stops.
 */
async function stripFinalizers(kube: Kube, inScope: (ns: string | undefined) => boolean): Promise<void> {
  for (const kind of ['pods', 'pvcs'] as const) {
    for (const obj of await kube.list(kind, undefined, LABEL.cluster)) {
      if (!inScope(obj.metadata?.namespace)) continue;
      const finalizers = (obj.metadata.finalizers ?? []) as string[];
      const kept = finalizers.filter((f) => f !== FINALIZER.podTermination && f !== FINALIZER.pvcProtection);
      if (kept.length === finalizers.length) continue;
      try {
        await kube.mergePatch(kind, obj.metadata.namespace, obj.metadata.name, {
          metadata: { resourceVersion: obj.metadata.resourceVersion, finalizers: kept.length ? kept : null },
        });
      } catch (err) {
        if (!isNotFound(err) && !isConflict(err)) throw err;
      }
    }
  }
}
