import { classifyLog, type FailureClass } from '../../failures.js';

/**
 * Reading a CNPG bootstrap Job's pod log. Pure: lines in, findings out. The
 * instance manager logs JSON lines; the interesting text is in msg and err.
 */

export const DB_NOT_AVAILABLE = 'DB not available, will retry';

/** "msg: err" for a JSON log line, the line itself otherwise. */
export function readableLine(line: string): string {
  try {
    const entry = JSON.parse(line) as { msg?: unknown; err?: unknown; error?: unknown };
    const parts = [entry.msg, entry.err ?? entry.error].filter((p) => typeof p === 'string' && p !== '');
    return parts.length ? parts.join(': ') : line;
  } catch {
    return line;
  }
}

/** The current run of "DB not available, will retry" lines at the end of a clone Job's log. */
export interface SourceOutage {
  /** The run's first line: it identifies this outage, so a later one starts a new count. */
  firstLine: string;
  retries: number;
  /** How long the run lasts by the log's own timestamps (first to last retry), when the lines carry them. */
  loggedMs: number | undefined;
}

/** The `ts` of a JSON log line (CNPG writes RFC 3339 with nanoseconds), in ms. */
function lineTime(line: string): number | undefined {
  try {
    const ts = (JSON.parse(line) as { ts?: unknown }).ts;
    if (typeof ts === 'number') return ts * 1000;
    if (typeof ts !== 'string') return undefined;
    const ms = Date.parse(ts.replace(/(\.\d{3})\d+/, '$1'));
    return Number.isFinite(ms) ? ms : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The outage the clone Job is in now: the "DB not available" lines that end its
 * log. Undefined once any other line follows them, because the clone then made
 * progress (connected, copied, or failed for another reason), and a later
 * outage is counted from its own first line.
 */
export function currentOutage(lines: readonly string[]): SourceOutage | undefined {
  let first = lines.length;
  while (first > 0 && (lines[first - 1] ?? '').includes(DB_NOT_AVAILABLE)) first -= 1;
  const run = lines.slice(first);
  const firstLine = run[0];
  if (firstLine === undefined) return undefined;
  const start = lineTime(firstLine);
  const end = lineTime(run[run.length - 1] ?? '');
  return { firstLine, retries: run.length, loggedMs: start !== undefined && end !== undefined ? Math.max(0, end - start) : undefined };
}

export function classifyPodLog(lines: readonly string[]): { class: FailureClass; evidence: string[] } {
  const readable = lines.map(readableLine);
  const found = classifyLog(readable);
  return found.class === 'unknown' ? { class: 'unknown', evidence: readable.slice(-5) } : found;
}
