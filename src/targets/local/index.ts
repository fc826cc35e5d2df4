import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { appendFile, chmod, chown, mkdir, readFile, rename, rm, statfs, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { systemClock } from '../../clock.js';
import { formatBytes } from '../../config/byte-size.js';
import type { JobConfig, LocalTargetConfig, PgEndpoint } from '../../config/types.js';
import { PhaseFailure } from '../../errors.js';
import { classifyLog } from '../../failures.js';
import type { Logger } from '../../observe/logger.js';
import type { Clock, PhaseContext, PrivateAccess, SqlConnector, Target } from '../../ports.js';
import { describeSearch, discoverPgBinDirs, type PgBinDir } from '../../postgres/binaries.js';
import { childEnv } from '../../postgres/child-env.js';
import { CommandNotStarted, runCommand } from '../../postgres/command.js';
import { type OsUser, serverOsUser } from '../../postgres/os-user.js';
import type { Check, SourceFacts } from '../../run/facts.js';
import type { PhaseDetail, RunRecord, TargetDescription } from '../../run/record.js';
import { needsPrivateWindow } from '../../safe-copy/plan.js';
import {
  authDirFor,
  buildConninfo,
  copyOverrides,
  DEFAULT_HBA,
  MARKER_FILE,
  type Marker,
  parseBasebackupProgress,
  passfileLine,
  pgBasebackupArgs,
  pgCtlStartArgs,
  pgCtlStopArgs,
  SERVER_LOG_FILE,
  STAGING_MARKER_FILE,
  stagingDirFor,
} from './commands.js';
import { directorySize, inspectDataDir, overlaps, readMarker, refusalReason, runningServer } from './data-dir.js';
import { endCloneProcesses } from './orphans.js';
import { closePrivately, type PrivateWindowDeps, privateEndpoint, runsPrivately, startPrivately } from './private-window.js';
import { emptyTrash, moveToTrash, removeMarkedLast } from './removal.js';
import { diskFullAdvice, roomNeeded } from './room.js';

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
    if (source) checks.push(this.#versionCheck(source));

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

    checks.push(await this.#portCheck(state.kind === 'ours' || state.kind === 'unmarked-pgdata'));
    if (source) checks.push(await this.#roomCheck(source, refusal === undefined && state.kind !== 'missing' && state.kind !== 'empty'));
    return checks;
  }

  #versionCheck(source: SourceFacts): Check {
    const all = discoverPgBinDirs(this.#env);
    const binDir = all.find((d) => d.major === source.majorVersion);
    return binDir
      ? {
          name: 'same major version',
          ok: true,
          message: `source and target both run PostgreSQL ${source.majorVersion} (binaries in ${binDir.dir}, via ${binDir.via})`,
        }
      : {
          name: 'same major version',
          ok: false,
          failureClass: 'version-mismatch',
          message: `the source runs PostgreSQL ${source.majorVersion}, and no PostgreSQL ${source.majorVersion} server binaries were found (searched ${describeSearch(this.#env)}; found ${all.map((d) => `${d.major} in ${d.dir}`).join(', ') || 'none'}). Source and target must have same PostgreSQL version: install PostgreSQL ${source.majorVersion} or set PG_BINDIR`,
        };
  }

  async #portCheck(mayBeOurs: boolean): Promise<Check> {
    const { host, port, dataDir } = this.#config;
    const running = mayBeOurs ? runningServer(dataDir) : undefined;
    if (running && running.port === port) {
      return { name: 'target port', ok: true, message: `${host}:${port} is served by the current copy (pid ${running.pid})` };
    }
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
    });
    return free
      ? { name: 'target port', ok: true, message: `${host}:${port} is free` }
      : {
          name: 'target port',
          ok: false,
          failureClass: 'target-port-in-use',
          message: `${host}:${port} is in use by a process that is not this job's copy; the new copy could not start there. Stop that process or change the target port`,
        };
  }

  async #roomCheck(source: SourceFacts, replacingOurs: boolean): Promise<Check> {
    const { dataDir } = this.#config;
    let probe = path.dirname(dataDir);
    while (!existsSync(probe) && probe !== path.dirname(probe)) probe = path.dirname(probe);
    const fs = await statfs(probe);
    const free = fs.bavail * fs.bsize;
    const reclaimed = replacingOurs ? directorySize(dataDir) : 0;
    if (source.totalSizeBytes === undefined) {
      return {
        name: 'room for the copy',
        ok: true,
        severity: 'warning',
        message: `cannot read the source's size (the SQL role lacks CONNECT on every database or pg_read_all_stats); ${formatBytes(free)} free at ${probe}`,
      };
    }
    const room = roomNeeded({ totalSizeBytes: source.totalSizeBytes, walSegmentBytes: source.walSegmentBytes });
    const needed = room.bytes;
    const available = free + reclaimed;
    const text = `needs about ${formatBytes(needed)} (databases ${formatBytes(room.databases)}, WAL ${formatBytes(room.wal)}, plus 10%), ${formatBytes(available)} available at ${probe}${reclaimed ? ` counting ${formatBytes(reclaimed)} freed by removing the old copy` : ''}`;
    return available >= needed
      ? { name: 'room for the copy', ok: true, message: text }
      : { name: 'room for the copy', ok: false, failureClass: 'insufficient-space', message: text };
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
    const { dataDir } = this.#config;
    const { source } = this.#job;
    const runAs = this.#runAs();
    const staging = stagingDirFor(dataDir);
    await this.#clearStaging();
    if (ctx.signal.aborted) throw new CommandNotStarted(`clone not started: ${String(ctx.signal.reason?.message ?? ctx.signal.reason)}`);
    if (existsSync(dataDir) && inspectDataDir(dataDir, this.#job.name).kind !== 'empty') {
      throw new PhaseFailure('unsafe-target', `${dataDir} is not empty; the teardown phase should have removed it`);
    }
    // Parents created here must be traversable by the PostgreSQL OS user; the copy itself stays 0700.
    await mkdir(path.dirname(staging), { recursive: true, mode: 0o755 });
    await mkdir(staging, { mode: 0o700 });
    await writeFile(path.join(staging, STAGING_MARKER_FILE), JSON.stringify({ job: this.#job.name, runId: ctx.runId }));
    if (runAs) await chown(staging, runAs.uid, runAs.gid);

    // Credentials live beside the copy, removed when the clone ends and, after a crash, by the next run or service start.
    const secrets = authDirFor(dataDir);
    await rm(secrets, { recursive: true, force: true });
    await mkdir(secrets, { mode: 0o700 });
    try {
      const conn: Record<string, string | number | undefined> = {
        host: source.host,
        port: source.port,
        user: source.user,
        sslmode: source.sslmode,
        application_name: `db-refresher-${this.#job.name}`,
        connect_timeout: 10,
      };
      const env = childEnv(this.#env, { PGAPPNAME: `db-refresher-${this.#job.name}` });
      const writeSecret = async (name: string, value: string) => {
        const file = path.join(secrets, name);
        // libpq refuses a key readable by others; mounted secrets often are (0644), so always copy.
        await writeFile(file, value, { mode: 0o600 });
        if (runAs) await chown(file, runAs.uid, runAs.gid);
        return file;
      };
      if (runAs) await chown(secrets, runAs.uid, runAs.gid);
      if (source.password) env.PGPASSFILE = await writeSecret('pgpass', passfileLine(source.password.reveal()));
      if (source.sslCert) conn.sslcert = await writeSecret('tls.crt', source.sslCert.reveal());
      if (source.sslKey) conn.sslkey = await writeSecret('tls.key', source.sslKey.reveal());
      if (source.sslRootCert) conn.sslrootcert = await writeSecret('ca.crt', source.sslRootCert.reveal());

      const pgdata = path.join(staging, 'pgdata');
      let lastPercent = -1;
      const started = this.#clock.now().getTime();
      const result = await runCommand(this.#binary('pg_basebackup', ctx), pgBasebackupArgs({ pgdata, conninfo: buildConninfo(conn) }), {
        env,
        runAs,
        signal: ctx.signal,
        timeoutMs: this.#config.cloneTimeoutSeconds * 1000,
        onLine: (line) => {
          const progress = parseBasebackupProgress(line);
          if (progress && progress.percent !== lastPercent) {
            lastPercent = progress.percent;
            ctx.progress({ percent: progress.percent, copiedBytes: progress.doneKb * 1024, totalBytes: progress.totalKb * 1024 });
          } else if (!progress) {
            ctx.log.debug({ line }, 'pg_basebackup');
          }
        },
      });
      if (result.timedOut) {
        throw new PhaseFailure('timeout', `pg_basebackup did not finish within ${this.#config.cloneTimeoutSeconds} s`, {
          details: result.tail,
        });
      }
      if (result.exitCode !== 0) {
        const { class: failureClass, evidence } = classifyLog(result.tail.filter((l) => !parseBasebackupProgress(l)));
        if (failureClass === 'disk-full') {
          // Said once the partial copy is gone, so the free space shown is what the next run finds.
          await removeMarkedLast(staging, STAGING_MARKER_FILE);
          throw await this.#diskFull('pg_basebackup', evidence, result.tail.slice(-10), ctx);
        }
        throw new PhaseFailure(failureClass, `pg_basebackup failed (exit ${result.exitCode ?? result.signal}): ${evidence.join(' | ')}`, {
          details: result.tail.slice(-10),
        });
      }

      const written = await this.#prepareCopy(pgdata, ctx);
      await rename(pgdata, dataDir);
      await removeMarkedLast(staging, STAGING_MARKER_FILE);
      return {
        copiedBytes: directorySize(dataDir),
        basebackupMs: this.#clock.now().getTime() - started,
        binDir: this.#binDir(ctx).dir,
        walMethod: 'stream',
        checkpoint: 'fast',
        ...(written.length ? { wroteDefaults: written } : {}),
      };
    } catch (error) {
      // pg_basebackup removes its partial copy itself; the staging directory holds nothing worth keeping.
      await removeMarkedLast(staging, STAGING_MARKER_FILE);
      throw error;
    } finally {
      await rm(secrets, { recursive: true, force: true });
    }
  }

  /** A copy that ran out of disk: names the full file system's directory, how full it is, and what the copy needs. */
  async #diskFull(program: string, evidence: string[], details: string[], ctx: PhaseContext): Promise<PhaseFailure> {
    const dir = path.dirname(this.#config.dataDir);
    const space = await statfs(dir).then(
      (fs) => ({ freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize }),
      () => undefined,
    );
    const facts = ctx.facts;
    const needed =
      facts?.totalSizeBytes === undefined
        ? undefined
        : roomNeeded({ totalSizeBytes: facts.totalSizeBytes, walSegmentBytes: facts.walSegmentBytes });
    const { message, hint } = diskFullAdvice({ dir, program, evidence, space, needed });
    return new PhaseFailure('disk-full', message, { hint, details });
  }

  /** Makes the fresh copy safe to start beside its source, and marks it as ours. */
  async #prepareCopy(pgdata: string, ctx: PhaseContext): Promise<string[]> {
    const { runId } = ctx;
    const runAs = this.#runAs();
    const written: string[] = [];
    const own = async (file: string) => {
      if (runAs) await chown(file, runAs.uid, runAs.gid);
    };
    const conf = path.join(pgdata, 'postgresql.conf');
    if (!existsSync(conf)) {
      await writeFile(conf, '# Written by db-refresher: the source kept postgresql.conf outside its data directory.\n', { mode: 0o600 });
      await own(conf);
      written.push('postgresql.conf');
    }
    const hba = path.join(pgdata, 'pg_hba.conf');
    if (!existsSync(hba)) {
      await writeFile(hba, DEFAULT_HBA, { mode: 0o600 });
      await own(hba);
      written.push('pg_hba.conf');
    }
    const ident = path.join(pgdata, 'pg_ident.conf');
    if (!existsSync(ident)) {
      await writeFile(ident, '', { mode: 0o600 });
      await own(ident);
    }
    const auto = path.join(pgdata, 'postgresql.auto.conf');
    await appendFile(auto, copyOverrides(this.#config, this.#job.name, runId));
    await own(auto);
    const marker: Marker = {
      managedBy: 'db-refresher',
      job: this.#job.name,
      dataDir: this.#config.dataDir,
      runId,
      createdAt: this.#clock.now().toISOString(),
      source: { host: this.#job.source.host, port: this.#job.source.port, systemIdentifier: ctx.facts?.systemIdentifier },
    };
    const markerFile = path.join(pgdata, MARKER_FILE);
    await writeFile(markerFile, `${JSON.stringify(marker, null, 2)}\n`, { mode: 0o600 });
    await own(markerFile);
    await chmod(pgdata, 0o700);
    return written;
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
    const endpoint = await privateEndpoint(
      this.#window(ctx),
      this.#sql,
      { user: source.sql.user, database: source.dbname },
      this.#config.port,
    );
    return { endpoint, maintenanceDatabase: source.dbname };
  }

  async open(ctx: PhaseContext): Promise<PhaseDetail> {
    const window = this.#window(ctx);
    if (!runsPrivately(window) && runningServer(this.#config.dataDir)) return { alreadyOpen: true };
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
    const staging = await this.#clearStaging().then(
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

  /** Removes this job's staging directory when it carries the staging marker (or is empty); refuses anything else. */
  async #clearStaging(): Promise<boolean> {
    const staging = stagingDirFor(this.#config.dataDir);
    if (!existsSync(staging)) return false;
    await endCloneProcesses(path.join(staging, 'pgdata'));
    const empty = readdirSafe(staging).length === 0;
    if (!empty && !existsSync(path.join(staging, STAGING_MARKER_FILE))) {
      throw new PhaseFailure('unsafe-target', `${staging} exists and was not created by db-refresher; move it away`);
    }
    await removeMarkedLast(staging, STAGING_MARKER_FILE);
    return true;
  }
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function readFileSyncSafe(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
