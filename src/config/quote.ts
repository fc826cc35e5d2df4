/**
 * Values from a config file, as messages show them: quoted, cut to a readable
 * length, with control characters (ANSI escapes, NUL, bidi overrides) written
 * as \u escapes so a hostile file cannot drive the terminal it is reported to.
 */

export const MAX_QUOTED_CHARS = 80;
/** A whole problem line, value and path included. */
export const MAX_PROBLEM_CHARS = 400;

// C0 and C1 controls, DEL, line/paragraph separators and the bidi controls.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const toEscape = (ch: string) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** Text with every control character written as \uXXXX. */
export function stripControl(text: string): string {
  return text.replace(CONTROL, toEscape);
}

function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, max).join('')}… (${chars.length} characters)`;
}

/** "value" for messages: escaped, cut at MAX_QUOTED_CHARS. */
export function quote(value: unknown, max = MAX_QUOTED_CHARS): string {
  const text = typeof value === 'string' ? value : String(value);
  return `"${cut(stripControl(text).replaceAll('"', '\\"'), max)}"`;
}

/** Last line of defence for every problem line: no control characters, bounded length. */
export function sanitizeProblem(line: string): string {
  return cut(stripControl(line), MAX_PROBLEM_CHARS);
}
