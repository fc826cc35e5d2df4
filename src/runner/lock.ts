import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
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

export class JobLocks {
  readonly #dir: string;
  readonly #held = new Set<string>();

  constructor(stateDir: string) {
    this.#dir = path.join(stateDir, 'locks');
  }

  #file(job: string): string {
    return path.join(this.#dir, `${job}.lock`);
  }

  holder(job: string): LockHolder | undefined {
    try {
      const holder = JSON.parse(readFileSync(this.#file(job), 'utf8')) as LockHolder;
      return isAlive(holder.pid) ? holder : undefined;
    } catch {
      return undefined;
    }
  }

  /** Takes the job's lock or throws JOB_BUSY naming the run that holds it. */
  acquire(job: string, runId: string, now: Date): JobLock {
    mkdirSync(this.#dir, { recursive: true });
    const file = this.#file(job);
    const content = JSON.stringify({ pid: process.pid, runId, since: now.toISOString() } satisfies LockHolder);
    for (let attempt = 0; attempt < 2; attempt += 1) {
      if (this.#held.has(job)) break;
      try {
        writeFileSync(file, content, { flag: 'wx' });
        this.#held.add(job);
        return {
          release: () => {
            this.#held.delete(job);
            try {
              unlinkSync(file);
            } catch {
              // Already gone: nothing to release.
            }
          },
        };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        if (this.holder(job)) break;
        // The holder died without releasing: remove the stale lock and retry once.
        try {
          unlinkSync(file);
        } catch {
          // Someone else removed it first.
        }
      }
    }
    const holder = this.holder(job);
    throw new RefresherError(
      'JOB_BUSY',
      `job "${job}" is already running${holder ? ` (run ${holder.runId}, process ${holder.pid}, since ${holder.since})` : ''}`,
      { hint: 'Wait for that run to finish; db-refresher runs one refresh per job at a time.' },
    );
  }
}
