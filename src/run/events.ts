import type { PhaseName, RunRecord } from './record.js';

/** What the runner tells listeners (the live display, notifications, metrics, the job board) as a run goes. */
export type RunEvent =
  /** Accepted but waiting for a free slot (server.maxConcurrentRuns); run-started follows when it gets one. */
  | { type: 'run-queued'; run: RunRecord }
  | { type: 'run-started'; run: RunRecord }
  | { type: 'phase-started'; run: RunRecord; phase: PhaseName }
  | { type: 'phase-finished'; run: RunRecord; phase: PhaseName }
  | { type: 'progress'; run: RunRecord; phase: PhaseName; detail: Record<string, unknown> }
  | { type: 'run-finished'; run: RunRecord };
