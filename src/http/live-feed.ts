import type { RunRecord, RunStatus } from '../run/record.js';
import type { JobListItem } from './views.js';

/**
 * What changed, for whoever is watching right now: the status page's SSE
 * stream, `trigger --wait`, and long polls. In memory only; a client that
 * missed events (it reconnected) reads the jobs list again.
 */

/** A run as it moves: enough for a progress line and a phase timeline without reading the record. */
export interface RunUpdate {
  id: string;
  job: string;
  status: RunStatus;
  /** What happened: the runner's event, or `saved` for a record written outside a run (skip, interrupt, cancel). */
  event: 'run-queued' | 'run-started' | 'phase-started' | 'phase-finished' | 'progress' | 'run-finished' | 'saved';
  phase?: string | undefined;
  progress?: { at: string; [detail: string]: unknown } | undefined;
  phases: Array<{ name: string; status: string; startedAt?: string | undefined; durationMs?: number | undefined }>;
  error?: { phase: string; class: string; message: string } | undefined;
}

export type LiveEvent = { type: 'job'; data: JobListItem } | { type: 'run'; data: RunUpdate };

export type LiveListener = (event: LiveEvent) => void;

export class LiveFeed {
  readonly #listeners = new Set<LiveListener>();

  /** Calls `listener` with every event from now on; returns the unsubscribe function. */
  subscribe(listener: LiveListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get listeners(): number {
    return this.#listeners.size;
  }

  publish(event: LiveEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // One broken watcher (a socket that just closed) must not keep the event from the others.
      }
    }
  }
}

/** The update for a run event, or for a record saved outside a run (`saved`). */
export function runUpdate(
  run: RunRecord,
  event: RunUpdate['event'],
  extra: { phase?: string; progress?: RunUpdate['progress'] } = {},
): RunUpdate {
  const under = run.phases.find((p) => p.status === 'running');
  return {
    id: run.id,
    job: run.job,
    status: run.status,
    event,
    phase: extra.phase ?? under?.name,
    ...(extra.progress ? { progress: extra.progress } : {}),
    phases: run.phases.map((p) => ({
      name: p.name,
      status: p.status,
      ...(p.startedAt ? { startedAt: p.startedAt } : {}),
      ...(p.durationMs !== undefined ? { durationMs: p.durationMs } : {}),
    })),
    ...(run.error ? { error: { phase: run.error.phase, class: run.error.class, message: run.error.message } } : {}),
  };
}
