import type { RunError } from './record.js';

/**
 * Keeps secrets out of the evidence a failure carries: the last lines a
 * child program (pg_basebackup, pg_ctl, the copy's server log) wrote, and the
 * message quoting them. Those lines are the program's own words, so they can
 * hold what db-refresher never put in a message itself: a statement the
 * server logged with its PASSWORD literal, a connection string, or a value a
 * wrapper script echoed. Pure.
 */

export const REDACTED = '[redacted]';
/** Lines of evidence a record keeps: enough to see what the program said last, not a whole log. */
export const EVIDENCE_LINES = 20;
/** Shorter values are too likely to be ordinary words to be replaced everywhere. */
const MIN_SECRET_LENGTH = 4;

const PATTERNS: ReadonlyArray<[RegExp, string]> = [
  // CREATE/ALTER ROLE … [ENCRYPTED] PASSWORD 'x', as the server logs a failed statement.
  [/(\bPASSWORD\s+)'(?:[^']|'')*'/gi, `$1'${REDACTED}'`],
  // libpq keyword/value connection strings.
  [/(\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s'"]+)/gi, `$1${REDACTED}`],
  // postgresql://user:password@host URIs.
  [/(\bpostgres(?:ql)?:\/\/[^:/@\s]*:)[^@\s]*@/gi, `$1${REDACTED}@`],
];

/** Replaces every known secret value, then what looks like a password in SQL or a connection string. */
export function redactText(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const value of [...new Set(secrets)].filter((s) => s.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length)) {
    out = out.split(value).join(REDACTED);
    // A secret spanning several lines (a TLS key) can turn up one line at a time.
    for (const line of value.split('\n')) if (line.trim().length >= 16 && line !== value) out = out.split(line).join(REDACTED);
  }
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/** The last EVIDENCE_LINES lines, each redacted. */
export function redactLines(lines: readonly string[], secrets: readonly string[]): string[] {
  return lines.slice(-EVIDENCE_LINES).map((line) => redactText(line, secrets));
}

/** A failure as the record keeps it: message and evidence redacted. */
export function redactRunError(error: RunError, secrets: readonly string[]): RunError {
  return {
    ...error,
    message: redactText(error.message, secrets),
    ...(error.details ? { details: redactLines(error.details, secrets) } : {}),
  };
}

/**
 * Every secret value in a job's configuration: whatever has a reveal() (config/secret.ts's Secret),
 * found by walking the object, so a secret added to the config later is covered without a list to keep.
 */
export function secretValuesOf(value: unknown, seen = new Set<unknown>()): string[] {
  if (value === null || typeof value !== 'object' || seen.has(value)) return [];
  seen.add(value);
  const reveal = (value as { reveal?: unknown }).reveal;
  if (typeof reveal === 'function') {
    const revealed: unknown = reveal.call(value);
    return typeof revealed === 'string' ? [revealed] : [];
  }
  const children = Array.isArray(value) ? value : Object.values(value);
  return children.flatMap((child) => secretValuesOf(child, seen));
}
