import { randomBytes } from 'node:crypto';
import {
  accessSync,
  constants,
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { systemClock } from '../clock.js';
import { RefresherError } from '../errors.js';
import type { Clock } from '../ports.js';
import { isSameProcessAlive, processStartTime } from './process-identity.js';

/**
 * One run per job at a time, across processes: the CLI's `run` and the
 * service share the state directory, so the lock is a file created with O_EXCL
 * that names its holder: pid, and the process's start time, so that a pid
 * reused by an unrelated process does not keep the lock held forever. A lock
 * whose process is gone is stale and is taken over. While held, the lock
 * file's mtime is touched every second: it is the heartbeat that says when
 * a run that died was last alive.
 */

/** How often a held lock's heartbeat is written. */
export const HEARTBEAT_MS = 1_000;

export interface LockHolder {
  pid: number;
  /** The holder's start time (/proc/<pid>/stat), when known. */
  startTime?: string;
  runId: string;
  since: string;
}

/** A stale lock taken over: who held it, and when it was last seen alive (its last heartbeat). */
export interface StaleHolder {
  holder: LockHolder;
  lastAlive: Date;
}

export interface JobLock {
  release(): void;
  /** The dead holder this lock was taken over from, whose run needs settling. */
  readonly previous: StaleHolder | undefined;
}

/**
 * Lock files this process holds, shared by every JobLocks in it. A lock file
 * naming this process's pid that is not in here was left by an earlier
 * process that had the same pid: a restarted container's service is pid 1
 * again, and without this it would find every lock "held" by itself forever.
 */
const heldByThisProcess = new Set<string>();

function holderAlive(holder: LockHolder, file: string): boolean {
  return holder.pid === process.pid ? heldByThisProcess.has(file) : isSameProcessAlive(holder.pid, holder.startTime);
}

/**
 * Why nothing can be written under `dir`, asked of the nearest directory that
 * exists: a recursive mkdir on a read-only file system reports ENOENT for the
 * missing part, which would send people looking for a missing directory.
 */
function writeBlocker(dir: string): string | undefined {
  let probe = path.resolve(dir);
  while (!existsSync(probe) && probe !== path.dirname(probe)) probe = path.dirname(probe);
  try {
    accessSync(probe, constants.W_OK);
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code;
  }
}

/** Turns a filesystem error on the state directory into advice (read-only mounts, permissions). */
export function stateDirError(stateDir: string, error: unknown): RefresherError {
  const code = writeBlocker(stateDir) ?? (error as NodeJS.ErrnoException).code;
  const why =
    code === 'EROFS'
      ? 'it is on a read-only file system'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'ENOSPC'
          ? 'its file system is full'
          : error instanceof Error
            ? error.message
            : String(error);
  return new RefresherError('CONFIG_INVALID', `cannot write to the state directory ${stateDir}: ${why}`, {
    hint: 'db-refresher records every run there before it changes anything. Make it writable, or set stateDir to a writable directory.',
    cause: error,
  });
}

export class JobLocks {
  readonly #dir: string;
  readonly #stateDir: string;
  readonly #clock: Clock;

  constructor(stateDir: string, clock: Clock = systemClock) {
    this.#stateDir = stateDir;
    this.#dir = path.join(stateDir, 'locks');
    this.#clock = clock;
  }

  /** The lock file's holder and last heartbeat, whether that holder is alive or not. */
  heartbeat(job: string): { holder: LockHolder; at: Date } | undefined {
    try {
      const file = this.#file(job);
      return { holder: JSON.parse(readFileSync(file, 'utf8')) as LockHolder, at: statSync(file).mtime };
    } catch {
      return undefined;
    }
  }

  /** Jobs that have a lock file, held or stale. */
  lockedJobs(): string[] {
    try {
      return readdirSync(this.#dir)
        .filter((n) => n.endsWith('.lock'))
        .map((n) => n.slice(0, -'.lock'.length));
    } catch {
      return [];
    }
  }

  #file(job: string): string {
    return path.join(this.#dir, `${job}.lock`);
  }

  holder(job: string): LockHolder | undefined {
    try {
      const holder = JSON.parse(readFileSync(this.#file(job), 'utf8')) as LockHolder;
      return holderAlive(holder, this.#file(job)) ? holder : undefined;
    } catch {
      return undefined;
    }
  }

  /** Takes the job's lock or throws JOB_BUSY naming the run that holds it. */
  acquire(job: string, runId: string, now: Date): JobLock {
    try {
      mkdirSync(this.#dir, { recursive: true });
    } catch (error) {
      throw stateDirError(this.#stateDir, error);
    }
    const file = this.#file(job);
    const startTime = processStartTime(process.pid);
    const content = JSON.stringify({
      pid: process.pid,
      ...(startTime ? { startTime } : {}),
      runId,
      since: now.toISOString(),
    } satisfies LockHolder);
    let previous: StaleHolder | undefined;
    for (let attempt = 0; attempt < 3 && !heldByThisProcess.has(file); attempt += 1) {
      let created: boolean;
      try {
        created = this.#tryCreate(file, content);
      } catch (error) {
        throw stateDirError(this.#stateDir, error);
      }
      if (created) {
        heldByThisProcess.add(file);
        let released = false;
        const heartbeat = setInterval(() => {
          const at = this.#clock.now();
          try {
            utimesSync(file, at, at);
          } catch {
            // A read-only or vanished state directory: the run finds out when it next saves its record.
          }
        }, HEARTBEAT_MS);
        heartbeat.unref();
        return {
          previous,
          release: () => {
            if (released) return;
            released = true;
            clearInterval(heartbeat);
            heldByThisProcess.delete(file);
            try {
              unlinkSync(file);
            } catch {
              // Already gone: nothing to release.
            }
          },
        };
      }
      const removed = this.#removeIfStale(file);
      if (removed === false) break;
      if (removed !== true) previous = removed;
    }
    const holder = this.holder(job);
    throw new RefresherError(
      'JOB_BUSY',
      `job "${job}" is already running${holder ? ` (run ${holder.runId}, process ${holder.pid}, since ${holder.since})` : ''}`,
      { hint: 'Wait for that run to finish; db-refresher runs one refresh per job at a time.' },
    );
  }

  /** Creates the lock file with its full content in one step: link() of a written temp file fails if the lock exists. */
  #tryCreate(file: string, content: string): boolean {
    const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
    writeFileSync(temp, content);
    try {
      linkSync(temp, file);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      return false;
    } finally {
      unlinkSync(temp);
    }
  }

  /**
   * Removes a lock whose holder is gone. The file is first renamed aside and
   * re-read, so a lock that another process took over in the meantime is put
   * back instead of deleted. Returns false when the lock is held, the stale
   * holder it removed (with its last heartbeat), or true to simply try again.
   */
  #removeIfStale(file: string): StaleHolder | boolean {
    let before: string;
    let lastAlive: Date;
    try {
      before = readFileSync(file, 'utf8');
      lastAlive = statSync(file).mtime;
    } catch {
      return true;
    }
    let holder: LockHolder | undefined;
    try {
      holder = JSON.parse(before) as LockHolder;
      if (holderAlive(holder, file)) return false;
    } catch {
      // Unparseable content: only a crashed writer leaves that, and #tryCreate never does.
    }
    const aside = `${file}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
    try {
      renameSync(file, aside);
    } catch {
      return true;
    }
    const moved = readFileSync(aside, 'utf8');
    if (moved !== before) {
      try {
        linkSync(aside, file);
      } catch {
        // Yet another process holds it now; either way it is not ours.
      }
      unlinkSync(aside);
      return false;
    }
    unlinkSync(aside);
    return holder ? { holder, lastAlive } : true;
  }
}
