import path from 'node:path';
import type { LocalTargetConfig } from '../../config/types.js';

/**
 * Pure builders for the local target: program arguments, conninfo strings and
 * the files db-refresher writes into a copy. No I/O here.
 */

export const MARKER_FILE = 'db-refresher-marker.json';
export const STAGING_MARKER_FILE = 'db-refresher-staging.json';
export const SERVER_LOG_FILE = 'db-refresher-server.log';

export const TRASH_MARKER_FILE = 'db-refresher-trash.json';
const TRASH_INFIX = '.db-refresher-trash-';

export function stagingDirFor(dataDir: string): string {
  return `${dataDir}.db-refresher-staging`;
}

/**
 * Where the clone's credentials (passfile, TLS key) live while pg_basebackup
 * runs: beside the copy, outside the staging directory, so every run and every
 * service start removes what a crash left there before anything else.
 */
export function authDirFor(dataDir: string): string {
  return `${dataDir}.db-refresher-auth`;
}

/** An old copy is renamed here (atomically, same parent) before it is deleted. */
export function trashDirFor(dataDir: string, runId: string): string {
  return `${dataDir}${TRASH_INFIX}${runId}`;
}

/** Whether `name` (a sibling of dataDir) is one of dataDir's trash directories. */
export function isTrashNameFor(dataDir: string, name: string): boolean {
  return name.startsWith(`${path.basename(dataDir)}${TRASH_INFIX}`);
}

export interface TrashMarker {
  managedBy: 'db-refresher';
  job: string;
  /** Where the directory was before it was moved aside. */
  dataDir: string;
  runId: string;
}

export interface Marker {
  managedBy: 'db-refresher';
  job: string;
  dataDir: string;
  runId: string;
  createdAt: string;
  source: { host: string; port: number; systemIdentifier?: string };
}

/** libpq conninfo value quoting: single quotes, with \ and ' escaped. */
export function quoteConninfoValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function buildConninfo(params: Record<string, string | number | undefined>): string {
  return Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${quoteConninfoValue(String(v))}`)
    .join(' ');
}

/** A passfile line that matches any host, port, database and user: the file exists for one invocation. */
export function passfileLine(password: string): string {
  return `*:*:*:*:${password.replace(/\\/g, '\\\\').replace(/:/g, '\\:')}\n`;
}

export function pgBasebackupArgs(input: { pgdata: string; conninfo: string }): string[] {
  // -X stream: the copy is consistent on its own; -c fast: do not wait for a
  // spread checkpoint on the source (minutes with default settings).
  return ['-D', input.pgdata, '-X', 'stream', '-c', 'fast', '-P', '-v', '-w', '-d', input.conninfo];
}

export function pgCtlStartArgs(input: { dataDir: string; timeoutSeconds: number }): string[] {
  return ['start', '-D', input.dataDir, '-w', '-t', String(input.timeoutSeconds), '-l', path.join(input.dataDir, SERVER_LOG_FILE)];
}

export function pgCtlStopArgs(dataDir: string): string[] {
  return ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '120'];
}

/** A fast shutdown that pg_ctl only signals (-W): the caller waits with waitUntilStopped, every 10 ms instead of pg_ctl's 100. */
export function pgCtlSignalStopArgs(dataDir: string): string[] {
  return ['stop', '-D', dataDir, '-m', 'fast', '-W'];
}

function quoteConfValue(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * Settings appended to the copy's postgresql.auto.conf (later lines win). A
 * copy starts with the source's configuration, and some of it must not carry
 * over: the port, and archiving, which would write into the source's archive.
 */
export function copyOverrides(target: LocalTargetConfig, job: string, runId: string): string {
  return [
    '',
    `# Added by db-refresher for job "${job}" (run ${runId}): this is a copy, and must not act as its source.`,
    `port = ${target.port}`,
    `listen_addresses = ${quoteConfValue(target.host)}`,
    // Sockets would land in the source's socket directory; the copy is reached over TCP.
    `unix_socket_directories = ''`,
    `archive_mode = 'off'`,
    `cluster_name = ${quoteConfValue(`db-refresher-${job}`)}`,
    '',
  ].join('\n');
}

/** Written only when the source keeps its configuration outside the data directory (Debian's layout). */
export const DEFAULT_HBA = [
  '# Written by db-refresher: the source kept pg_hba.conf outside its data directory.',
  'local   all   all                  peer',
  'host    all   all   127.0.0.1/32   scram-sha-256',
  'host    all   all   ::1/128        scram-sha-256',
  '',
].join('\n');

/** `  1234/56789 kB (2%), 0/1 tablespace` → 2. */
export function parseBasebackupProgress(line: string): { percent: number; doneKb: number; totalKb: number } | undefined {
  const match = /(\d+)\/(\d+) kB \((\d+)%\)/.exec(line);
  if (!match) return undefined;
  return { doneKb: Number(match[1]), totalKb: Number(match[2]), percent: Number(match[3]) };
}
