import { formatBytes } from '../config/byte-size.js';
import type { VerifiedDatabase } from '../config/types.js';
import type { Check, DatabaseFigures } from '../run/facts.js';

/**
 * Compares a copy's figures with the source's and with the job's
 * expectations. Pure: figures in, checks out.
 */

export function totalTables(figures: DatabaseFigures): number {
  return Object.values(figures.tablesBySchema).reduce((sum, n) => sum + n, 0);
}

/** `1 table`, `5 tables`. */
export function tables(count: number): string {
  return `${count} table${count === 1 ? '' : 's'}`;
}

export function compareDatabase(input: {
  expected: VerifiedDatabase;
  source: DatabaseFigures | undefined;
  copy: DatabaseFigures;
  sizeTolerancePercent: number;
}): Check[] {
  const { expected, source, copy } = input;
  const db = expected.name;
  const checks: Check[] = [];
  const fail = (name: string, message: string): Check => ({ name, ok: false, message, failureClass: 'verification-failed' });

  if (source) {
    const schemas = new Set([...Object.keys(source.tablesBySchema), ...Object.keys(copy.tablesBySchema)]);
    const differences: string[] = [];
    for (const schema of [...schemas].sort()) {
      const want = source.tablesBySchema[schema] ?? 0;
      const got = copy.tablesBySchema[schema] ?? 0;
      if (want !== got) differences.push(`${schema}: source ${want}, copy ${got}`);
    }
    checks.push(
      differences.length === 0
        ? {
            name: `${db}: table counts`,
            ok: true,
            message: `${tables(totalTables(copy))} in ${schemas.size} schema${schemas.size === 1 ? '' : 's'}, same as the source`,
          }
        : fail(`${db}: table counts`, `table counts differ from the source (${differences.join('; ')})`),
    );

    const allowed = (source.sizeBytes * input.sizeTolerancePercent) / 100;
    const delta = copy.sizeBytes - source.sizeBytes;
    const percent = source.sizeBytes === 0 ? 0 : (Math.abs(delta) / source.sizeBytes) * 100;
    const apart = source.sizeBytes === 0 && copy.sizeBytes > 0 ? 'the source was empty' : `${percent.toFixed(1)}% apart`;
    const sizeText = `copy ${formatBytes(copy.sizeBytes)}, source ${formatBytes(source.sizeBytes)} (${apart}, tolerance ${input.sizeTolerancePercent}%)`;
    checks.push(Math.abs(delta) <= allowed ? { name: `${db}: size`, ok: true, message: sizeText } : fail(`${db}: size`, sizeText));
  }

  if (expected.minTables !== undefined) {
    const count = totalTables(copy);
    checks.push(
      count >= expected.minTables
        ? { name: `${db}: minimum tables`, ok: true, message: `${tables(count)} (at least ${expected.minTables} expected)` }
        : fail(`${db}: minimum tables`, `only ${tables(count)}; the job expects at least ${expected.minTables}`),
    );
  }
  if (expected.minSizeBytes !== undefined) {
    checks.push(
      copy.sizeBytes >= expected.minSizeBytes
        ? {
            name: `${db}: minimum size`,
            ok: true,
            message: `${formatBytes(copy.sizeBytes)} (at least ${formatBytes(expected.minSizeBytes)} expected)`,
          }
        : fail(
            `${db}: minimum size`,
            `only ${formatBytes(copy.sizeBytes)}; the job expects at least ${formatBytes(expected.minSizeBytes)}`,
          ),
    );
  }
  if (expected.requiredTables.length > 0) {
    const present = new Set(copy.presentTables ?? []);
    const missing = expected.requiredTables.filter((t) => !present.has(t));
    checks.push(
      missing.length === 0
        ? {
            name: `${db}: required tables`,
            ok: true,
            message: `${expected.requiredTables.length === 1 ? 'the required table exists' : `all ${expected.requiredTables.length} required tables exist`}`,
          }
        : fail(`${db}: required tables`, `missing required tables: ${missing.join(', ')}`),
    );
  }
  return checks;
}
