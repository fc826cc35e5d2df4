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

export function isWaitingForSource(lines: readonly string[]): boolean {
  return lines.slice(-10).some((line) => line.includes(DB_NOT_AVAILABLE));
}

export function classifyPodLog(lines: readonly string[]): { class: FailureClass; evidence: string[] } {
  const readable = lines.map(readableLine);
  const found = classifyLog(readable);
  return found.class === 'unknown' ? { class: 'unknown', evidence: readable.slice(-5) } : found;
}
