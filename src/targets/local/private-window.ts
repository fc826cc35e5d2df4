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
import { pgCtlSignalStopArgs, SERVER_LOG_FILE } from './commands.js';
import { runningServer, waitUntilStopped } from './data-dir.js';
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
 * A private directory of db-refresher's own user is ours: when db-refresher
 * runs as root, a kill -9 between mkdir and chown leaves exactly that, and the
 * next run takes it over (only root or that user could have made it).
 */
export async function prepareSocketDir(deps: PrivateWindowDeps): Promise<string> {
  const dir = socketDirFor(deps);
  const uid = deps.runAs?.uid ?? process.getuid?.() ?? 0;
  const ownUid = process.getuid?.() ?? uid;
  let stat: ReturnType<typeof lstatSync> | undefined;
  try {
    stat = lstatSync(dir);
  } catch {
    stat = undefined;
  }
  if (stat && (!stat.isDirectory() || (stat.uid !== uid && stat.uid !== ownUid) || (stat.mode & 0o077) !== 0)) {
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
  // Both at once (each is a `postgres -C` process); pg_cron's database matters only when pg_cron is preloaded.
  const [preloaded, cronDatabase] = await Promise.all([
    configuredSetting(deps, 'shared_preload_libraries', ctx),
    configuredSetting(deps, 'cron.database_name', ctx),
  ]);
  const libraries = withoutPgCron(preloaded ?? '');
  const withoutCron = libraries === undefined ? undefined : { libraries, cronDatabase: cronDatabase || PG_CRON_DEFAULT_DATABASE };
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
 * The copy must run privately for the window's phases: one found down (an
 * `open` killed after its stop) starts privately again, closed to its users.
 * A copy running open is left to startPrivately's refusal or to `open`.
 */
export async function ensureRunsPrivately(
  deps: PrivateWindowDeps,
  options: { noLogicalWorkers: boolean },
  ctx: PhaseContext,
): Promise<void> {
  // Killed right after `open` asked for the shutdown: let it finish first.
  if (postmasterStatus(deps.dataDir) === 'stopping') await stopped(deps.dataDir, ctx.signal);
  if (runningServer(deps.dataDir)) return;
  ctx.log.warn({ dataDir: deps.dataDir }, 'private window: the copy was down; starting it privately again');
  await startPrivately(deps, options, ctx);
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

/** The status line of postmaster.pid (`starting`, `ready`, `stopping`, ...), or undefined. */
function postmasterStatus(dataDir: string): string | undefined {
  try {
    return readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[7]?.trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The bootstrap superuser's name per private server (data directory, pid and
 * start time from postmaster.pid): each phase of the window asks for the
 * endpoint, and a session to look the name up again costs a round of
 * connection set-up each time.
 */
const superuserOf = new Map<string, string>();

function serverKey(dataDir: string): string | undefined {
  try {
    const lines = readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
    return `${dataDir}|${lines[0]}|${lines[2]}`;
  } catch {
    return undefined;
  }
}

/** The superuser's endpoint on the private socket. The bootstrap superuser (OID 10) is whatever the source's is called. */
export async function privateEndpoint(
  deps: PrivateWindowDeps,
  sql: SqlConnector,
  probe: { user: string; database: string },
  port: number,
): Promise<(database: string) => PgEndpoint> {
  const base = { host: socketDirFor(deps), port, sslmode: 'disable' as const };
  const key = serverKey(deps.dataDir);
  let superuser = key ? superuserOf.get(key) : undefined;
  if (!superuser) {
    const [row] = await sql.withSession({ ...base, user: probe.user, dbname: probe.database }, probe.database, (session) =>
      session.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE oid = 10'),
    );
    superuser = row?.rolname ?? 'postgres';
    if (key) {
      if (superuserOf.size > 100) superuserOf.clear();
      superuserOf.set(key, superuser);
    }
  }
  const name = superuser;
  return (database) => ({ ...base, user: name, dbname: database });
}

/** How long the private copy gets to shut down (pg_ctl's own default wait is 60 s). */
const STOP_TIMEOUT_MS = 120_000;

/**
 * Ends the private window: a fast shutdown; the caller starts the copy on its
 * real port. pg_ctl only signals (-W); the wait is ours, on the same sign
 * pg_ctl waits for (postmaster.pid gone, or its process gone), checked every
 * 10 ms instead of pg_ctl's 100.
 */
export async function closePrivately(deps: PrivateWindowDeps, ctx: PhaseContext): Promise<{ stopMs: number }> {
  const started = Date.now();
  if (runningServer(deps.dataDir)) {
    const result = await runCommand(deps.pgCtl, pgCtlSignalStopArgs(deps.dataDir), {
      runAs: deps.runAs,
      signal: ctx.signal,
      timeoutMs: 30_000,
    });
    if (result.exitCode !== 0 && runningServer(deps.dataDir)) {
      throw new PhaseFailure('unknown', `could not stop the private copy in ${deps.dataDir} (exit ${result.exitCode})`, {
        details: result.tail,
      });
    }
    await stopped(deps.dataDir, ctx.signal);
  }
  await rm(socketDirFor(deps), { recursive: true, force: true });
  return { stopMs: Date.now() - started };
}

async function stopped(dataDir: string, signal: AbortSignal): Promise<void> {
  if (!(await waitUntilStopped(dataDir, { signal, timeoutMs: STOP_TIMEOUT_MS }))) {
    throw new PhaseFailure('timeout', `the private copy in ${dataDir} did not shut down within ${STOP_TIMEOUT_MS / 1000} s`, {
      hint: `Its server log (${SERVER_LOG_FILE} in the data directory) says what it waits for.`,
    });
  }
}
