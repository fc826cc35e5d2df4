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

/** Up to $2 values from each of the first three statistics slots that hold most common values (kind 1) or histogram bounds (kind 2). */
const SLOT_SAMPLES = [1, 2, 3]
  .map((i) => `coalesce(CASE WHEN st.stakind${i} IN (1, 2) THEN (st.stavalues${i}::text::text[])[1:$2] END, '{}')`)
  .join(' || ');

/**
 * Where the samples come from. pg_statistic, joined by table oid and column
 * number, is fast but readable by superusers only; the pg_stats view works
 * for any role that may read the tables, joined by names, and is slower.
 */
const STATS_FROM = {
  pg_statistic: `
  SELECT cols.relid, cols.attnum, (array_remove(${SLOT_SAMPLES}, NULL))[1:$8] AS samples, st.stanullfrac AS nullfrac
  FROM cols JOIN pg_statistic st ON st.starelid = cols.relid AND st.staattnum = cols.attnum AND st.stainherit = cols.partitioned
  WHERE cols.sampleable`,
  pg_stats: `
  SELECT cols.relid, cols.attnum,
         (array_remove(coalesce((st.most_common_vals::text::text[])[1:$2], '{}') || coalesce((st.histogram_bounds::text::text[])[1:$2], '{}'), NULL))[1:$8] AS samples,
         st.null_frac AS nullfrac
  FROM cols JOIN pg_stats st ON st.schemaname = cols.schema AND st.tablename = cols."table" AND st.attname = cols."column"
                             AND st.inherited = cols.partitioned
  WHERE cols.sampleable`,
} as const;

export type StatsSource = keyof typeof STATS_FROM;

/**
 * Every user column (of tables and populated materialized views) with a name hint or a value that matches a pattern, plus
 * sampleable columns of tables without statistics; then one row of totals.
 * $1 name prefilter (LIKE patterns), $2 values per statistics slot, $3 email, $4 email
 * in text, $5 phone, $6 card candidate, $7 IBAN candidate patterns, $8 values per column.
 * The patterns run in one grouped pass over all sampled values.
 */
export function coverageColumnsQuery(source: StatsSource): string {
  return `
WITH cols AS MATERIALIZED (
  SELECT c.oid AS relid, a.attnum, n.nspname AS schema, c.relname AS "table", a.attname AS "column", c.relkind = 'p' AS partitioned,
         c.relkind = 'm' AS matview,
         c.reltuples, (coalesce(bt.typcategory, t.typcategory) = 'S' OR coalesce(bt.typname, t.typname) IN ('int8', 'numeric', 'jsonb')) AS sampleable,
         coalesce(bt.typcategory, t.typcategory)::text AS category
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  -- Not generated columns: they are computed from other columns of the row, which the check sees (and
  -- one computed from a masked column holds fakes; it cannot be masked itself).
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
  -- Materialized views too: a physical copy holds them as the source filled them. One WITH NO DATA has no rows (and cannot be read).
  WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition AND (c.relkind <> 'm' OR c.relispopulated)
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
), stats AS MATERIALIZED (${STATS_FROM[source]}
), matched AS (
  SELECT relid, attnum, count(*)::int AS sampled,
         (count(*) FILTER (WHERE at AND v ~ $3))::int AS email_values,
         (count(*) FILTER (WHERE at AND v ~ $4 AND v !~ $3))::int AS email_in_text,
         (count(*) FILTER (WHERE (lead IN ('+', '0', '(') OR (lead BETWEEN '2' AND '9' AND len BETWEEN 12 AND 14)) AND v ~ $5))::int AS phone_values,
         coalesce(array_agg(v) FILTER (WHERE lead BETWEEN '0' AND '9' AND len BETWEEN 13 AND 23 AND v ~ $6), '{}') AS card_candidates,
         coalesce(array_agg(v) FILTER (WHERE len BETWEEN 15 AND 42 AND NOT (lead BETWEEN '0' AND '9') AND v ~ $7), '{}') AS iban_candidates
  -- Cheap guards first (an @, the first character, the length), so most values never reach a regular expression.
  FROM stats, LATERAL (SELECT v, strpos(v, '@') > 0 AS at, left(v, 1) AS lead, length(v) AS len FROM unnest(stats.samples) AS v) AS u
  GROUP BY relid, attnum
)
SELECT cols.schema, cols."table", cols."column", cols.matview, cols.category, cols.sampleable, NOT nosample.missing AS has_stats, cols.reltuples <> 0 AS has_rows,
       lower(cols."column") LIKE ANY ($1::text[]) AS name_hint, coalesce(m.sampled, 0) AS sampled,
       coalesce(m.email_values, 0) AS email_values, coalesce(m.email_in_text, 0) AS email_in_text, coalesce(m.phone_values, 0) AS phone_values,
       coalesce(m.card_candidates, '{}') AS card_candidates, coalesce(m.iban_candidates, '{}') AS iban_candidates,
       -- pg_stats hides what the role may not read, so a missing sample may mean "not allowed": asked only then.
       CASE WHEN cols.sampleable AND stats.relid IS NULL THEN has_column_privilege(cols.relid, cols.attnum, 'SELECT') END AS readable,
       NULL::int AS total_columns, NULL::int AS total_tables
FROM cols
LEFT JOIN stats ON stats.relid = cols.relid AND stats.attnum = cols.attnum
LEFT JOIN matched m ON m.relid = cols.relid AND m.attnum = cols.attnum
-- No sample: never analysed, or statistics without values although not all NULL (ANALYZE keeps no
-- value over 1 kB, so long free text has none); such columns are read from the table instead.
CROSS JOIN LATERAL (SELECT stats.relid IS NULL OR (cardinality(stats.samples) = 0 AND stats.nullfrac < 1) AS missing) AS nosample
WHERE lower(cols."column") LIKE ANY ($1::text[]) OR m.email_values > 0 OR m.email_in_text > 0 OR m.phone_values > 0
   OR cardinality(m.card_candidates) > 0 OR cardinality(m.iban_candidates) > 0
   OR (cols.sampleable AND nosample.missing AND cols.reltuples <> 0)
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       (SELECT count(*) FROM cols)::int, (SELECT count(DISTINCT relid) FROM cols)::int`;
}

export interface CoverageColumnRow extends Record<string, unknown> {
  schema: string | null;
  table: string | null;
  column: string | null;
  /** The relation is a materialized view: it cannot be masked itself, only the tables it reads. */
  matview: boolean | null;
  /** pg_type.typcategory of the column, or of its domain's base type. */
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
  /** false when the checking role may not read a column that has no visible sample; null when not asked. */
  readable: boolean | null;
  total_columns: number | null;
  total_tables: number | null;
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

/**
 * The table columns each populated materialized view reads, through views and
 * other materialized views: pg_depend records every column a view's rule
 * references (a whole-row reference as column 0, left out). The coverage
 * check counts a view's column as masked when the table columns of the same
 * name it reads are all masked (coverage.ts). Asked only when a materialized
 * view has a personal-looking column.
 */
export const MATVIEW_SOURCE_COLUMNS = `
WITH RECURSIVE refs(view, relid, attnum) AS (
  SELECT r.ev_class, d.refobjid, d.refobjsubid
  FROM pg_class v
  JOIN pg_rewrite r ON r.ev_class = v.oid
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
  WHERE v.relkind = 'm' AND v.relispopulated
  UNION
  SELECT refs.view, d.refobjid, d.refobjsubid
  FROM refs
  JOIN pg_rewrite r ON r.ev_class = refs.relid
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
)
SELECT DISTINCT vn.nspname AS schema, v.relname AS view, n.nspname AS source_schema, c.relname AS source_table, a.attname AS source_column
FROM refs
JOIN pg_class v ON v.oid = refs.view
JOIN pg_namespace vn ON vn.oid = v.relnamespace
JOIN pg_class c ON c.oid = refs.relid AND c.relkind IN ('r', 'p')
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = refs.attnum AND a.attnum > 0`;

export interface MatviewSourceRow extends Record<string, unknown> {
  schema: string;
  view: string;
  source_schema: string;
  source_table: string;
  source_column: string;
}
