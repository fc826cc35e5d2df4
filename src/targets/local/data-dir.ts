import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { MARKER_FILE, type Marker } from './commands.js';

/**
 * What is at a target data directory, and whether db-refresher may remove it.
 * The answer is computed fresh before every destructive step.
 */

export type DataDirState =
  | { kind: 'missing' }
  | { kind: 'empty' }
  | { kind: 'ours'; marker: Marker }
  | { kind: 'other-job'; marker: Marker }
  | { kind: 'moved'; marker: Marker }
  | { kind: 'unmarked-pgdata' }
  | { kind: 'not-pgdata' };

export function readMarker(dir: string): Marker | undefined {
  try {
    const marker = JSON.parse(readFileSync(path.join(dir, MARKER_FILE), 'utf8')) as Marker;
    return marker.managedBy === 'db-refresher' ? marker : undefined;
  } catch {
    return undefined;
  }
}

export function inspectDataDir(dataDir: string, job: string): DataDirState {
  if (!existsSync(dataDir)) return { kind: 'missing' };
  if (!lstatSync(dataDir).isDirectory()) return { kind: 'not-pgdata' };
  if (readdirSync(dataDir).length === 0) return { kind: 'empty' };
  const marker = readMarker(dataDir);
  if (marker) {
    if (marker.job !== job) return { kind: 'other-job', marker };
    // A marker copied along with a directory (cp -a, or a copy of a copy) names another path.
    if (path.resolve(marker.dataDir) !== path.resolve(dataDir)) return { kind: 'moved', marker };
    return { kind: 'ours', marker };
  }
  return existsSync(path.join(dataDir, 'PG_VERSION')) ? { kind: 'unmarked-pgdata' } : { kind: 'not-pgdata' };
}

/** Why this directory must not be removed, or undefined when it may be. */
export function refusalReason(
  state: DataDirState,
  input: { dataDir: string; job: string; adopt: boolean; jobIndexHint: string },
): string | undefined {
  const { dataDir, job } = input;
  switch (state.kind) {
    case 'missing':
    case 'empty':
    case 'ours':
      return undefined;
    case 'other-job':
      return `${dataDir} belongs to job "${state.marker.job}" (its ${MARKER_FILE} says so), not to "${job}"; two jobs must not share a data directory`;
    case 'moved':
      return `${dataDir} has a db-refresher marker written for ${state.marker.dataDir}; it was copied or moved here, so db-refresher did not create it at this path. Remove ${path.join(dataDir, MARKER_FILE)} and set ${input.jobIndexHint}.target.adopt: true if this directory really is disposable`;
    case 'unmarked-pgdata':
      return input.adopt
        ? undefined
        : `${dataDir} holds a PostgreSQL data directory that db-refresher did not create (it has no ${MARKER_FILE}), so it will not be deleted. If it really is the disposable copy for job "${job}", set ${input.jobIndexHint}.target.adopt: true to let db-refresher replace it, or move it away`;
    case 'not-pgdata':
      return `${dataDir} exists and is not a PostgreSQL data directory (no PG_VERSION); db-refresher will not delete it, even with adopt. Choose an empty or missing directory`;
  }
}

/** True when a and b are the same directory or one contains the other. */
export function overlaps(a: string, b: string): boolean {
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  const x = real(a);
  const y = real(b);
  return x === y || x.startsWith(`${y}${path.sep}`) || y.startsWith(`${x}${path.sep}`);
}

export interface RunningServer {
  pid: number;
  port: number;
}

/** The postmaster that postmaster.pid names, if that process is alive. */
export function runningServer(dataDir: string): RunningServer | undefined {
  try {
    const lines = readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
    const pid = Number(lines[0]);
    const port = Number(lines[3]);
    process.kill(pid, 0);
    return { pid, port };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EPERM') {
      const lines = readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
      return { pid: Number(lines[0]), port: Number(lines[3]) };
    }
    return undefined;
  }
}

/**
 * Waits until the server in dataDir is gone, on the sign `pg_ctl stop -w`
 * waits for (postmaster.pid gone, or its process gone), looked at every 10 ms
 * instead of pg_ctl's 100: used after `pg_ctl stop -W`, where a stop is
 * downtime. False when it is still running at the deadline.
 */
export async function waitUntilStopped(dataDir: string, options: { signal: AbortSignal; timeoutMs: number }): Promise<boolean> {
  const deadline = Date.now() + options.timeoutMs;
  while (runningServer(dataDir)) {
    if (options.signal.aborted) throw options.signal.reason ?? new Error('aborted');
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

/** Bytes used under a directory (apparent sizes, not following links). */
export function directorySize(dir: string): number {
  let total = 0;
  const walk = (current: string) => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(current, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) {
        try {
          total += lstatSync(full).size;
        } catch {
          // A file removed while walking (WAL recycled) no longer counts.
        }
      }
    }
  };
  walk(dir);
  return total;
}
