import { createHash } from 'node:crypto';
import path from 'node:path';

/**
 * Pure builders for the local copy's private window: the copy's first start
 * has no TCP listener at all, only a Unix socket in a 0700 directory that
 * only the server's OS user (and root) can enter, with a pg_hba of its own.
 * Neutralisation, the user's steps and masking run through that socket; then
 * the copy is restarted on its real port (`open`).
 */

export const PRIVATE_HBA_FILE = 'pg_hba.conf';

/**
 * Where the private socket lives: a directory named after the data directory,
 * so a resumed run finds it again. Kept short: a socket path may not exceed
 * 107 bytes (`<dir>/.s.PGSQL.<port>`).
 */
export function privateSocketDir(dataDir: string, tmpDir: string): string {
  return path.join(tmpDir, `db-refresher-${createHash('sha256').update(dataDir).digest('hex').slice(0, 16)}`);
}

/** Only local connections through the private socket, which only the OS user reaches. */
export const PRIVATE_HBA = [
  '# Written by db-refresher for the private window: no TCP, socket in a 0700 directory.',
  'local all all trust',
  '',
].join('\n');

/** One shell word: pg_ctl hands -o to /bin/sh. */
function shellWord(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export interface PrivateStartInput {
  socketDir: string;
  /** Keep logical replication workers from starting until subscriptions are detached. */
  noLogicalWorkers: boolean;
  /** When the copy preloads pg_cron: its preload list without pg_cron, and the database pg_cron reads its jobs from. */
  withoutCron?: { libraries: string; cronDatabase: string } | undefined;
}

/** pg_cron's default cron.database_name. */
export const PG_CRON_DEFAULT_DATABASE = 'postgres';

/**
 * The preload list without pg_cron, or undefined when pg_cron is not in it.
 * pg_cron cannot be told to start no job: it raises cron.max_running_jobs = 0
 * to 1 when it loads (pg_cron.c, _PG_init), so a job due during the window
 * would run on the copy. Without the library there is no scheduler at all;
 * neutralise deactivates the jobs before `open` loads it again.
 */
export function withoutPgCron(libraries: string): string | undefined {
  const list = libraries
    .split(',')
    .map((l) => l.trim().replace(/^"(.*)"$/, '$1'))
    .filter(Boolean);
  if (!list.includes('pg_cron')) return undefined;
  return list.filter((l) => l !== 'pg_cron').join(',');
}

/**
 * `postgres` options for the private start. Command-line settings win over
 * postgresql.conf and postgresql.auto.conf, so a production value in either
 * cannot open a port, start an apply worker or make commits wait.
 */
export function privateStartOptions(input: PrivateStartInput): string {
  const settings: Array<[string, string]> = [
    ['listen_addresses', ''],
    ['unix_socket_directories', input.socketDir],
    ['unix_socket_permissions', '0700'],
    ['hba_file', path.join(input.socketDir, PRIVATE_HBA_FILE)],
    // Commits must not wait for a production standby while the steps run.
    ['synchronous_standby_names', ''],
    // No pg_cron scheduler during the window; its database stays known, so neutralise finds the jobs.
    ...(input.withoutCron
      ? ([
          ['shared_preload_libraries', input.withoutCron.libraries],
          ['cron.database_name', input.withoutCron.cronDatabase],
        ] as Array<[string, string]>)
      : []),
    ...(input.noLogicalWorkers ? ([['max_logical_replication_workers', '0']] as Array<[string, string]>) : []),
  ];
  return settings.map(([name, value]) => `-c ${shellWord(`${name}=${value}`)}`).join(' ');
}

export function pgCtlPrivateStartArgs(input: { dataDir: string; timeoutSeconds: number; logFile: string; options: string }): string[] {
  return ['start', '-D', input.dataDir, '-w', '-t', String(input.timeoutSeconds), '-l', input.logFile, '-o', input.options];
}
