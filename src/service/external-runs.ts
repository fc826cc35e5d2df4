import { type FSWatcher, mkdirSync, watch } from 'node:fs';
import path from 'node:path';
import { TERMINAL_RUN_STATUSES } from '../run/record.js';
import type { ServiceParts } from './parts.js';

/** How often job locks are looked at even without a file-system event (a missed or unsupported watch). */
const POLL_MS = 5_000;
/** Events for one lock come in bursts (a temp file linked, then removed): one look per burst. */
const DEBOUNCE_MS = 100;
/** Newest records read per look: a CLI run and the records it settled. */
const NEWEST = 10;

/**
 * Runs made by another process on the same state directory (`db-refresher run`
 * beside a running service) reach the service's job board and metrics: the run
 * under way shows as the job's current run while its process holds the job's
 * lock, and once the lock is released its record becomes the job's last run
 * (and last success, which the data-age gauge reads). The service learns of it
 * from the lock directory: a watch on it, and a look every POLL_MS for what a
 * watch can miss. The service's own runs reach the board through their events,
 * while it holds their locks, so nothing is counted twice.
 */
export class ExternalRuns {
  readonly #parts: ServiceParts;
  readonly #dir: string;
  readonly #pending = new Map<string, NodeJS.Timeout>();
  /** Jobs whose lock another process held when last looked at: looked at again until it is gone. */
  readonly #held = new Set<string>();
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #running = false;

  constructor(parts: ServiceParts) {
    this.#parts = parts;
    this.#dir = path.join(parts.config.stateDir, 'locks');
  }

  /** Starts watching; again after stop() too (a replica that regains the leader Lease). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const { log } = this.#parts;
    try {
      mkdirSync(this.#dir, { recursive: true });
      this.#watcher = watch(this.#dir, { persistent: false }, (event, name) => {
        // 'change' is a heartbeat (the holder touches its lock every second): nothing started or ended.
        if (event === 'rename' && name?.endsWith('.lock')) this.#soon(name.slice(0, -'.lock'.length));
      });
      this.#watcher.on('error', (error) => {
        log.warn({ err: error, dir: this.#dir }, 'cannot watch the lock directory; runs of other processes are noticed every 5 s');
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch (error) {
      log.warn({ err: error, dir: this.#dir }, 'cannot watch the lock directory; runs of other processes are noticed every 5 s');
    }
    this.#poll = setInterval(() => {
      for (const job of new Set([...this.#parts.locks.lockedJobs(), ...this.#held])) this.#soon(job);
    }, POLL_MS);
    this.#poll.unref();
  }

  /** Stops watching (shutdown, or this replica lost the leader Lease: the new leader's board is the one that counts). */
  stop(): void {
    this.#running = false;
    this.#watcher?.close();
    this.#watcher = undefined;
    clearInterval(this.#poll);
    this.#poll = undefined;
    for (const timer of this.#pending.values()) clearTimeout(timer);
    this.#pending.clear();
    this.#held.clear();
  }

  get running(): boolean {
    return this.#running;
  }

  #soon(job: string): void {
    if (!this.#running || this.#pending.has(job) || !this.#parts.config.jobs.some((j) => j.name === job)) return;
    const timer = setTimeout(() => {
      this.#pending.delete(job);
      this.#parts.track(this.look(job));
    }, DEBOUNCE_MS);
    timer.unref();
    this.#pending.set(job, timer);
  }

  /** Brings the job board and metrics up to date with what other processes did to `job`. */
  async look(job: string): Promise<void> {
    const { locks, store, board, metrics } = this.#parts;
    const holder = locks.holder(job);
    // This service's own run: its events keep the board current.
    if (holder?.pid === process.pid) return;
    if (holder) {
      this.#held.add(job);
      if (board.state(job).current?.id === holder.runId) return;
      const run = await store.get(holder.runId);
      if (run && !TERMINAL_RUN_STATUSES.has(run.status) && locks.holder(job)?.runId === run.id) board.holding(run);
      return;
    }
    this.#held.delete(job);
    const known = board.state(job).lastRun?.id ?? '';
    const current = board.state(job).current?.id;
    // Oldest first, so the newest ends up as the job's last run.
    for (const run of (await store.list(job, { limit: NEWEST })).reverse()) {
      if (!TERMINAL_RUN_STATUSES.has(run.status)) continue;
      if (run.id <= known && run.id !== current) continue;
      board.settled(run);
      metrics.onRecord(run);
    }
    // A run shown as current that another process left unfinished (it died): the stale-lock sweep settles it.
  }
}
