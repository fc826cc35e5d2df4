import type { SqlSession } from '../ports.js';
import type { RefreshedView } from './record.js';
import { errorText } from './session.js';
import { quoteQualified, splitTable } from './sql-text.js';

/**
 * Materialized views of the copy that read masked tables. A physical copy
 * holds them as the source filled them, so after masking they would still
 * show the source's personal data: each populated one that depends on a
 * masked table (directly, or through views and other materialized views) is
 * refreshed from the masked data and ANALYZEd, as masked tables are (its
 * statistics held source values too). Plain REFRESH, not CONCURRENTLY:
 * nobody else can connect during masking. A view WITH NO DATA has no rows
 * and stays unpopulated.
 */

/**
 * Populated materialized views depending on the masked tables ($1 schemas,
 * $2 tables, pairwise; partitions of masked tables count too), each with its
 * depth: the longest chain of view rules from a masked table. A view that
 * reads another view is deeper than it, so refreshing by ascending depth
 * refreshes what a view reads before the view. pg_depend records what a
 * view's rule reads, not what a function called in it reads: such a view is
 * not found here, and the coverage check looks at it like any table.
 */
export const MATVIEWS_TO_REFRESH = `
WITH RECURSIVE roots AS (
  SELECT c.oid
  FROM unnest($1::text[], $2::text[]) AS m(schema, "table")
  JOIN pg_namespace n ON n.nspname = m.schema
  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = m."table"
), masked AS (
  -- pg_partition_tree has no rows for a plain table: the table itself, then the partitions of a partitioned one.
  SELECT oid FROM roots UNION SELECT p.relid FROM roots CROSS JOIN LATERAL pg_partition_tree(roots.oid) AS p
), reads AS (
  SELECT DISTINCT r.ev_class AS view, d.refobjid AS source
  FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
  WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
), dependents(oid, depth) AS (
  SELECT oid, 0 FROM masked
  UNION
  -- The depth bound only guards against a cycle the catalog should never hold.
  SELECT reads.view, dependents.depth + 1 FROM reads JOIN dependents ON reads.source = dependents.oid WHERE dependents.depth < 100
)
SELECT n.nspname AS schema, c.relname AS view, max(d.depth)::int AS depth
FROM dependents d
JOIN pg_class c ON c.oid = d.oid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'm' AND c.relispopulated AND d.depth > 0
GROUP BY n.nspname, c.relname
ORDER BY depth, n.nspname, c.relname`;

export interface MatviewRow extends Record<string, unknown> {
  schema: string;
  view: string;
  depth: number;
}

/** The parameters of MATVIEWS_TO_REFRESH for masked tables named `schema.table`. */
export function matviewParams(tables: readonly string[]): [string[], string[]] {
  const split = tables.map(splitTable);
  return [split.map((t) => t.schema), split.map((t) => t.table)];
}

/** Refresh order: ascending depth, then by name, so a view is refreshed after every view it reads. Pure. */
export function refreshOrder(rows: readonly MatviewRow[]): MatviewRow[] {
  return [...rows].sort((a, b) => a.depth - b.depth || `${a.schema}.${a.view}`.localeCompare(`${b.schema}.${b.view}`));
}

export class MatviewRefreshError extends Error {
  constructor(
    readonly view: string,
    cause: unknown,
  ) {
    super(`refreshing materialized view ${view} failed: ${errorText(cause)}`, { cause });
  }
}

/**
 * Refreshes and ANALYZEs, one by one on `session` (a masking session), the
 * populated materialized views that read `tables`. Stops before the next
 * view once `signal` is aborted; `running` holds the session's backend while
 * a refresh runs, so an abort can cancel it.
 */
export async function refreshMatviews(opts: {
  session: SqlSession;
  tables: readonly string[];
  signal: AbortSignal;
  running: Set<number>;
  now: () => number;
}): Promise<RefreshedView[]> {
  const { session, signal, running, now } = opts;
  const views = refreshOrder(await session.query<MatviewRow>(MATVIEWS_TO_REFRESH, matviewParams(opts.tables)));
  const refreshed: RefreshedView[] = [];
  const pid = session.backendPid();
  for (const row of views) {
    if (signal.aborted) throw signal.reason ?? new Error('masking stopped');
    const name = `${row.schema}.${row.view}`;
    const quoted = quoteQualified(row.schema, row.view);
    const started = now();
    if (pid !== undefined) running.add(pid);
    try {
      await session.execute(`REFRESH MATERIALIZED VIEW ${quoted}`);
      await session.execute(`ANALYZE ${quoted}`);
    } catch (error) {
      throw new MatviewRefreshError(name, error);
    } finally {
      if (pid !== undefined) running.delete(pid);
    }
    refreshed.push({ view: name, durationMs: now() - started });
  }
  return refreshed;
}
