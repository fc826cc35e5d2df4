import type { SqlSession } from '../ports.js';
import type { TableMaskPlan } from './plan.js';
import type { MaskedColumnRecord } from './record.js';
import { quoteIdent, quoteQualified, splitTable } from './sql-text.js';

/**
 * Before and after a table's masking: the sample of source values taken
 * before the update, and the ANALYZE and re-sample after it, the same for a
 * table masked in one statement and one masked in page ranges.
 */

/** Up to `sampleRows` rows with the masked columns as text, taken before the update; `k` is the primary key when there is one. */
export function sampleStatement(plan: TableMaskPlan, limit: number): string {
  const { schema, table } = splitTable(plan.table);
  const key =
    plan.keyColumns.length > 0
      ? `json_build_object(${plan.keyColumns.map((c) => `'${c.replaceAll("'", "''")}', ${quoteIdent(c)}`).join(', ')})::text`
      : "''";
  const values = plan.columns.map((c, i) => `${quoteIdent(c.column)}::text AS v${i}`).join(', ');
  const anyValue = plan.columns.map((c) => `${quoteIdent(c.column)} IS NOT NULL`).join(' OR ');
  return `SELECT ${key} AS k, ${values} FROM ${plan.only}${quoteQualified(schema, table)} WHERE ${anyValue} LIMIT ${limit}`;
}

/** The sampled rows again, by primary key, after the update. */
function resampleStatement(plan: TableMaskPlan): string {
  const { schema, table } = splitTable(plan.table);
  const key = `json_build_object(${plan.keyColumns.map((c) => `'${c.replaceAll("'", "''")}', t.${quoteIdent(c)}`).join(', ')})::text`;
  const values = plan.columns.map((c, i) => `t.${quoteIdent(c.column)}::text AS v${i}`).join(', ');
  const join = plan.keyColumns.map((c) => `t.${quoteIdent(c)} = s.${quoteIdent(c)}`).join(' AND ');
  const target = quoteQualified(schema, table);
  return `SELECT ${key} AS k, ${values} FROM ${plan.only}${target} t JOIN json_populate_recordset(NULL::${target}, $1::json) s ON ${join}`;
}

/**
 * Without a primary key the sampled rows cannot be found again, so the sampled
 * source values are looked for in the masked columns instead: which of them are
 * still there, in one scan of the table. ($i is column i's sampled values.)
 */
function presenceStatement(plan: TableMaskPlan): string {
  const { schema, table } = splitTable(plan.table);
  const present = plan.columns.map(
    (c, i) =>
      `coalesce(array_agg(DISTINCT ${quoteIdent(c.column)}::text) FILTER (WHERE ${quoteIdent(c.column)}::text = ANY ($${i + 1}::text[])), '{}') AS v${i}`,
  );
  return `SELECT ${present.join(', ')} FROM ${plan.only}${quoteQualified(schema, table)}`;
}

export type SampleRow = Record<string, string | null> & { k: string };

/** Per masked column: sampled values, and how many of them the masked table still holds. */
async function resample(
  session: SqlSession,
  plan: TableMaskPlan,
  before: SampleRow[],
): Promise<Array<{ rows: number; unchanged: number }>> {
  if (plan.keyColumns.length === 0) {
    // Column i's sampled source values, non-NULL.
    const sampled = plan.columns.map((_, i) => before.map((r) => r[`v${i}`]).filter((v): v is string => v !== null && v !== undefined));
    const [present = {}] = await session.query<Record<string, string[]>>(
      presenceStatement(plan),
      sampled.map((values) => [...new Set(values)]),
    );
    return sampled.map((values, i) => {
      const left = new Set(present[`v${i}`] ?? []);
      return { rows: values.length, unchanged: values.filter((v) => left.has(v)).length };
    });
  }
  const keys = before.map((r) => JSON.parse(r.k) as unknown);
  const after = new Map((await session.query<SampleRow>(resampleStatement(plan), [JSON.stringify(keys)])).map((r) => [r.k, r] as const));
  return plan.columns.map((_, i) => {
    const sampled = before.filter((r) => r[`v${i}`] !== null);
    return { rows: sampled.length, unchanged: sampled.filter((r) => after.get(r.k)?.[`v${i}`] === r[`v${i}`]).length };
  });
}

/**
 * After the update has committed: fresh statistics (the copy's pg_statistic
 * still held the source's most common values) and the re-sample; the
 * table's column records.
 */
export async function analyzeAndResample(session: SqlSession, plan: TableMaskPlan, before: SampleRow[]): Promise<MaskedColumnRecord[]> {
  const { schema, table } = splitTable(plan.table);
  await session.execute(`ANALYZE ${quoteQualified(schema, table)}`);
  const columns: MaskedColumnRecord[] = plan.columns.map((c) => ({ column: c.column, strategy: c.describe }));
  if (before.length > 0) {
    const counts = await resample(session, plan, before);
    counts.forEach((resampled, i) => {
      (columns[i] as MaskedColumnRecord).resampled = resampled;
    });
  }
  return columns;
}
