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
    // pg_cron starts no job (max_running_jobs = 0 is a valid value in pg_cron 1.4+); a placeholder when pg_cron is absent.
    ['cron.max_running_jobs', '0'],
    ...(input.noLogicalWorkers ? ([['max_logical_replication_workers', '0']] as Array<[string, string]>) : []),
  ];
  return settings.map(([name, value]) => `-c ${shellWord(`${name}=${value}`)}`).join(' ');
}

export function pgCtlPrivateStartArgs(input: { dataDir: string; timeoutSeconds: number; logFile: string; options: string }): string[] {
  return ['start', '-D', input.dataDir, '-w', '-t', String(input.timeoutSeconds), '-l', input.logFile, '-o', input.options];
}
