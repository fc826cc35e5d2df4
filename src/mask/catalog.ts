/**
 * Catalog queries the masking phase asks the copy before any update: the
 * masked tables' columns with their types, the unique indexes and the
 * foreign keys they take part in. Two queries per database, whatever the
 * number of tables. Pure SQL text plus the row shapes.
 */

/** Every column of the tables named in $1 (text[] of "schema.table"). */
export const MASKED_TABLE_COLUMNS = `
SELECT n.nspname AS schema, c.relname AS "table", c.relkind AS kind, greatest(c.reltuples, 0)::bigint AS estimated_rows,
       pg_relation_size(c.oid) / current_setting('block_size')::int AS pages,
       a.attname AS "column", format_type(a.atttypid, a.atttypmod) AS sql_type,
       coalesce(bt.typname, t.typname) AS typname, coalesce(bt.typcategory, t.typcategory) AS category,
       a.attnotnull AS not_null, a.attgenerated <> '' AS generated,
       CASE WHEN coalesce(bt.typname, t.typname) IN ('varchar', 'bpchar') AND coalesce(nullif(t.typtypmod, -1), a.atttypmod) > 4
            THEN coalesce(nullif(t.typtypmod, -1), a.atttypmod) - 4 END AS max_length,
       coalesce((SELECT array_agg(i.indexrelid::regclass::text ORDER BY i.indexrelid)
                 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique AND a.attnum = ANY(i.indkey)), '{}') AS unique_indexes,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary AND a.attnum = ANY(i.indkey)) AS in_primary_key,
       CASE WHEN c.relispartition THEN
         coalesce((SELECT array_agg(pn.nspname || '.' || pc.relname ORDER BY pc.oid)
                   FROM pg_partition_ancestors(c.oid) AS pa(relid)
                   JOIN pg_class pc ON pc.oid = pa.relid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
                   WHERE pa.relid <> c.oid), '{}')
       ELSE '{}' END AS partition_of
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
WHERE (n.nspname || '.' || c.relname) = ANY($1::text[])
ORDER BY n.nspname, c.relname, a.attnum`;

export interface CatalogColumnRow extends Record<string, unknown> {
  schema: string;
  table: string;
  kind: string;
  estimated_rows: string | number;
  /** The main fork's size in pages (bigint, so a string from pg). */
  pages: string | number;
  column: string;
  sql_type: string;
  typname: string;
  category: string;
  not_null: boolean;
  generated: boolean;
  max_length: number | null;
  unique_indexes: string[];
  in_primary_key: boolean;
  /** The partitioned tables above a partition, as schema.table (PostgreSQL 12+); empty for any other table. */
  partition_of: string[];
}

/** Column pairs of foreign keys that start or end at one of the tables in $1. */
export const FOREIGN_KEY_COLUMNS = `
SELECT con.conname AS "constraint",
       cn.nspname || '.' || cc.relname AS from_table, fa.attname AS from_column,
       rn.nspname || '.' || rc.relname AS to_table, ta.attname AS to_column
FROM pg_constraint con
JOIN pg_class cc ON cc.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
JOIN pg_class rc ON rc.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
CROSS JOIN LATERAL unnest(con.conkey, con.confkey) AS k(from_attnum, to_attnum)
JOIN pg_attribute fa ON fa.attrelid = con.conrelid AND fa.attnum = k.from_attnum
JOIN pg_attribute ta ON ta.attrelid = con.confrelid AND ta.attnum = k.to_attnum
WHERE con.contype = 'f'
  AND ((cn.nspname || '.' || cc.relname) = ANY($1::text[]) OR (rn.nspname || '.' || rc.relname) = ANY($1::text[]))`;

export interface ForeignKeyRow extends Record<string, unknown> {
  constraint: string;
  from_table: string;
  from_column: string;
  to_table: string;
  to_column: string;
}
