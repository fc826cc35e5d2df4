import type { JobConfig } from '../config/types.js';
import type { Release, RunGate } from '../ports.js';

/**
 * Slots for concurrent refreshes: at most `global` at once, and at most
 * `perSource` against one source (host:port), because every clone holds
 * walsender slots there. Waiters are served first come, first served, except
 * that a waiter whose source is saturated does not hold up one whose source
 * is free.
 */
export class ConcurrencyGate implements RunGate {
  readonly #global: number;
  readonly #perSource: number;
  #running = 0;
  readonly #bySource = new Map<string, number>();
  readonly #waiters: Array<{ key: string; grant: (release: Release) => void }> = [];

  constructor(limits: { global: number; perSource: number }) {
    this.#global = limits.global;
    this.#perSource = limits.perSource;
  }

  static sourceKey(job: JobConfig): string {
    return `${job.source.host.toLowerCase()}:${job.source.port}`;
  }

  get running(): number {
    return this.#running;
  }

  get queued(): number {
    return this.#waiters.length;
  }

  tryAcquire(job: JobConfig): Release | undefined {
    const key = ConcurrencyGate.sourceKey(job);
    // Someone already waiting for this source goes first.
    if (this.#waiters.some((w) => w.key === key)) return undefined;
    return this.#take(key);
  }

  acquire(job: JobConfig, signal: AbortSignal): Promise<Release> {
    const key = ConcurrencyGate.sourceKey(job);
    const now = this.#waiters.some((w) => w.key === key) ? undefined : this.#take(key);
    if (now) return Promise.resolve(now);
    return new Promise<Release>((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const waiter = {
        key,
        grant: (release: Release) => {
          signal.removeEventListener('abort', onAbort);
          resolve(release);
        },
      };
      const onAbort = () => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  #take(key: string): Release | undefined {
    const onSource = this.#bySource.get(key) ?? 0;
    if (this.#running >= this.#global || onSource >= this.#perSource) return undefined;
    this.#running += 1;
    this.#bySource.set(key, onSource + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#running -= 1;
      const left = (this.#bySource.get(key) ?? 1) - 1;
      if (left === 0) this.#bySource.delete(key);
      else this.#bySource.set(key, left);
      this.#serve();
    };
  }

  #serve(): void {
    for (let i = 0; i < this.#waiters.length && this.#running < this.#global; ) {
      const waiter = this.#waiters[i];
      const release = waiter ? this.#take(waiter.key) : undefined;
      if (waiter && release) {
        this.#waiters.splice(i, 1);
        waiter.grant(release);
      } else {
        i += 1;
      }
    }
  }
}
