import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { RefresherError } from '../errors.js';

/**
 * One run per job at a time, across processes: the CLI's `run` and the
 * service share the state directory, so the lock is a file created with O_EXCL
 * that names its holder. A lock whose process is gone is stale and is taken over.
 */

export interface LockHolder {
  pid: number;
  runId: string;
  since: string;
}

export interface JobLock {
  release(): void;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Lock files this process holds, shared by every JobLocks in it. A lock file
 * naming this process's pid that is not in here was left by an earlier
 * process that had the same pid: a restarted container's service is pid 1
 * again, and without this it would find every lock "held" by itself forever.
 */
const heldByThisProcess = new Set<string>();

function holderAlive(holder: LockHolder, file: string): boolean {
  return holder.pid === process.pid ? heldByThisProcess.has(file) : isAlive(holder.pid);
}

export class JobLocks {
  readonly #dir: string;

  constructor(stateDir: string) {
    this.#dir = path.join(stateDir, 'locks');
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
    mkdirSync(this.#dir, { recursive: true });
    const file = this.#file(job);
    const content = JSON.stringify({ pid: process.pid, runId, since: now.toISOString() } satisfies LockHolder);
    for (let attempt = 0; attempt < 3 && !heldByThisProcess.has(file); attempt += 1) {
      if (this.#tryCreate(file, content)) {
        heldByThisProcess.add(file);
        let released = false;
        return {
          release: () => {
            if (released) return;
            released = true;
            heldByThisProcess.delete(file);
            try {
              unlinkSync(file);
            } catch {
              // Already gone: nothing to release.
            }
          },
        };
      }
      if (!this.#removeIfStale(file)) break;
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
   * back instead of deleted. Returns true when the caller should try again.
   */
  #removeIfStale(file: string): boolean {
    let before: string;
    try {
      before = readFileSync(file, 'utf8');
    } catch {
      return true;
    }
    try {
      if (holderAlive(JSON.parse(before) as LockHolder, file)) return false;
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
    return true;
  }
}
