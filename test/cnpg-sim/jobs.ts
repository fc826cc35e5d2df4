/**
 * The Kubernetes Job controller and kubelet for CNPG's bootstrap Jobs. For each Job it creates Pods
 * `<job>-<5 chars>` one after the other, runs the container's work here, writes Pod and Job statuses,
 * and after `backoffLimit + 1` failed Pods marks the Job Failed/BackoffLimitExceeded (§2.5).
 *
 * The `pgbasebackup` container does what `/controller/manager instance pgbasebackup` does (§2.3) with
 * the real pg_basebackup and PostgreSQL binaries: it reads the external cluster's secrets, loops the
 * IDENTIFY_SYSTEM probe ("DB not available, will retry"), runs `pg_basebackup -D <pgdata> -v -w -d
 * '<conninfo>'` (no -X, no -c), rewrites the configuration, starts the clone and runs
 * ConfigureNewInstance. The `join` container of replicas is simulated (§1.1 replica walk).
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../../src/postgres/command.js';
import { JOB_ROLE, LABEL, LOG_MSG } from './constants.js';
import { abortableSleep, errorText, type SimContext } from './context.js';
import { refreshConfigurationFiles } from './instance-config.js';
import { controllerOf, isNotFound, type Obj } from './kube.js';
import { PodLog } from './podlog.js';
import { jobFailedStatus, jobHasCondition, jobSucceededStatus, podStatus } from './podstatus.js';
import {
  buildPgHba,
  buildPostgresqlConf,
  chownTo,
  cleanEnv,
  configureNewInstance,
  PgServer,
  waitUntilPrimary,
  withSuperuser,
  writeConfiguration,
} from './postgres.js';
import { type ProbeResult, prepareSourceConnection, probeSource, SourceSecretError } from './source.js';
import { buildJobPod, metaTime } from './specs.js';
import { imageMajorVersion, imageVersionText } from './validate.js';

interface JobRun {
  abort: AbortController;
  done: Promise<void>;
}

/** The claim a Job's or Pod's `pgdata` volume names. */
export function pgdataClaim(podSpec: Obj | undefined): string | undefined {
  return ((podSpec?.volumes ?? []) as Obj[]).find((v) => v.name === 'pgdata')?.persistentVolumeClaim?.claimName;
}

export function isCnpgJob(job: Obj): boolean {
  const owner = controllerOf(job);
  return Boolean(job.metadata?.labels?.[LABEL.jobRole]) && owner?.kind === 'Cluster';
}

export class JobController {
  readonly #ctx: SimContext;
  readonly #runs = new Map<string, JobRun>();

  constructor(ctx: SimContext) {
    this.#ctx = ctx;
  }

  onJob(type: 'ADDED' | 'MODIFIED' | 'DELETED', job: Obj): void {
    if (!isCnpgJob(job)) return;
    const uid = String(job.metadata.uid);
    if (type === 'DELETED' || job.metadata.deletionTimestamp) {
      this.#runs.get(uid)?.abort.abort(new Error('the Job was deleted'));
      return;
    }
    if (jobHasCondition(job, 'Complete') || jobHasCondition(job, 'Failed') || this.#runs.has(uid)) return;
    const abort = new AbortController();
    const onStop = (): void => abort.abort(this.#ctx.signal.reason);
    this.#ctx.signal.addEventListener('abort', onStop, { once: true });
    const done = this.#run(job, abort.signal)
      .catch((err: unknown) => {
        if (!abort.signal.aborted)
          this.#ctx.log('error', 'job controller error', {
            job: job.metadata.name,
            namespace: job.metadata.namespace,
            error: errorText(err),
          });
      })
      .finally(() => {
        this.#ctx.signal.removeEventListener('abort', onStop);
        this.#runs.delete(uid);
      });
    this.#runs.set(uid, { abort, done });
  }

  async stop(): Promise<void> {
    for (const run of this.#runs.values()) run.abort.abort(new Error('the simulated operator is stopping'));
    await Promise.allSettled([...this.#runs.values()].map((r) => r.done));
  }

  async #run(job: Obj, signal: AbortSignal): Promise<void> {
    const { kube, timings } = this.#ctx;
    const ns = String(job.metadata.namespace);
    const name = String(job.metadata.name);
    const clusterName = String(job.metadata.labels?.[LABEL.cluster] ?? '');
    const backoffLimit = timings.jobBackoffLimit ?? Number(job.spec?.backoffLimit ?? 6);
    let failed = Number(job.status?.failed ?? 0);
    const startTime = job.status?.startTime ?? metaTime();
    const patchJob = async (status: Obj): Promise<void> => {
      if (signal.aborted) return;
      try {
        await kube.mergePatch('jobs', ns, name, { status }, 'status');
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    };
    while (!signal.aborted) {
      const pod = await kube.create('pods', ns, buildJobPod(job, this.#ctx.nodeName));
      const podName = String(pod.metadata.name);
      await patchJob({ startTime, active: 1, ready: 0, terminating: 0, failed, uncountedTerminatedPods: {} });
      await abortableSleep(timings.phaseStepMs, signal);
      const startedAt = metaTime();
      const patchPod = async (status: Obj): Promise<void> => {
        try {
          await kube.mergePatch('pods', ns, podName, { status }, 'status');
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      };
      await patchPod(podStatus(pod, { kind: 'running', ready: true }, startedAt));
      await patchJob({ ready: 1 });
      const log = new PodLog(this.#ctx.logDir, ns, podName);
      const role = job.metadata.labels?.[LABEL.jobRole];
      let exitCode: number;
      try {
        exitCode =
          role === JOB_ROLE.pgbasebackup ? await this.#pgbasebackup(job, podName, log, signal) : await this.#join(job, log, signal);
      } catch (err) {
        if (signal.aborted) return;
        log.error(LOG_MSG.unableToBootstrap, { error: errorText(err) });
        exitCode = 1;
      }
      if (signal.aborted) return;
      await patchPod(podStatus(pod, { kind: 'terminated', exitCode }, startedAt));
      if (exitCode === 0) {
        await patchJob(jobSucceededStatus(job));
        this.#ctx.log('info', 'job succeeded', { namespace: ns, job: name, pod: podName });
        this.#ctx.enqueueCluster(ns, clusterName);
        return;
      }
      failed++;
      if (failed > backoffLimit) {
        await patchJob(jobFailedStatus(job, failed));
        this.#ctx.log('info', 'job failed: backoff limit exceeded', { namespace: ns, job: name, failed });
        this.#ctx.enqueueCluster(ns, clusterName);
        return;
      }
      await patchJob({ active: 0, ready: 0, failed });
      this.#ctx.enqueueCluster(ns, clusterName);
      await abortableSleep(Math.min(timings.podRetryDelayMs * 2 ** (failed - 1), timings.podRetryMaxDelayMs), signal);
    }
  }

  /** The simulated `instance join` of a replica: no data is copied. */
  async #join(job: Obj, log: PodLog, signal: AbortSignal): Promise<number> {
    const pvc = await this.#ctx.kube.getOrNull('pvcs', job.metadata.namespace, pgdataClaim(job.spec?.template?.spec) ?? '');
    if (!pvc) {
      log.error(LOG_MSG.unableToBootstrap, { error: `persistentvolumeclaims "${pgdataClaim(job.spec?.template?.spec)}" not found` });
      return 1;
    }
    const volume = this.#ctx.volumes.ensure(pvc);
    volume.simulatedReplica = true;
    log.info('Simulated join: this replica holds no data (test/cnpg-sim does not stream replicas)', {
      parentNode: `${job.metadata.labels?.[LABEL.cluster]}-rw`,
    });
    await abortableSleep(this.#ctx.timings.phaseStepMs, signal);
    return 0;
  }

  async #pgbasebackup(job: Obj, podName: string, log: PodLog, signal: AbortSignal): Promise<number> {
    const { kube, rt, timings } = this.#ctx;
    const ns = String(job.metadata.namespace);
    const clusterName = String(job.metadata.labels?.[LABEL.cluster] ?? '');
    // WaitForGetCluster
    let cluster: Obj | null = null;
    while (!cluster) {
      cluster = await kube.getOrNull('clusters', ns, clusterName);
      if (!cluster) await abortableSleep(1000, signal);
    }
    const claim = pgdataClaim(job.spec?.template?.spec) ?? '';
    const pvc = await kube.getOrNull('pvcs', ns, claim);
    if (!pvc) {
      log.error(LOG_MSG.unableToBootstrap, { error: `persistentvolumeclaims "${claim}" not found` });
      return 1;
    }
    const volume = this.#ctx.volumes.ensure(pvc);
    const release = this.#ctx.volumes.acquire(volume.uid);
    const podDir = join(this.#ctx.workDir, 'pods', ns, podName);
    mkdirSync(podDir, { recursive: true });
    chownTo(podDir, rt.runAs);
    try {
      // EnsureTargetDirectoriesDoNotExist (v1.30): a retried Pod starts from an empty PGDATA.
      rmSync(volume.pgdata, { recursive: true, force: true });
      const spec = (cluster.spec ?? {}) as Obj;
      const bootstrap = (spec.bootstrap?.pg_basebackup ?? {}) as Obj;
      const external = ((spec.externalClusters ?? []) as Obj[]).find((c) => c.name === bootstrap.source);
      if (!external) {
        log.error(LOG_MSG.unableToBootstrap, { error: `external cluster ${bootstrap.source} not found` });
        return 1;
      }
      let conn: Awaited<ReturnType<typeof prepareSourceConnection>>;
      try {
        conn = await prepareSourceConnection(
          kube,
          ns,
          external,
          join(podDir, 'external', String(external.name)),
          rt.runAs,
          this.#ctx.resolveSource,
        );
      } catch (err) {
        if (err instanceof SourceSecretError) {
          log.error(LOG_MSG.unableToBootstrap, { error: err.message });
          return 1;
        }
        throw err;
      }
      log.info(LOG_MSG.waitingForServer, { connectionString: conn.conninfo });
      let probe: ProbeResult | undefined;
      while (!probe) {
        try {
          probe = await probeSource(conn);
        } catch (err) {
          if (signal.aborted) throw err;
          log.info(LOG_MSG.dbNotAvailable, { err: errorText(err) });
          await abortableSleep(timings.probeRetryMs, signal);
        }
      }
      const sourceMajor = Math.floor(probe.serverVersionNum / 10000);
      const image = String(spec.imageName ?? '');
      const imageMajor = imageMajorVersion(image) ?? sourceMajor;
      try {
        if (imageMajor < sourceMajor) {
          // Simulated (the machine has one PostgreSQL version): the image's older pg_basebackup refuses a newer server (§6.1).
          log.pipe('pg_basebackup', `pg_basebackup: error: incompatible server version ${probe.serverVersion}`);
          log.error(LOG_MSG.unableToBootstrap, { error: 'while cloning pgdata: error in pg_basebackup, exit status 1' });
          return 1;
        }
        const result = await runCommand(join(rt.binDir, 'pg_basebackup'), ['-D', volume.pgdata, '-v', '-w', '-d', conn.conninfo], {
          runAs: rt.runAs,
          env: cleanEnv(),
          cwd: podDir,
          signal,
          onLine: (line) => log.pipe('pg_basebackup', line),
        });
        if (signal.aborted) return 1;
        if (result.exitCode !== 0) {
          log.error(LOG_MSG.unableToBootstrap, {
            error: `while cloning pgdata: error in pg_basebackup, exit status ${result.exitCode ?? result.signal}`,
          });
          return 1;
        }
      } finally {
        await probe.client.end().catch(() => undefined);
      }
      const marker = join(volume.pgdata, '.check-empty-wal-archive');
      writeFileSync(marker, '');
      chownTo(marker, rt.runAs);
      if (imageMajor > sourceMajor) {
        // Simulated: the image's newer server refuses the older data directory when it starts (§6.1).
        log.pipe('postgres', 'FATAL:  database files are incompatible with server');
        log.pipe(
          'postgres',
          `DETAIL:  The data directory was initialized by PostgreSQL version ${sourceMajor}, which is not compatible with this version ${imageVersionText(image)}.`,
        );
        log.error(LOG_MSG.unableToBootstrap, {
          error: 'while configuring the restored instance: PostgreSQL could not start (exit status 1)',
        });
        return 1;
      }
      return await this.#configureAsNewPrimary(cluster, volume.pgdata, podDir, log, signal);
    } finally {
      release();
      rmSync(podDir, { recursive: true, force: true });
    }
  }

  /** configureInstanceAsNewPrimary: new configuration, start, wait for the end of recovery, ConfigureNewInstance. */
  async #configureAsNewPrimary(cluster: Obj, pgdata: string, podDir: string, log: PodLog, signal: AbortSignal): Promise<number> {
    const { rt } = this.#ctx;
    const socketDir = privateSocketDir(this.#ctx.workDir, rt.runAs);
    const port = 5432;
    writeConfiguration(
      pgdata,
      buildPostgresqlConf({ clusterName: cluster.metadata.name, port, listenAddresses: '', socketDir }),
      buildPgHba('restore'),
      rt.runAs,
    );
    // WriteInitialPostgresqlConf: the spec's parameters are in effect from the first start (§10.1).
    refreshConfigurationFiles(pgdata, cluster.spec, rt.runAs, false);
    const logFile = join(podDir, 'postgres.log');
    writeFileSync(logFile, '');
    chownTo(logFile, rt.runAs);
    const server = new PgServer(rt, pgdata, logFile);
    try {
      await server.start(signal);
    } catch (err) {
      // An abort can land after the postmaster came up.
      await server.stop('immediate');
      for (const line of server.logTail(5)) log.pipe('postgres', line);
      log.error(LOG_MSG.unableToBootstrap, { error: `while configuring the restored instance: ${errorText(err)}` });
      rmSync(socketDir, { recursive: true, force: true });
      return 1;
    }
    try {
      await waitUntilPrimary(socketDir, port);
      const bootstrap = (cluster.spec?.bootstrap?.pg_basebackup ?? {}) as Obj;
      const database = String(bootstrap.database || 'app');
      const owner = String(bootstrap.owner || database);
      log.info('Configuring new PostgreSQL instance', { database, owner });
      const done = await withSuperuser(socketDir, port, (client) => configureNewInstance(client, { database, owner }));
      for (const statement of done) log.info('executed', { statement });
      return 0;
    } finally {
      await server.stop('fast');
      rmSync(socketDir, { recursive: true, force: true });
    }
  }
}

/** A short private folder for a server's Unix socket (socket paths are limited to ~107 bytes). */
export function privateSocketDir(workDir: string, runAs: SimContext['rt']['runAs']): string {
  const base = join(workDir, 's');
  if (!existsSync(base)) mkdirSync(base, { mode: 0o755 });
  const dir = join(base, Math.random().toString(36).slice(2, 8));
  mkdirSync(dir, { mode: 0o700 });
  chownTo(dir, runAs);
  return dir;
}
