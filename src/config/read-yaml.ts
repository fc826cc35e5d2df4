import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { isAlias, parseDocument, visit } from 'yaml';
import { formatBytes } from './byte-size.js';
import { quote } from './quote.js';

/**
 * Reads a YAML file (the config, a cnpg values file) with limits, so a hostile
 * or broken file is a clear config problem and never hours of CPU, gigabytes of
 * memory or a library's internal message:
 * - the file's size is checked before it is parsed (1 MiB, or DB_REFRESHER_CONFIG_MAX_BYTES);
 * - binary content is refused without being echoed;
 * - aliases (*name) may expand to a bounded number of nodes (the "billion laughs" bomb);
 * - nesting is bounded, so nothing downstream recurses off the stack.
 * Each function returns either the value or problem lines; the caller names the file.
 */

export const DEFAULT_MAX_CONFIG_BYTES = 1024 * 1024;
export const MAX_CONFIG_BYTES_ENV = 'DB_REFRESHER_CONFIG_MAX_BYTES';
/**
 * yaml's maxAliasCount: how often an anchor may be used, times the aliases inside it. A plain
 * block shared by every job (a common source) may be used this often; an anchored block that
 * holds aliases multiplies, and a "billion laughs" file hits the limit within a few levels.
 */
export const MAX_ALIAS_EXPANSION = 1000;
/** Values in the document once aliases are expanded: everything after parsing walks them all. */
export const MAX_EXPANDED_NODES = 1_000_000;
/** Deeper than any real config (the deepest key is about 8 levels). */
export const MAX_NESTING_DEPTH = 64;

export type Outcome<T> = { ok: true; value: T } | { ok: false; problems: string[] };

/** The size limit from the environment, or a problem line when the variable is set to nonsense. */
export function maxConfigBytes(env: NodeJS.ProcessEnv): Outcome<number> {
  const raw = env[MAX_CONFIG_BYTES_ENV];
  if (raw === undefined || raw === '') return { ok: true, value: DEFAULT_MAX_CONFIG_BYTES };
  if (!/^\d{1,15}$/.test(raw.trim()) || Number(raw) < 1) {
    return {
      ok: false,
      problems: [
        `(top level): ${MAX_CONFIG_BYTES_ENV}=${quote(raw)} is not a number of bytes; unset it or give a whole number such as 4194304`,
      ],
    };
  }
  return { ok: true, value: Number(raw) };
}

/**
 * Reads at most `limit` bytes; refuses larger files by their size before reading
 * (and, for files whose size stat cannot tell, such as pipes, while reading).
 */
export function readTextFile(file: string, limit: number): Outcome<string> {
  const tooBig = (size: string) => ({
    ok: false as const,
    problems: [
      `(top level): the file is ${size}, larger than the limit of ${formatBytes(limit)}; a config file is a few kilobytes. If it really must be this large, raise ${MAX_CONFIG_BYTES_ENV}`,
    ],
  });
  const fd = openSync(file, 'r');
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) return { ok: false, problems: ['(top level): this is a directory, not a file'] };
    if (stat.size > limit) return tooBig(formatBytes(stat.size));
    const buffer = Buffer.alloc(limit + 1);
    let length = 0;
    for (;;) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
      if (length > limit) return tooBig(`more than ${formatBytes(limit)}`);
    }
    return checkText(buffer.subarray(0, length));
  } finally {
    closeSync(fd);
  }
}

/** Text or a problem: NUL bytes or invalid UTF-8 mean it is not a YAML file, and its bytes are not echoed. */
export function checkText(bytes: Buffer): Outcome<string> {
  const nul = bytes.indexOf(0);
  if (nul >= 0) {
    return { ok: false, problems: [`(top level): the file is not text (a NUL byte at offset ${nul}); is it the right file?`] };
  }
  try {
    return { ok: true, value: new TextDecoder('utf-8', { fatal: true }).decode(bytes) };
  } catch {
    return { ok: false, problems: ['(top level): the file is not UTF-8 text; is it the right file? Save it as UTF-8'] };
  }
}

function libraryMessage(message: string): string {
  const first = (message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
  if (/multiple documents/i.test(first)) {
    return 'the file holds more than one YAML document (a "---" line after content); put all settings in one document';
  }
  if (/call stack/i.test(first)) return `nesting is too deep; a config file nests at most ${MAX_NESTING_DEPTH} levels`;
  return first;
}

/**
 * What the plain data looks like once aliases are expanded (yaml shares one object per
 * anchor, but every later walk visits each use): too deep, or too many values. Walked
 * without recursion, stopping at the first limit.
 */
function shapeProblem(value: unknown): string | undefined {
  const stack: Array<[unknown, number]> = [[value, 0]];
  let nodes = 0;
  while (stack.length > 0) {
    const [node, depth] = stack.pop() as [unknown, number];
    nodes += 1;
    if (nodes > MAX_EXPANDED_NODES) {
      return `(top level): the file expands to more than ${MAX_EXPANDED_NODES} values once its YAML aliases (*name) are filled in; an anchored block that holds aliases multiplies in size with every use. Write the repeated settings out, or alias only small blocks`;
    }
    if (node === null || typeof node !== 'object') continue;
    if (depth >= MAX_NESTING_DEPTH) return `(top level): nesting is too deep; a config file nests at most ${MAX_NESTING_DEPTH} levels`;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return undefined;
}

/** Parses one YAML document into plain data, with the limits above. */
export function parseYamlText(text: string): Outcome<unknown> {
  let document: ReturnType<typeof parseDocument>;
  try {
    document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  } catch (error) {
    // The parser recurses per nesting level.
    if (error instanceof RangeError) return { ok: false, problems: [`(top level): ${libraryMessage(error.message)}`] };
    throw error;
  }
  if (document.errors.length > 0) {
    return {
      ok: false,
      problems: document.errors.map((error) => {
        const line = error.linePos?.[0];
        return `${line ? `line ${line.line}, column ${line.col}` : 'YAML'}: ${libraryMessage(error.message)}`;
      }),
    };
  }
  let aliases = 0;
  visit(document, {
    Alias: (_key, node) => {
      if (isAlias(node)) aliases += 1;
    },
  });
  let value: unknown;
  try {
    value = document.toJS({ maxAliasCount: aliases === 0 ? -1 : MAX_ALIAS_EXPANSION });
  } catch (error) {
    if (error instanceof ReferenceError && /alias/i.test(error.message)) {
      return {
        ok: false,
        problems: [
          `(top level): its ${aliases} YAML aliases (*name) expand past the limit of ${MAX_ALIAS_EXPANSION}: an anchored block that holds aliases multiplies in size with every use (a "billion laughs" file). Write the repeated settings out, or alias only small blocks`,
        ],
      };
    }
    if (error instanceof RangeError) return { ok: false, problems: [`(top level): ${libraryMessage(error.message)}`] };
    throw error;
  }
  const problem = shapeProblem(value);
  return problem ? { ok: false, problems: [problem] } : { ok: true, value };
}
