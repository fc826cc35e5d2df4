import { lstatSync, readFileSync } from 'node:fs';
import { chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { PgEndpoint } from '../../config/types.js';
import { PhaseFailure } from '../../errors.js';
import { classifyLog } from '../../failures.js';
import type { PhaseContext, SqlConnector } from '../../ports.js';
import { runCommand } from '../../postgres/command.js';
import type { OsUser } from '../../postgres/os-user.js';
import { SERVER_LOG_FILE } from './commands.js';
import { runningServer } from './data-dir.js';
import {
  PG_CRON_DEFAULT_DATABASE,
  PRIVATE_HBA,
  PRIVATE_HBA_FILE,
  pgCtlPrivateStartArgs,
  privateSocketDir,
  privateStartOptions,
  withoutPgCron,
} from './private-start.js';

/**
 * The local copy's private window (effects): start the copy with no TCP
 * listener on a private Unix socket, tell the safe-copy phases how to reach
 * it as the superuser, and open it (restart on its real port) when they are
 * done. Masking (another phase) uses the same window.
 */

export interface PrivateWindowDeps {
  dataDir: string;
  pgCtl: string;
  runAs: OsUser | undefined;
  startTimeoutSeconds: number;
  tmpDir?: string;
}

export function socketDirFor(deps: PrivateWindowDeps): string {
  return privateSocketDir(deps.dataDir, deps.tmpDir ?? tmpdir());
}

/** Whether the copy runs in its private window now: its postmaster.pid names our socket directory and no listen address. */
export function runsPrivately(deps: PrivateWindowDeps): boolean {
  if (!runningServer(deps.dataDir)) return false;
  try {
    const lines = readFileSync(path.join(deps.dataDir, 'postmaster.pid'), 'utf8').split('\n');
    return lines[4] === socketDirFor(deps) && (lines[5] ?? '').trim() === '';
  } catch {
    return false;
  }
}

/**
 * Makes the socket directory, refusing one that someone else made: a
 * directory planted there could hand our superuser session to a stranger.
 */
async function prepareSocketDir(deps: PrivateWindowDeps): Promise<string> {
  const dir = socketDirFor(deps);
  const uid = deps.runAs?.uid ?? process.getuid?.() ?? 0;
  let stat: ReturnType<typeof lstatSync> | undefined;
  try {
    stat = lstatSync(dir);
  } catch {
    stat = undefined;
  }
  if (stat && (!stat.isDirectory() || stat.uid !== uid || (stat.mode & 0o077) !== 0)) {
    throw new PhaseFailure(
      'unsafe-target',
      `${dir} exists but is not a private directory of the server's OS user (uid ${uid}, mode 0700); remove it, db-refresher recreates it`,
    );
  }
  if (!stat) await mkdir(dir, { mode: 0o700 });
  if (deps.runAs) await chown(dir, deps.runAs.uid, deps.runAs.gid);
  const hba = path.join(dir, PRIVATE_HBA_FILE);
  await writeFile(hba, PRIVATE_HBA, { mode: 0o600 });
  if (deps.runAs) await chown(hba, deps.runAs.uid, deps.runAs.gid);
  return dir;
}

export async function startPrivately(
  deps: PrivateWindowDeps,
  options: { noLogicalWorkers: boolean },
  ctx: PhaseContext,
): Promise<Record<string, unknown>> {
  if (runsPrivately(deps)) return { private: true, alreadyRunning: true, socketDir: socketDirFor(deps) };
  const running = runningServer(deps.dataDir);
  if (running) {
    throw new PhaseFailure(
      'unsafe-target',
      `the new copy in ${deps.dataDir} is already running open to clients (pid ${running.pid}) before it was prepared; stop it and run the job again`,
    );
  }
  const socketDir = await prepareSocketDir(deps);
  const started = Date.now();
  const logFile = path.join(deps.dataDir, SERVER_LOG_FILE);
  const libraries = withoutPgCron((await configuredSetting(deps, 'shared_preload_libraries', ctx)) ?? '');
  const withoutCron =
    libraries === undefined
      ? undefined
      : { libraries, cronDatabase: (await configuredSetting(deps, 'cron.database_name', ctx)) || PG_CRON_DEFAULT_DATABASE };
  const result = await runCommand(
    deps.pgCtl,
    pgCtlPrivateStartArgs({
      dataDir: deps.dataDir,
      timeoutSeconds: deps.startTimeoutSeconds,
      logFile,
      options: privateStartOptions({ socketDir, noLogicalWorkers: options.noLogicalWorkers, withoutCron }),
    }),
    { runAs: deps.runAs, signal: ctx.signal },
  );
  if (result.exitCode !== 0) {
    const log = (await readFile(logFile, 'utf8').catch(() => '')).split('\n').filter(Boolean).slice(-20);
    const { class: failureClass, evidence } = classifyLog([...result.tail, ...log]);
    throw new PhaseFailure(failureClass, `the copy did not start privately (Unix socket in ${socketDir}): ${evidence.join(' | ')}`, {
      details: [...result.tail, ...log].slice(-15),
    });
  }
  return { private: true, socketDir, privateStartMs: Date.now() - started, ...(withoutCron ? { pgCronLoaded: false } : {}) };
}

/**
 * A setting as the copy's configuration files give it (`postgres -C`, which
 * reads them without starting a server), or undefined when none sets it.
 */
async function configuredSetting(deps: PrivateWindowDeps, name: string, ctx: PhaseContext): Promise<string | undefined> {
  const postgres = path.join(path.dirname(deps.pgCtl), 'postgres');
  const stdout: string[] = [];
  const result = await runCommand(postgres, ['-C', name, '-D', deps.dataDir], {
    runAs: deps.runAs,
    signal: ctx.signal,
    timeoutMs: 30_000,
    onLine: (line) => stdout.push(line),
  });
  if (result.exitCode !== 0) return undefined;
  // Warnings about the configuration come before the value, which is the last line.
  return stdout.at(-1)?.trim();
}

/** The superuser's endpoint on the private socket. The bootstrap superuser (OID 10) is whatever the source's is called. */
export async function privateEndpoint(
  deps: PrivateWindowDeps,
  sql: SqlConnector,
  probe: { user: string; database: string },
  port: number,
): Promise<(database: string) => PgEndpoint> {
  const base = { host: socketDirFor(deps), port, sslmode: 'disable' as const };
  const [row] = await sql.withSession({ ...base, user: probe.user, dbname: probe.database }, probe.database, (session) =>
    session.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE oid = 10'),
  );
  const superuser = row?.rolname ?? 'postgres';
  return (database) => ({ ...base, user: superuser, dbname: database });
}

/** Ends the private window: a fast shutdown; the caller starts the copy on its real port. */
export async function closePrivately(deps: PrivateWindowDeps, ctx: PhaseContext): Promise<{ stopMs: number }> {
  const started = Date.now();
  if (runningServer(deps.dataDir)) {
    const result = await runCommand(deps.pgCtl, ['stop', '-D', deps.dataDir, '-m', 'fast', '-w', '-t', '120'], {
      runAs: deps.runAs,
      signal: ctx.signal,
    });
    if (result.exitCode !== 0 && runningServer(deps.dataDir)) {
      throw new PhaseFailure('unknown', `could not stop the private copy in ${deps.dataDir} (exit ${result.exitCode})`, {
        details: result.tail,
      });
    }
  }
  await rm(socketDirFor(deps), { recursive: true, force: true });
  return { stopMs: Date.now() - started };
}
