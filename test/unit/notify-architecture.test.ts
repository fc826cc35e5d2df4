import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The notification module's boundaries: renderers and signing are pure, and
 * the outbox is the only caller of fetch. (The same rule as
 * architecture.test.ts, for the files under src/notify until its PURE list
 * names them.)
 */

const src = path.resolve(import.meta.dirname, '../../src');

const NOTIFY_PURE = [
  'notify/render/message.ts',
  'notify/render/slack.ts',
  'notify/render/generic.ts',
  'notify/render/text.ts',
  'notify/sign.ts',
  'notify/scrub.ts',
];
/** Modules outside src/notify that the pure notify files may import values from (all pure). */
const PURE_ELSEWHERE = [
  'checks/compare.ts',
  'config/byte-size.ts',
  'config/schema-notify.ts',
  'config/secret-ref.ts',
  'failures.ts',
  'runner/run-record.ts',
];
const IO_MODULES = [
  'node:fs',
  'node:fs/promises',
  'node:child_process',
  'node:net',
  'node:http',
  'node:https',
  'node:dns',
  'pg',
  '@kubernetes/client-node',
  'undici',
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

describe('notify architecture', () => {
  it('renderers and signing import nothing that does I/O, and take values only from pure modules', () => {
    const pure = new Set([...NOTIFY_PURE, ...PURE_ELSEWHERE]);
    for (const file of NOTIFY_PURE) {
      const text = readFileSync(path.join(src, file), 'utf8');
      for (const match of text.matchAll(/^import\s(type\s)?[^'"]*['"]([^'"]+)['"]/gm)) {
        const [, typeOnly, spec] = match as unknown as [string, string | undefined, string];
        expect(IO_MODULES, `${file} imports ${spec}`).not.toContain(spec);
        if (spec.startsWith('.') && !typeOnly) {
          const target = path.relative(src, path.resolve(path.dirname(path.join(src, file)), spec.replace(/\.js$/, '.ts')));
          expect(pure.has(target), `${file} imports impure ${target}`).toBe(true);
        }
      }
      expect(text, `${file} calls fetch`).not.toMatch(/\bfetch\(/);
    }
  });

  it('only src/notify/outbox.ts calls fetch', () => {
    const callers = sourceFiles(src)
      .filter((file) => /(^|[^.\w])fetch\(/m.test(readFileSync(file, 'utf8')))
      .map((file) => path.relative(src, file));
    expect(callers.filter((f) => f.startsWith('notify/'))).toEqual(['notify/outbox.ts']);
  });
});
