import { quoteIdent, quoteLiteral, quoteQualified } from './sql-text.js';

/**
 * The coverage check's SQL. One query per database reads every column of
 * every user table and a bounded sample of its values from the statistics
 * the copy already has (pg_stats: up to $2 most common values and $2
 * histogram bounds per column), applies the value patterns on the server and
 * returns only the columns worth a look. A second query, only when some
 * tables have never been analysed, reads a few rows from at most
 * MAX_UNANALYSED_TABLES of them. So the check costs at most two queries per
 * database, whatever the number of tables.
 */

export const MAX_UNANALYSED_TABLES = 200;

/**
 * $1 name prefilter (regex), $2 values per statistics slot, $3 email, $4 email in text,
 * $5 phone, $6 card candidate, $7 IBAN candidate patterns.
 */
export const COVERAGE_COLUMNS = `
WITH cols AS MATERIALIZED (
  SELECT n.nspname AS schema, c.relname AS "table", a.attname AS "column", c.relkind = 'p' AS partitioned, c.reltuples,
         coalesce(bt.typname, t.typname) AS typname, coalesce(bt.typcategory, t.typcategory) AS category
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
  WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
), sampled AS (
  SELECT cols.*, (cols.category = 'S' OR cols.typname IN ('int8', 'numeric')) AS sampleable,
         CASE WHEN st.attname IS NOT NULL THEN array_remove(
           coalesce((st.most_common_vals::text::text[])[1:$2], '{}') || coalesce((st.histogram_bounds::text::text[])[1:$2], '{}'), NULL) END AS samples
  FROM cols
  LEFT JOIN pg_stats st ON st.schemaname = cols.schema AND st.tablename = cols."table" AND st.attname = cols."column"
                       AND st.inherited = cols.partitioned AND (cols.category = 'S' OR cols.typname IN ('int8', 'numeric'))
), counted AS (
  SELECT schema, "table", "column", typname, category, reltuples, sampleable, samples IS NOT NULL AS has_stats,
         lower("column") ~ $1 AS name_hint,
         coalesce(cardinality(samples), 0) AS sampled,
         (SELECT count(*) FROM unnest(samples) v WHERE v ~ $3)::int AS email_values,
         (SELECT count(*) FROM unnest(samples) v WHERE v ~ $4 AND v !~ $3)::int AS email_in_text,
         (SELECT count(*) FROM unnest(samples) v WHERE v ~ $5)::int AS phone_values,
         (SELECT coalesce(array_agg(v), '{}') FROM unnest(samples) v WHERE v ~ $6) AS card_candidates,
         (SELECT coalesce(array_agg(v), '{}') FROM unnest(samples) v WHERE v ~ $7) AS iban_candidates
  FROM sampled
)
SELECT schema, "table", "column", typname, category, has_stats, sampleable, reltuples <> 0 AS has_rows, name_hint, sampled,
       email_values, email_in_text, phone_values, card_candidates, iban_candidates,
       (SELECT count(*) FROM cols)::int AS total_columns,
       (SELECT count(DISTINCT (schema, "table")) FROM cols)::int AS total_tables
FROM counted
WHERE name_hint OR email_values > 0 OR email_in_text > 0 OR phone_values > 0
   OR cardinality(card_candidates) > 0 OR cardinality(iban_candidates) > 0
   OR (sampleable AND NOT has_stats AND reltuples <> 0)
UNION ALL
-- Always one row, so the totals arrive even when no column is worth a look.
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       (SELECT count(*) FROM cols)::int, (SELECT count(DISTINCT (schema, "table")) FROM cols)::int`;

export interface CoverageColumnRow extends Record<string, unknown> {
  schema: string | null;
  table: string | null;
  column: string | null;
  typname: string | null;
  category: string | null;
  has_stats: boolean | null;
  sampleable: boolean | null;
  has_rows: boolean | null;
  name_hint: boolean | null;
  sampled: number | null;
  email_values: number | null;
  email_in_text: number | null;
  phone_values: number | null;
  card_candidates: string[] | null;
  iban_candidates: string[] | null;
  total_columns: number;
  total_tables: number;
}

/**
 * Reads up to `limit` non-NULL values of each given column straight from
 * tables that have no statistics: one statement, a UNION ALL of bounded reads.
 */
export function unanalysedSampleQuery(columns: ReadonlyArray<{ schema: string; table: string; column: string }>, limit: number): string {
  return columns
    .map(
      (c) =>
        `(SELECT ${quoteLiteral(c.schema)} AS schema, ${quoteLiteral(c.table)} AS "table", ${quoteLiteral(c.column)} AS "column", ${quoteIdent(c.column)}::text AS value FROM ${quoteQualified(c.schema, c.table)} WHERE ${quoteIdent(c.column)} IS NOT NULL LIMIT ${limit})`,
    )
    .join('\nUNION ALL\n');
}
