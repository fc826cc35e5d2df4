import { existsSync, readdirSync } from 'node:fs';
import { appendFile, chmod, chown, mkdir, rename, rm, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { JobConfig, LocalTargetConfig } from '../../config/types.js';
import { PhaseFailure } from '../../errors.js';
import { classifyLog } from '../../failures.js';
import type { Clock, PhaseContext } from '../../ports.js';
import { childEnv } from '../../postgres/child-env.js';
import { CommandNotStarted, runCommand } from '../../postgres/command.js';
import type { OsUser } from '../../postgres/os-user.js';
import type { PhaseDetail } from '../../run/record.js';
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
  STAGING_MARKER_FILE,
  stagingDirFor,
} from './commands.js';
import { directorySize, inspectDataDir } from './data-dir.js';
import { endCloneProcesses } from './orphans.js';
import { removeMarkedLast } from './removal.js';
import { diskFullAdvice, roomNeeded } from './room.js';

/**
 * The clone phase of the local target: pg_basebackup into a marked staging
 * directory beside the data directory, the copy made safe to start beside its
 * source and marked as ours, then one rename into place. A kill at any point
 * leaves either no copy or a whole one, plus a staging directory that the next
 * run (or clearStaging) recognises by its marker and removes.
 */

export interface CloneDeps {
  job: JobConfig & { target: LocalTargetConfig };
  env: NodeJS.ProcessEnv;
  clock: Clock;
  /** The OS user PostgreSQL programs run as when db-refresher runs as root. */
  runAs: OsUser | undefined;
  /** The directory of the source's major version's binaries. */
  binDir: () => string;
}

export async function cloneCopy(deps: CloneDeps, ctx: PhaseContext): Promise<PhaseDetail> {
  const { job, runAs } = deps;
  const { dataDir } = job.target;
  const { source } = job;
  const staging = stagingDirFor(dataDir);
  await clearStaging(dataDir);
  if (ctx.signal.aborted) throw new CommandNotStarted(`clone not started: ${String(ctx.signal.reason?.message ?? ctx.signal.reason)}`);
  if (existsSync(dataDir) && inspectDataDir(dataDir, job.name).kind !== 'empty') {
    throw new PhaseFailure('unsafe-target', `${dataDir} is not empty; the teardown phase should have removed it`);
  }
  // Parents created here must be traversable by the PostgreSQL OS user; the copy itself stays 0700.
  await mkdir(path.dirname(staging), { recursive: true, mode: 0o755 });
  await mkdir(staging, { mode: 0o700 });
  await writeFile(path.join(staging, STAGING_MARKER_FILE), JSON.stringify({ job: job.name, runId: ctx.runId }));
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
      application_name: `db-refresher-${job.name}`,
      connect_timeout: 10,
    };
    const env = childEnv(deps.env, { PGAPPNAME: `db-refresher-${job.name}` });
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
    const started = deps.clock.now().getTime();
    const result = await runCommand(
      path.join(deps.binDir(), 'pg_basebackup'),
      pgBasebackupArgs({ pgdata, conninfo: buildConninfo(conn) }),
      {
        env,
        runAs,
        signal: ctx.signal,
        timeoutMs: job.target.cloneTimeoutSeconds * 1000,
        onLine: (line) => {
          const progress = parseBasebackupProgress(line);
          if (progress && progress.percent !== lastPercent) {
            lastPercent = progress.percent;
            ctx.progress({ percent: progress.percent, copiedBytes: progress.doneKb * 1024, totalBytes: progress.totalKb * 1024 });
          } else if (!progress) {
            ctx.log.debug({ line }, 'pg_basebackup');
          }
        },
      },
    );
    if (result.timedOut) {
      throw new PhaseFailure('timeout', `pg_basebackup did not finish within ${job.target.cloneTimeoutSeconds} s`, {
        details: result.tail,
      });
    }
    if (result.exitCode !== 0) {
      const { class: failureClass, evidence } = classifyLog(result.tail.filter((l) => !parseBasebackupProgress(l)));
      if (failureClass === 'disk-full') {
        // Said once the partial copy is gone, so the free space shown is what the next run finds.
        await removeMarkedLast(staging, STAGING_MARKER_FILE);
        throw await diskFull(dataDir, evidence, result.tail.slice(-10), ctx);
      }
      throw new PhaseFailure(failureClass, `pg_basebackup failed (exit ${result.exitCode ?? result.signal}): ${evidence.join(' | ')}`, {
        details: result.tail.slice(-10),
      });
    }

    const written = await prepareCopy(deps, pgdata, ctx);
    await rename(pgdata, dataDir);
    await removeMarkedLast(staging, STAGING_MARKER_FILE);
    return {
      copiedBytes: directorySize(dataDir),
      basebackupMs: deps.clock.now().getTime() - started,
      binDir: deps.binDir(),
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

/** Makes the fresh copy safe to start beside its source, and marks it as ours. */
async function prepareCopy(deps: CloneDeps, pgdata: string, ctx: PhaseContext): Promise<string[]> {
  const { runId } = ctx;
  const { job, runAs } = deps;
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
  await appendFile(auto, copyOverrides(job.target, job.name, runId));
  await own(auto);
  const marker: Marker = {
    managedBy: 'db-refresher',
    job: job.name,
    dataDir: job.target.dataDir,
    runId,
    createdAt: deps.clock.now().toISOString(),
    source: { host: job.source.host, port: job.source.port, systemIdentifier: ctx.facts?.systemIdentifier },
  };
  const markerFile = path.join(pgdata, MARKER_FILE);
  await writeFile(markerFile, `${JSON.stringify(marker, null, 2)}\n`, { mode: 0o600 });
  await own(markerFile);
  await chmod(pgdata, 0o700);
  return written;
}

/** Removes this job's staging directory when it carries the staging marker (or is empty); refuses anything else. */
export async function clearStaging(dataDir: string): Promise<boolean> {
  const staging = stagingDirFor(dataDir);
  if (!existsSync(staging)) return false;
  await endCloneProcesses(path.join(staging, 'pgdata'));
  const empty = readdirSafe(staging).length === 0;
  if (!empty && !existsSync(path.join(staging, STAGING_MARKER_FILE))) {
    throw new PhaseFailure('unsafe-target', `${staging} exists and was not created by db-refresher; move it away`);
  }
  await removeMarkedLast(staging, STAGING_MARKER_FILE);
  return true;
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** A copy that ran out of disk: names the full file system's directory, how full it is, and what the copy needs. */
async function diskFull(dataDir: string, evidence: string[], details: string[], ctx: PhaseContext): Promise<PhaseFailure> {
  const dir = path.dirname(dataDir);
  const space = await statfs(dir).then(
    (fs) => ({ freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize }),
    () => undefined,
  );
  const facts = ctx.facts;
  const needed =
    facts?.totalSizeBytes === undefined
      ? undefined
      : roomNeeded({ totalSizeBytes: facts.totalSizeBytes, walSegmentBytes: facts.walSegmentBytes });
  const { message, hint } = diskFullAdvice({ dir, program: 'pg_basebackup', evidence, space, needed });
  return new PhaseFailure('disk-full', message, { hint, details });
}
