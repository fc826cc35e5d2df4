import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The boundaries the design depends on, kept by a test rather than by memory:
 * pure modules import nothing that does I/O, and each I/O library has one home.
 */

const src = path.resolve(import.meta.dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^import\s[^'"]*['"]([^'"]+)['"]/gm)].map((m) => m[1] as string);
}

const rel = (file: string) => path.relative(src, file);

const PURE = [
  'config/schema.ts',
  'config/schema-notify.ts',
  'notify/render/message.ts',
  'notify/render/slack.ts',
  'notify/render/generic.ts',
  'notify/render/text.ts',
  'notify/sign.ts',
  'notify/scrub.ts',
  'config/schema-cnpg.ts',
  'config/schema-service.ts',
  'config/secret-ref.ts',
  'config/validate.ts',
  'config/byte-size.ts',
  'config/types.ts',
  'schedule/cron-expression.ts',
  'schedule/fire-times.ts',
  'failures.ts',
  'errors.ts',
  'run/record.ts',
  'run/facts.ts',
  'run/events.ts',
  'checks/compare.ts',
  'checks/queries.ts',
  'targets/local/commands.ts',
  'cli/render.ts',
];

const IO_MODULES = [
  'node:fs',
  'node:fs/promises',
  'node:child_process',
  'node:net',
  'node:http',
  'node:https',
  'pg',
  '@kubernetes/client-node',
];

describe('architecture', () => {
  it('pure modules import nothing that does I/O, directly or through another module', () => {
    const pure = new Set(PURE);
    for (const file of PURE) {
      for (const spec of importsOf(path.join(src, file))) {
        expect(IO_MODULES, `${file} imports ${spec}`).not.toContain(spec);
        if (spec.startsWith('.')) {
          const target = rel(path.resolve(path.dirname(path.join(src, file)), spec.replace(/\.js$/, '.ts')));
          // Type-only imports are fine; value imports must stay inside the pure set.
          const line =
            readFileSync(path.join(src, file), 'utf8')
              .split('\n')
              .find((l) => l.includes(`'${spec}'`)) ?? '';
          if (!line.startsWith('import type')) expect(pure.has(target), `${file} imports impure ${target}`).toBe(true);
        }
      }
    }
  });

  it('only src/postgres/sql.ts imports pg, and only src/postgres/command.ts spawns processes', () => {
    for (const file of sourceFiles(src)) {
      const imports = importsOf(file);
      if (imports.includes('pg')) expect(rel(file)).toBe('postgres/sql.ts');
      if (imports.includes('node:child_process')) expect(['postgres/command.ts', 'postgres/binaries.ts']).toContain(rel(file));
    }
  });

  it('only src/notify/outbox.ts calls fetch', () => {
    const callers = sourceFiles(src)
      .filter((file) => /(^|[^.\w])fetch\(/m.test(readFileSync(file, 'utf8')))
      .map(rel);
    expect(callers).toEqual(['notify/outbox.ts']);
  });

  it('targets and notifications never import each other', () => {
    for (const file of sourceFiles(src)) {
      const from = rel(file);
      for (const spec of importsOf(file).filter((s) => s.startsWith('.'))) {
        const to = rel(path.resolve(path.dirname(file), spec));
        if (from.startsWith('targets/')) expect(to.startsWith('notify/'), `${from} imports ${to}`).toBe(false);
        if (from.startsWith('notify/')) expect(to.startsWith('targets/'), `${from} imports ${to}`).toBe(false);
      }
    }
  });
});
