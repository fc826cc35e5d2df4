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

/** Every relative import and re-export of a file, type-only ones included, and dynamic imports, as absolute paths. */
function localImportsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [
    ...text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]/gm),
    ...text.matchAll(/import\(\s*['"](\.[^'"]+)['"]\s*\)/g),
  ].map((m) => m[1] as string);
  return specs.map((spec) => path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')));
}

/** Groups of files that import each other, directly or around a loop (Tarjan's strongly connected components). */
function importCircles(files: readonly string[], importsOf: (file: string) => string[]): string[][] {
  const known = new Set(files);
  const edges = new Map(files.map((f) => [f, importsOf(f).filter((to) => known.has(to))]));
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const circles: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
    }
    if (low.get(v) !== index.get(v)) return;
    const group: string[] = [];
    let w: string | undefined;
    do {
      w = stack.pop() as string;
      onStack.delete(w);
      group.push(w);
    } while (w !== v);
    if (group.length > 1 || (edges.get(v) ?? []).includes(v)) circles.push(group.sort());
  };
  for (const f of files) if (!index.has(f)) visit(f);
  return circles;
}

const PURE = [
  'config/schema.ts',
  'run/target-down.ts',
  'run/evidence.ts',
  'history/retention.ts',
  'targets/local/room.ts',
  'config/schema-notify.ts',
  'config/schema-mask.ts',
  'notify/render/message.ts',
  'notify/render/slack.ts',
  'notify/render/generic.ts',
  'notify/render/text.ts',
  'notify/sign.ts',
  'notify/scrub.ts',
  'config/schema-cnpg.ts',
  'config/schema-cnpg-cluster.ts',
  'config/structural-schema.ts',
  'config/cnpg-cluster-spec.schema.json',
  'config/schema-safe-copy.ts',
  'safe-copy/sql-text.ts',
  'safe-copy/neutralise-sql.ts',
  'safe-copy/roles-sql.ts',
  'safe-copy/step-error.ts',
  'safe-copy/plan.ts',
  'targets/local/private-start.ts',
  'targets/cnpg/private-window.ts',
  'config/schema-service.ts',
  'config/schema-leader.ts',
  'config/secret-ref.ts',
  'config/validate.ts',
  'config/byte-size.ts',
  'config/quote.ts',
  'config/limits.ts',
  'config/check-paths.ts',
  'config/check-webhooks.ts',
  'config/types.ts',
  'schedule/cron-expression.ts',
  'schedule/fire-times.ts',
  'failures.ts',
  'errors.ts',
  'run/record.ts',
  'run/facts.ts',
  'kube/labels.ts',
  'duration.ts',
  'run/events.ts',
  'checks/compare.ts',
  'checks/queries.ts',
  'targets/local/commands.ts',
  'config/schema-strategy.ts',
  'config/schema-mask.ts',
  'targets/local/swap-plan.ts',
  'targets/cnpg/blue-green.ts',
  'targets/cnpg/manifests.ts',
  'targets/cnpg/readiness.ts',
  'targets/cnpg/pod-log.ts',
  'targets/cnpg/guard.ts',
  'cli/render.ts',
  'cli/color.ts',
  'cli/completion/candidates.ts',
  'cli/completion/scripts.ts',
  'config/schema-mask.ts',
  'mask/catalog.ts',
  'mask/coverage-queries.ts',
  'mask/coverage-rules.ts',
  'mask/fake-names.ts',
  'mask/key.ts',
  'mask/plan.ts',
  'mask/record.ts',
  'mask/sql-text.ts',
  'mask/strategies.ts',
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
  it('no file in src/ is part of an import circle (type-only imports count)', () => {
    const circles = importCircles(sourceFiles(src), localImportsOf).map((group) => group.map(rel).join(' → '));
    expect(circles, `files importing each other:\n${circles.join('\n')}`).toEqual([]);
  });

  it('finds a circle and names its files', () => {
    const graph: Record<string, string[]> = { a: ['b'], b: ['c'], c: ['a'], d: ['a'], e: ['e'] };
    expect(importCircles(Object.keys(graph), (f) => graph[f] ?? [])).toEqual([['a', 'b', 'c'], ['e']]);
  });

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

  it('only src/kube imports @kubernetes/client-node, type-only imports included', () => {
    const importers = sourceFiles(src)
      .filter((file) => importsOf(file).includes('@kubernetes/client-node'))
      .map(rel);
    expect(importers).toEqual(['kube/client.ts']);
  });

  it('only the outbox (webhooks), the leader forwarding (http/forward.ts) and the CLI service client call fetch', () => {
    const callers = sourceFiles(src)
      .filter((file) => /(^|[^.\w])fetch\(/m.test(readFileSync(file, 'utf8')))
      .map(rel);
    // The CLI's client for a running service (`--server`) is the third home of outgoing HTTP.
    expect(callers).toEqual(['cli/remote/client.ts', 'http/forward.ts', 'notify/outbox.ts']);
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
