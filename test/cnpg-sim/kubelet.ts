/**
 * kubelet and the instance manager for instance Pods `X-<n>`: when such a Pod appears, PostgreSQL is
 * started on its PVC's data (the clone) on the Cluster's loopback port, the instance manager's SQL runs
 * (§2.4: operator roles, superuser password, the owner's password from the app secret), and the Pod
 * becomes Running and Ready. When the Pod is deleted, PostgreSQL stops and the Pod's termination
 * finalizer is removed `podTerminationMs` later. Replicas of the simulated kind run no PostgreSQL.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { ANNOTATION, FINALIZER, LABEL } from './constants.js';
import { abortableSleep, errorText, type SimContext } from './context.js';
import { buildInstanceHba, reconcileConfiguration, refreshConfigurationFiles } from './instance-config.js';
import { pgdataClaim, privateSocketDir } from './jobs.js';
import { isConflict, isNotFound, type Obj } from './kube.js';
import { PodLog } from './podlog.js';
import { podStatus } from './podstatus.js';
import {
  buildPostgresqlConf,
  chownTo,
  controlInfo,
  disableSuperuserPassword,
  ensureOperatorRoles,
  PgServer,
  setRolePassword,
  waitUntilPrimary,
  withSuperuser,
  writeConfiguration,
} from './postgres.js';
import { appSecretName, metaTime, secretNames } from './specs.js';

interface InstanceRun {
  uid: string;
  namespace: string;
  pod: string;
  cluster: string;
  abort: AbortController;
  started: Promise<void>;
  log: PodLog;
  podDir: string;
  server?: PgServer;
  socketDir?: string;
  port?: number;
  ready: boolean;
  release?: () => void;
  /** Secret name → resourceVersion the instance manager last applied. */
  applied: Map<string, string>;
  rolesEnsured: boolean;
  systemId?: string;
  timeline?: number;
  /** Serializes the instance manager's SQL. */
  chain: Promise<unknown>;
  stopping?: Promise<void>;
}

export interface InstanceInfo {
  pod: string;
  ready: boolean;
  port: number | undefined;
  systemId: string | undefined;
  timeline: number | undefined;
}

const decode = (value: unknown): string | undefined =>
  typeof value === 'string' ? Buffer.from(value, 'base64').toString('utf8') : undefined;

export class Kubelet {
  readonly #ctx: SimContext;
  readonly #runs = new Map<string, InstanceRun>();
  readonly #finalizing = new Set<string>();
  readonly #pending = new Set<Promise<unknown>>();

  constructor(ctx: SimContext) {
    this.#ctx = ctx;
  }

  onPod(type: 'ADDED' | 'MODIFIED' | 'DELETED', pod: Obj): void {
    if (pod.metadata?.labels?.[LABEL.podRole] !== 'instance') return;
    const uid = String(pod.metadata.uid);
    if (type === 'DELETED') {
      this.#track(this.#terminate(uid));
      return;
    }
    if (pod.metadata.deletionTimestamp) {
      if (this.#finalizing.has(uid)) return;
      this.#finalizing.add(uid);
      this.#track(
        this.#terminate(uid)
          .then(() => this.#removeFinalizer(pod))
          .finally(() => this.#finalizing.delete(uid)),
      );
      return;
    }
    if (this.#runs.has(uid)) return;
    const abort = new AbortController();
    const onStop = (): void => abort.abort(this.#ctx.signal.reason);
    this.#ctx.signal.addEventListener('abort', onStop, { once: true });
    const podDir = join(this.#ctx.workDir, 'pods', pod.metadata.namespace, pod.metadata.name);
    const run: InstanceRun = {
      uid,
      namespace: pod.metadata.namespace,
      pod: pod.metadata.name,
      cluster: String(pod.metadata.labels?.[LABEL.cluster] ?? ''),
      abort,
      started: Promise.resolve(),
      log: new PodLog(this.#ctx.logDir, pod.metadata.namespace, pod.metadata.name),
      podDir,
      ready: false,
      applied: new Map(),
      rolesEnsured: false,
      chain: Promise.resolve(),
    };
    run.started = this.#start(run, pod)
      .catch((err: unknown) => {
        if (!abort.signal.aborted) {
          run.log.error('instance manager error', { error: errorText(err) });
          this.#ctx.log('error', 'instance start failed', { namespace: run.namespace, pod: run.pod, error: errorText(err) });
        }
      })
      .finally(() => this.#ctx.signal.removeEventListener('abort', onStop));
    this.#runs.set(uid, run);
  }

  /** Instances of a Cluster as this node sees them. */
  instances(namespace: string, cluster: string): InstanceInfo[] {
    return [...this.#runs.values()]
      .filter((r) => r.namespace === namespace && r.cluster === cluster && !r.stopping)
      .map((r) => ({ pod: r.pod, ready: r.ready, port: r.port, systemId: r.systemId, timeline: r.timeline }));
  }

  podLog(namespace: string, pod: string): PodLog {
    return new PodLog(this.#ctx.logDir, namespace, pod);
  }

  /** The instance manager's periodic credential refresh (re-applied when a secret's resourceVersion changes). */
  refreshCredentials(cluster: Obj): Promise<void> {
    const runs = [...this.#runs.values()].filter(
      (r) => r.namespace === cluster.metadata.namespace && r.cluster === cluster.metadata.name && r.ready && r.server && !r.stopping,
    );
    return Promise.all(runs.map((r) => this.#serial(r, () => this.#instanceManager(r, cluster)))).then(() => undefined);
  }

  /** SQL as superuser on a running instance of the Cluster (the primary if it runs PostgreSQL). */
  async sql<Row extends Record<string, unknown>>(
    namespace: string,
    cluster: string,
    text: string,
    params: unknown[] = [],
    database = 'postgres',
  ): Promise<Row[]> {
    const run = [...this.#runs.values()].find(
      (r) => r.namespace === namespace && r.cluster === cluster && r.server && r.ready && !r.stopping,
    );
    if (!run?.socketDir || run.port === undefined) throw new Error(`no running PostgreSQL instance of Cluster ${namespace}/${cluster}`);
    return withSuperuser(run.socketDir, run.port, async (c) => (await c.query(text, params)).rows as Row[], database);
  }

  async stop(): Promise<void> {
    for (const run of this.#runs.values()) run.abort.abort(new Error('the simulated operator is stopping'));
    await Promise.allSettled([...this.#pending]);
    await Promise.allSettled([...this.#runs.keys()].map((uid) => this.#terminate(uid, 'immediate')));
  }

  #track(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) => this.#ctx.log('error', 'kubelet error', { error: errorText(err) }));
    this.#pending.add(tracked);
    void tracked.finally(() => this.#pending.delete(tracked));
  }

  #serial<T>(run: InstanceRun, work: () => Promise<T>): Promise<T> {
    const next = run.chain.then(work, work);
    run.chain = next.catch(() => undefined);
    return next;
  }

  async #patchStatus(run: InstanceRun, status: Obj): Promise<void> {
    if (run.abort.signal.aborted) return;
    try {
      await this.#ctx.kube.mergePatch('pods', run.namespace, run.pod, { status }, 'status');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async #start(run: InstanceRun, pod: Obj): Promise<void> {
    const { kube, timings, volumes, rt } = this.#ctx;
    const signal = run.abort.signal;
    await abortableSleep(timings.phaseStepMs, signal);
    const claim = pgdataClaim(pod.spec) ?? '';
    const pvc = await kube.getOrNull('pvcs', run.namespace, claim);
    if (!pvc) {
      run.log.error('persistent volume claim not found: the Pod stays Pending', { claim });
      return;
    }
    const volume = volumes.ensure(pvc);
    run.release = volumes.acquire(volume.uid);
    const startedAt = metaTime();
    run.log.info('Starting CloudNativePG Instance Manager', { clusterName: run.cluster, namespace: run.namespace });
    if (volume.simulatedReplica) {
      run.ready = true;
      await this.#patchStatus(run, podStatus(pod, { kind: 'running', ready: true }, startedAt));
      run.log.info('Simulated replica: no PostgreSQL runs for this instance (test/cnpg-sim)');
      this.#ctx.enqueueCluster(run.namespace, run.cluster);
      return;
    }
    if (!volumes.hasPostgresData(volume)) {
      run.log.error('PGDATA is empty: this volume was never bootstrapped', { pgdata: '/var/lib/postgresql/data/pgdata' });
      await this.#patchStatus(
        run,
        podStatus(
          pod,
          { kind: 'waiting', reason: 'CrashLoopBackOff', message: 'back-off restarting failed container postgres', restartCount: 1 },
          startedAt,
        ),
      );
      this.#ctx.enqueueCluster(run.namespace, run.cluster);
      return;
    }
    await this.#patchStatus(run, podStatus(pod, { kind: 'running', ready: false }, startedAt));
    mkdirSync(run.podDir, { recursive: true });
    chownTo(run.podDir, rt.runAs);
    const port = await this.#ctx.portFor(run.namespace, run.cluster);
    run.port = port;
    run.socketDir = privateSocketDir(this.#ctx.workDir, rt.runAs);
    const ssl = await this.#writeCertificates(run);
    // The first reconcile writes pg_hba.conf and custom.conf from the spec before PostgreSQL starts (§10.3).
    const initial = await kube.getOrNull('clusters', run.namespace, run.cluster);
    writeConfiguration(
      volume.pgdata,
      buildPostgresqlConf({
        clusterName: run.cluster,
        port,
        listenAddresses: '127.0.0.1',
        socketDir: run.socketDir,
        ...(ssl ? { ssl } : {}),
      }),
      buildInstanceHba(initial?.spec),
      rt.runAs,
    );
    refreshConfigurationFiles(volume.pgdata, initial?.spec, rt.runAs, true);
    const logFile = join(run.podDir, 'postgres.log');
    writeFileSync(logFile, '');
    chownTo(logFile, rt.runAs);
    const server = new PgServer(rt, volume.pgdata, logFile);
    // Known before it starts, so a termination that lands mid-start still stops it.
    run.server = server;
    for (let restarts = 0; ; restarts++) {
      try {
        await server.start(signal);
        break;
      } catch (err) {
        if (signal.aborted) return;
        run.log.error('PostgreSQL exited', { error: errorText(err) });
        await this.#patchStatus(
          run,
          podStatus(
            pod,
            {
              kind: 'waiting',
              reason: 'CrashLoopBackOff',
              message: 'back-off restarting failed container postgres',
              restartCount: restarts + 1,
            },
            startedAt,
          ),
        );
        await abortableSleep(Math.min(1000 * 2 ** restarts, 10_000), signal);
      }
    }
    if (signal.aborted) return;
    run.log.info('postmaster started', { port, simulatedService: `${run.cluster}-rw` });
    await waitUntilPrimary(run.socketDir, port);
    const info = await withSuperuser(run.socketDir, port, (c) => controlInfo(c));
    run.systemId = info.systemId;
    run.timeline = info.timeline;
    const cluster = await kube.getOrNull('clusters', run.namespace, run.cluster);
    // The instance manager finds its Cluster by name (the Pod may still belong to an earlier one).
    if (cluster) await this.#serial(run, () => this.#instanceManager(run, cluster));
    run.ready = true;
    await this.#patchStatus(run, podStatus(pod, { kind: 'running', ready: true }, startedAt));
    this.#ctx.enqueueCluster(run.namespace, run.cluster);
  }

  /** The server certificate (X-server) and the client CA (X-ca) as files PostgreSQL reads; none → ssl off. */
  async #writeCertificates(run: InstanceRun): Promise<{ certFile: string; keyFile: string; caFile: string } | undefined> {
    const names = secretNames(run.cluster);
    const server = await this.#ctx.kube.getOrNull('secrets', run.namespace, names.server);
    const ca = await this.#ctx.kube.getOrNull('secrets', run.namespace, names.ca);
    const cert = decode(server?.data?.['tls.crt']);
    const key = decode(server?.data?.['tls.key']);
    const caCert = decode(ca?.data?.['ca.crt']);
    if (!cert || !key || !caCert) return undefined;
    const dir = join(run.podDir, 'certificates');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chownTo(dir, this.#ctx.rt.runAs);
    const files = { certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key'), caFile: join(dir, 'client-ca.crt') };
    for (const [file, content] of [
      [files.certFile, cert],
      [files.keyFile, key],
      [files.caFile, caCert],
    ] as const) {
      writeFileSync(file, content, { mode: 0o600 });
      chownTo(file, this.#ctx.rt.runAs);
    }
    return files;
  }

  /** refreshCredentialsFromSecret and the roles the instance manager keeps (§2.4). */
  async #instanceManager(run: InstanceRun, cluster: Obj): Promise<void> {
    if (!run.socketDir || run.port === undefined || run.stopping) return;
    const { kube } = this.#ctx;
    const ns = run.namespace;
    const spec = (cluster.spec ?? {}) as Obj;
    if (run.server) {
      const outcome = await reconcileConfiguration(
        { server: run.server, socketDir: run.socketDir, port: run.port, runAs: this.#ctx.rt.runAs, signal: run.abort.signal },
        spec,
      );
      if (outcome !== 'unchanged') run.log.info(outcome === 'restarted' ? 'Primary instance restarted in-place' : 'Configuration reloaded');
    }
    await withSuperuser(run.socketDir, run.port, async (client: pg.Client) => {
      if (!run.rolesEnsured) {
        await ensureOperatorRoles(client);
        run.rolesEnsured = true;
      }
      if (spec.enableSuperuserAccess === true) {
        const name = spec.superuserSecret?.name || secretNames(run.cluster).superuser;
        const secret = await kube.getOrNull('secrets', ns, name);
        if (secret && run.applied.get(name) !== secret.metadata.resourceVersion) {
          run.applied.set(name, secret.metadata.resourceVersion);
          const password = decode(secret.data?.password);
          if (password === undefined) {
            run.log.error('while updating superuser password', { error: "password key doesn't exist inside the secret" });
          } else {
            await setRolePassword(
              client,
              'postgres',
              password,
              secret.metadata.annotations?.[ANNOTATION.passwordPassthrough] === 'enabled',
            );
            run.log.info('Updated the superuser password', { secret: name });
          }
        }
      } else if (await disableSuperuserPassword(client)) {
        run.log.info('Disabled the superuser password (enableSuperuserAccess is false)');
      }
      const bootstrap = spec.bootstrap?.pg_basebackup as Obj | undefined;
      if (!bootstrap || spec.replica?.enabled === true) return;
      const owner = String(bootstrap.owner || bootstrap.database || 'app');
      const name = appSecretName(cluster);
      const secret = await kube.getOrNull('secrets', ns, name);
      if (!secret || run.applied.get(name) === secret.metadata.resourceVersion) return;
      run.applied.set(name, secret.metadata.resourceVersion);
      const username = decode(secret.data?.username);
      const password = decode(secret.data?.password);
      let problem: string | undefined;
      if (username === undefined) problem = "username key doesn't exist inside the secret";
      else if (password === undefined) problem = "password key doesn't exist inside the secret";
      else if (username !== owner) problem = `wrong username '${username}' in secret, expected '${owner}'`;
      if (problem || password === undefined) {
        run.log.error('Error while reconciling the instance', { error: `while updating database owner password: ${problem}` });
        this.#ctx.log('error', 'instance manager: cannot set the owner password', { namespace: ns, cluster: run.cluster, error: problem });
        return;
      }
      await setRolePassword(client, owner, password, secret.metadata.annotations?.[ANNOTATION.passwordPassthrough] === 'enabled');
      run.log.info('Updated the database owner password', { owner, secret: name });
    });
  }

  /** Stops the instance (fast shutdown, like a Pod's graceful termination) and waits out podTerminationMs. */
  #terminate(uid: string, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    const run = this.#runs.get(uid);
    if (!run) return Promise.resolve();
    run.stopping ??= (async () => {
      const began = Date.now();
      run.abort.abort(new Error('the Pod is terminating'));
      await run.started;
      await run.chain;
      run.ready = false;
      if (run.server) {
        await run.server.stop(mode);
        run.log.info('PostgreSQL stopped', { mode });
      }
      run.release?.();
      if (run.socketDir) rmSync(run.socketDir, { recursive: true, force: true });
      rmSync(run.podDir, { recursive: true, force: true });
      const wait = this.#ctx.timings.podTerminationMs - (Date.now() - began);
      if (mode === 'fast' && wait > 0 && !this.#ctx.signal.aborted) await new Promise((resolve) => setTimeout(resolve, wait));
      this.#runs.delete(uid);
    })();
    return run.stopping;
  }

  async #removeFinalizer(pod: Obj): Promise<void> {
    if (!((pod.metadata.finalizers ?? []) as string[]).includes(FINALIZER.podTermination)) return;
    if (this.#ctx.signal.aborted) return;
    for (let attempt = 0; attempt < 10; attempt++) {
      const current = await this.#ctx.kube.getOrNull('pods', pod.metadata.namespace, pod.metadata.name);
      if (!current || current.metadata.uid !== pod.metadata.uid) return;
      const finalizers = ((current.metadata.finalizers ?? []) as string[]).filter((f) => f !== FINALIZER.podTermination);
      try {
        await this.#ctx.kube.mergePatch('pods', pod.metadata.namespace, pod.metadata.name, {
          metadata: { resourceVersion: current.metadata.resourceVersion, finalizers: finalizers.length ? finalizers : null },
        });
        return;
      } catch (err) {
        if (isNotFound(err)) return;
        if (!isConflict(err)) throw err;
      }
    }
  }
}
