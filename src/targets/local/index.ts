import { existsSync, readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { systemClock } from '../../clock.js';
import type { JobConfig, LocalTargetConfig, PgEndpoint } from '../../config/types.js';
import { PhaseFailure } from '../../errors.js';
import { classifyLog } from '../../failures.js';
import type { Logger } from '../../observe/logger.js';
import type { Clock, PhaseContext, PrivateAccess, SqlConnector, Target } from '../../ports.js';
import { describeSearch, discoverPgBinDirs, type PgBinDir } from '../../postgres/binaries.js';
import { childEnv } from '../../postgres/child-env.js';
import { runCommand } from '../../postgres/command.js';
import { type OsUser, serverOsUser } from '../../postgres/os-user.js';
import type { Check, SourceFacts } from '../../run/facts.js';
import type { PhaseDetail, RunRecord, TargetDescription } from '../../run/record.js';
import { needsPrivateWindow } from '../../safe-copy/plan.js';
import { portCheck, roomCheck, versionCheck } from './checks.js';
import { clearStaging, cloneCopy } from './clone.js';
import { authDirFor, pgCtlStartArgs, pgCtlStopArgs, SERVER_LOG_FILE, STAGING_MARKER_FILE, stagingDirFor } from './commands.js';
import { directorySize, inspectDataDir, overlaps, readMarker, refusalReason, runningServer } from './data-dir.js';
import { endCloneProcesses } from './orphans.js';
import {
  closePrivately,
  ensureRunsPrivately,
  type PrivateWindowDeps,
  privateEndpoint,
  runsPrivately,
  startPrivately,
} from './private-window.js';
import { emptyTrash, moveToTrash } from './removal.js';

export type LocalJob = JobConfig & { target: LocalTargetConfig };

/** Narrows a job to one with a local target (for callers holding a plain JobConfig). */
export function asLocalJob(job: JobConfig): LocalJob {
  if (job.target.kind !== 'local') throw new Error(`job "${job.name}" has a ${job.target.kind} target, not local`);
  return { ...job, target: job.target };
}

export interface LocalTargetOptions {
  job: LocalJob;
  /** `jobs[3]`, so messages can name the config key to change. */
  jobPath: string;
  env?: NodeJS.ProcessEnv;
  clock?: Clock;
  /** Reaches the copy through its private socket during the private window. */
  sql?: SqlConnector;
}

export class LocalTarget implements Target {
  readonly #job: LocalJob;
  readonly #config: LocalTargetConfig;
  readonly #jobPath: string;
  readonly #env: NodeJS.ProcessEnv;
  readonly #clock: Clock;
  readonly #sql: SqlConnector | undefined;

  constructor(options: LocalTargetOptions) {
    this.#job = options.job;
    this.#config = options.job.target;
    this.#jobPath = options.jobPath;
    this.#env = options.env ?? process.env;
    this.#clock = options.clock ?? systemClock;
    this.#sql = options.sql;
  }

  describe(): TargetDescription {
    const { dataDir, host, port } = this.#config;
    return {
      kind: 'local',
      summary: `local data directory ${dataDir}, served on ${host}:${port}`,
      details: { dataDir, host, port, adopt: this.#config.adopt },
      steps: {
        teardown: `stop the copy in ${dataDir} (fast shutdown), move the directory aside in one step and delete it, only if db-refresher created it for this job${this.#config.adopt ? ' (or adopt it: adopt is on)' : ''}`,
        clone: `pg_basebackup -X stream -c fast into ${stagingDirFor(dataDir)}, then move it to ${dataDir}`,
        start: needsPrivateWindow(this.#job)
          ? `pg_ctl start with no TCP listener, on a private Unix socket only db-refresher reaches (archiving off, no logical replication workers, no pg_cron jobs); open it on ${host}:${port} once the copy is prepared`
          : `pg_ctl start on ${host}:${port} (archiving off, no Unix socket) and wait until it accepts connections`,
      },
    };
  }

  endpoint(database: string): PgEndpoint {
    const { source } = this.#job;
    return {
      host: this.#config.host,
      port: this.#config.port,
      user: source.sql.user,
      password: source.sql.password,
      dbname: database,
      // The copy carries the source's server certificate, issued for the source's name, not ours:
      // encrypt when the copy offers TLS, but do not check the name. It is our own copy on this host.
      sslmode: 'prefer',
      sslCert: source.sslCert,
      sslKey: source.sslKey,
    };
  }

  #runAs(): OsUser | undefined {
    return serverOsUser(this.#env);
  }

  #refusal(): string | undefined {
    const { dataDir, port } = this.#config;
    const reason = refusalReason(inspectDataDir(dataDir, this.#job.name), {
      dataDir,
      job: this.#job.name,
      adopt: this.#config.adopt,
      jobIndexHint: this.#jobPath,
    });
    if (reason) return reason;
    // A server running from the directory on another port is not our copy as configured;
    // it could be any live database, the source included (when its data_directory is not readable to us).
    const running = runningServer(dataDir);
    if (running && running.port !== port) {
      return `a PostgreSQL server (pid ${running.pid}) is running from ${dataDir} on port ${running.port}, not on the target port ${port}; it may be a live database, so db-refresher will not stop it. Stop it yourself if it really is disposable`;
    }
    return undefined;
  }

  async preflight(source: SourceFacts | undefined): Promise<Check[]> {
    const checks: Check[] = [];
    const { dataDir } = this.#config;
    if (source) checks.push(versionCheck(source, this.#env));

    try {
      const user = this.#runAs();
      if (user)
        checks.push({
          name: 'server OS user',
          ok: true,
          message: `running as root, so PostgreSQL programs run as ${user.name} (uid ${user.uid})`,
        });
    } catch (error) {
      checks.push({ name: 'server OS user', ok: false, failureClass: 'unsafe-target', message: (error as Error).message });
    }

    const refusal = this.#refusal();
    const state = inspectDataDir(dataDir, this.#job.name);
    checks.push(
      refusal
        ? { name: 'target is ours to replace', ok: false, failureClass: 'unsafe-target', message: refusal }
        : {
            name: 'target is ours to replace',
            ok: true,
            message:
              state.kind === 'ours'
                ? `${dataDir} was created by db-refresher (run ${state.marker.runId})`
                : state.kind === 'unmarked-pgdata'
                  ? `${dataDir} has no marker and will be adopted (adopt: true)`
                  : `${dataDir} does not exist yet, or is empty`,
          },
    );
    if (source?.dataDirectory && overlaps(source.dataDirectory, dataDir)) {
      checks.push({
        name: 'target is not the source',
        ok: false,
        failureClass: 'unsafe-target',
        message: `${dataDir} is the source's own data directory (${source.dataDirectory}); refreshing it would destroy the source`,
      });
    } else {
      checks.push({
        name: 'target is not the source',
        ok: true,
        message: source?.dataDirectory ? `the source lives in ${source.dataDirectory}` : 'the source is elsewhere',
      });
    }

    const staging = stagingDirFor(dataDir);
    if (existsSync(staging) && !existsSync(path.join(staging, STAGING_MARKER_FILE))) {
      checks.push({
        name: 'staging directory free',
        ok: false,
        failureClass: 'unsafe-target',
        message: `${staging} exists and was not created by db-refresher; move it away (db-refresher clones into it before moving the copy into place)`,
      });
    }

    checks.push(await portCheck(this.#config, state.kind === 'ours' || state.kind === 'unmarked-pgdata'));
    if (source)
      checks.push(
        await roomCheck(this.#config.dataDir, source, refusal === undefined && state.kind !== 'missing' && state.kind !== 'empty'),
      );
    return checks;
  }

  /** The binaries of the source's major version (preflight checked they exist); in a resumed run, which skips preflight, of the copy's own PG_VERSION. */
  #binDir(ctx: PhaseContext): PgBinDir {
    const all = discoverPgBinDirs(this.#env);
    const found = ctx.facts
      ? all.find((d) => d.major === ctx.facts?.majorVersion)
      : (all.find((d) => d.major === Number(readFileSyncSafe(path.join(this.#config.dataDir, 'PG_VERSION')))) ?? all[0]);
    if (!found) throw new PhaseFailure('version-mismatch', `no PostgreSQL server binaries found (searched ${describeSearch(this.#env)})`);
    return found;
  }

  #binary(program: 'pg_basebackup' | 'pg_ctl', ctx: PhaseContext): string {
    return path.join(this.#binDir(ctx).dir, program);
  }

  async teardown(ctx: PhaseContext): Promise<PhaseDetail> {
    const { dataDir } = this.#config;
    // Checked again here, not only in preflight: the directory may have changed since.
    const refusal = this.#refusal();
    if (refusal) throw new PhaseFailure('unsafe-target', refusal);
    const state = inspectDataDir(dataDir, this.#job.name);
    if (state.kind === 'missing' || state.kind === 'empty') {
      const leftovers = await emptyTrash(dataDir, this.#job.name);
      return { removed: false, reason: 'nothing to remove', ...(leftovers.length ? { removedLeftovers: leftovers } : {}) };
    }

    let stopped = false;
    const running = runningServer(dataDir);
    if (running) {
      ctx.log.info({ dataDir, pid: running.pid }, 'stopping the current copy (fast shutdown)');
      const result = await runCommand(this.#binary('pg_ctl', ctx), pgCtlStopArgs(dataDir), {
        env: childEnv(this.#env),
        runAs: this.#runAs(),
        signal: ctx.signal,
      });
      if (result.exitCode !== 0 && runningServer(dataDir)) {
        throw new PhaseFailure('unknown', `pg_ctl stop failed for ${dataDir} (exit ${result.exitCode})`, { details: result.tail });
      }
      stopped = true;
    }
    const bytes = directorySize(dataDir);
    // One atomic rename: the data directory path holds the whole old copy or nothing, whenever a kill comes.
    const trash = await moveToTrash({ dataDir, job: this.#job.name, runId: ctx.runId });
    await emptyTrash(dataDir, this.#job.name);
    ctx.log.info({ dataDir, bytes, via: trash }, 'removed the old copy');
    return { stopped, removed: true, bytesFreed: bytes, previousRun: state.kind === 'ours' ? state.marker.runId : undefined };
  }

  async clone(ctx: PhaseContext): Promise<PhaseDetail> {
    return cloneCopy(
      {
        job: this.#job,
        env: this.#env,
        clock: this.#clock,
        runAs: this.#runAs(),
        binDir: () => this.#binDir(ctx).dir,
      },
      ctx,
    );
  }

  async start(ctx: PhaseContext): Promise<PhaseDetail> {
    const { dataDir } = this.#config;
    const marker = readMarker(dataDir);
    if (!marker || marker.job !== this.#job.name) {
      throw new PhaseFailure('unsafe-target', `${dataDir} is not a copy made by this job; refusing to start it`);
    }
    const notOurs = this.#madeByAnotherRun(ctx.runId);
    if (notOurs) throw new PhaseFailure('unsafe-target', notOurs);
    if (needsPrivateWindow(this.#job)) {
      return startPrivately(this.#window(ctx), { noLogicalWorkers: this.#job.neutralise.subscriptions }, ctx);
    }
    return this.#startOpen(ctx);
  }

  #window(ctx: PhaseContext): PrivateWindowDeps {
    const { dataDir, startTimeoutSeconds } = this.#config;
    return { dataDir, pgCtl: this.#binary('pg_ctl', ctx), runAs: this.#runAs(), startTimeoutSeconds };
  }

  async privateAccess(ctx: PhaseContext): Promise<PrivateAccess> {
    if (!this.#sql) throw new Error('the local target was built without a SQL connector');
    const { source } = this.#job;
    const window = this.#window(ctx);
    // A copy found down (an `open` killed between its stop and its start) starts privately again.
    await ensureRunsPrivately(window, { noLogicalWorkers: this.#job.neutralise.subscriptions }, ctx);
    const endpoint = await privateEndpoint(window, this.#sql, { user: source.sql.user, database: source.dbname }, this.#config.port);
    return { endpoint, maintenanceDatabase: source.dbname };
  }

  async windowOpened(ctx: PhaseContext): Promise<boolean> {
    // Only `open` starts the copy on its port, after its checks passed (`start` refuses a copy running open).
    return !runsPrivately(this.#window(ctx)) && runningServer(this.#config.dataDir) !== undefined;
  }

  async open(ctx: PhaseContext): Promise<PhaseDetail> {
    const window = this.#window(ctx);
    if (await this.windowOpened(ctx)) return { alreadyOpen: true };
    const closed = await closePrivately(window, ctx);
    const started = await this.#startOpen(ctx);
    return { ...closed, ...started };
  }

  reservedRoles(): string[] {
    // db-refresher verifies the copy with the source's credentials.
    return [this.#job.source.user, this.#job.source.sql.user];
  }

  async #startOpen(ctx: PhaseContext): Promise<PhaseDetail> {
    const { dataDir, host, port, startTimeoutSeconds } = this.#config;
    const running = runningServer(dataDir);
    if (running) return { alreadyRunning: true, pid: running.pid, port: running.port };
    const started = this.#clock.now().getTime();
    const result = await runCommand(this.#binary('pg_ctl', ctx), pgCtlStartArgs({ dataDir, timeoutSeconds: startTimeoutSeconds }), {
      // The postmaster inherits this environment for as long as the copy runs.
      env: childEnv(this.#env),
      runAs: this.#runAs(),
      signal: ctx.signal,
    });
    if (result.exitCode !== 0) {
      const log = (await readFile(path.join(dataDir, SERVER_LOG_FILE), 'utf8').catch(() => '')).split('\n').filter(Boolean).slice(-20);
      const { class: failureClass, evidence } = classifyLog([...result.tail, ...log]);
      const timedOut = result.tail.some((l) => /server did not start in time/.test(l));
      throw new PhaseFailure(timedOut ? 'timeout' : failureClass, `the copy did not start on ${host}:${port}: ${evidence.join(' | ')}`, {
        details: [...result.tail, ...log].slice(-15),
      });
    }
    return { startMs: this.#clock.now().getTime() - started, host, port, logFile: path.join(dataDir, SERVER_LOG_FILE) };
  }

  /** Why the copy in dataDir is not the one run `runId` made, or undefined when it is. */
  #madeByAnotherRun(runId: string): string | undefined {
    const marker = readMarker(this.#config.dataDir);
    if (!marker || marker.runId === runId) return undefined;
    return `${this.#config.dataDir} holds the copy made by run ${marker.runId}, not by run ${runId}; a newer run replaced it, so this run cannot go on with it`;
  }

  async resumeRefusal(run: RunRecord): Promise<string | undefined> {
    // Only a run whose clone finished has a copy of its own to go on with.
    if (run.phases.find((p) => p.name === 'clone')?.status !== 'succeeded') return undefined;
    const notOurs = this.#madeByAnotherRun(run.id);
    const newer = readMarker(this.#config.dataDir)?.runId;
    return (
      notOurs &&
      `${notOurs}. Nothing to do for this run: the copy there is run ${newer}'s (its record says how it went); run the job again for a fresh copy`
    );
  }

  /**
   * Finishes what a killed run of this job left: pg_basebackup processes still
   * copying into the staging directory (they hold walsenders and a slot on the
   * source), the clone's credentials, a half-deleted old copy and the staging
   * directory. Only what carries db-refresher's marker is deleted. The caller
   * holds the job's lock, so no live run of the job is using any of it.
   */
  async recover(log: Logger): Promise<PhaseDetail> {
    const { dataDir } = this.#config;
    const ended = await endCloneProcesses(path.join(stagingDirFor(dataDir), 'pgdata'));
    const auth = authDirFor(dataDir);
    const hadAuth = existsSync(auth);
    await rm(auth, { recursive: true, force: true });
    const trash = await emptyTrash(dataDir, this.#job.name);
    const staging = await clearStaging(dataDir).then(
      (removed) => removed,
      () => false,
    );
    const done = {
      ...(ended.length ? { endedProcesses: ended } : {}),
      ...(hadAuth ? { removedCredentials: auth } : {}),
      ...(trash.length ? { removedOldCopies: trash } : {}),
      ...(staging ? { removedStaging: stagingDirFor(dataDir) } : {}),
    };
    if (Object.keys(done).length > 0) log.warn({ job: this.#job.name, ...done }, 'cleaned up after an earlier run that did not finish');
    return done;
  }
}

function readFileSyncSafe(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
