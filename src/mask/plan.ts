import { isDeepStrictEqual } from 'node:util';
import type { MaskStrategy } from '../config/schema-mask.js';
import type { CatalogColumnRow, ForeignKeyRow } from './catalog.js';
import { quoteIdent, quoteQualified, splitTable } from './sql-text.js';
import { type ColumnType, describeStrategy, isInjective, maskExpression, typeProblem } from './strategies.js';

/**
 * From a database's masking config and its catalog to the statements that
 * mask it, or to the list of problems that stop masking before any update.
 * Pure: the catalog rows come in, SQL text and messages go out.
 */

/** schema.table → column → strategy, as configured for one database. */
export type DatabaseMaskConfig = Readonly<Record<string, Readonly<Record<string, MaskStrategy>>>>;

export interface MaskedColumn {
  column: string;
  strategy: MaskStrategy;
  /** describeStrategy(), for plans and records. */
  describe: string;
}

export interface TableMaskPlan {
  /** schema.table */
  table: string;
  columns: MaskedColumn[];
  /** One set-based UPDATE over the whole table (and its partitions): `${head} WHERE ${filter}`. */
  statement: string;
  /** `UPDATE … SET …`, without the WHERE clause, for statements restricted to a page range (chunks.ts). */
  head: string;
  /** `col IS NOT NULL OR …`: the rows the statement rewrites. */
  filter: string;
  /**
   * How many of the key's bind parameters the statement takes: a statement
   * with only phone or redact columns uses $1–$2 or none, and PostgreSQL
   * refuses a bind with more values than the statement has parameters.
   */
  paramCount: number;
  /** `ONLY ` for a plain table (its inheritance children have entries of their own), empty for a partitioned one. */
  only: 'ONLY ' | '';
  /** reltuples, to start the biggest tables first. */
  estimatedRows: number;
  /** pg_class.relkind: 'r' plain, 'p' partitioned. */
  kind: 'r' | 'p';
  /** The table's size in pages when the catalog was read (0 for a partitioned parent), to decide whether to split it. */
  pages: number;
  /** Columns of the primary key, used to re-sample masked rows; empty when the table has none. */
  keyColumns: string[];
}

export type PlanResult = { ok: true; tables: TableMaskPlan[] } | { ok: false; problems: string[] };

/** The tables a database's config names, for the catalog queries. */
export function maskedTables(config: DatabaseMaskConfig): string[] {
  return Object.keys(config).sort();
}

function columnType(row: CatalogColumnRow): ColumnType {
  return {
    sqlType: row.sql_type,
    typname: row.typname,
    category: row.category,
    notNull: row.not_null,
    maxLength: row.max_length ?? undefined,
  };
}

/**
 * Checks the config against the copy's catalog and builds the statements.
 * Every problem names database, table and column, and all are reported at once.
 */
export function planDatabase(input: {
  database: string;
  config: DatabaseMaskConfig;
  columns: readonly CatalogColumnRow[];
  foreignKeys: readonly ForeignKeyRow[];
}): PlanResult {
  const { database, config } = input;
  const problems: string[] = [];
  const byTable = new Map<string, CatalogColumnRow[]>();
  for (const row of input.columns) {
    const key = `${row.schema}.${row.table}`;
    byTable.set(key, [...(byTable.get(key) ?? []), row]);
  }
  const strategyOf = (table: string, column: string): MaskStrategy | undefined => config[table]?.[column];

  const tables: TableMaskPlan[] = [];
  for (const table of maskedTables(config)) {
    const rows = byTable.get(table);
    const where = `${database}: ${table}`;
    if (!rows || rows.length === 0) {
      problems.push(`${where}: no such table in the copy; check the name (schema.table) under mask.databases.${database}`);
      continue;
    }
    const kind = rows[0]?.kind;
    if (kind !== 'r' && kind !== 'p') {
      problems.push(
        kind === 'm'
          ? `${where}: is a materialized view, not a table; mask the columns of the tables it reads from instead: after masking, db-refresher refreshes every materialized view that reads a masked table`
          : `${where}: is not a table (relkind ${kind}); mask the table it reads from instead`,
      );
      continue;
    }
    // A partitioned table's UPDATE rewrites its partitions' rows: with an entry of its own, a
    // partition would be masked a second time (fakes of fakes, so joins no longer match) or by two
    // statements at once.
    const maskedAbove = (rows[0]?.partition_of ?? []).filter((ancestor) => config[ancestor] !== undefined);
    if (maskedAbove.length > 0) {
      problems.push(
        `${where}: is a partition of ${maskedAbove.join(', ')}, which is masked too, so its rows would be masked twice; list the columns under ${maskedAbove[0]} only (its UPDATE covers every partition), or list each partition instead of the partitioned table`,
      );
      continue;
    }
    const columns: MaskedColumn[] = [];
    const sets: string[] = [];
    for (const [column, strategy] of Object.entries(config[table] ?? {})) {
      const row = rows.find((r) => r.column === column);
      const at = `${where}.${column}`;
      if (!row) {
        const similar = rows.filter((r) => r.column.toLowerCase() === column.toLowerCase()).map((r) => r.column);
        problems.push(
          `${at}: no such column${similar.length ? ` (did you mean ${similar.join(', ')}? names are case-sensitive)` : ''}; the table has ${rows.map((r) => r.column).join(', ')}`,
        );
        continue;
      }
      if (row.generated) {
        problems.push(`${at}: is a generated column; mask the columns it is computed from`);
        continue;
      }
      const type = columnType(row);
      const typeIssue = typeProblem(strategy, type);
      if (typeIssue) {
        problems.push(`${at}: ${typeIssue}`);
        continue;
      }
      if (row.unique_indexes.length > 0 && isInjective(strategy) === false) {
        problems.push(
          `${at}: ${describeStrategy(strategy)} gives equal values for different inputs, but the column is in unique index ${row.unique_indexes.join(', ')}; use email, name, phone or hash`,
        );
        continue;
      }
      columns.push({ column, strategy, describe: describeStrategy(strategy) });
      sets.push(`${quoteIdent(column)} = ${maskExpression(strategy, column, type)}`);
    }
    if (columns.length === 0) continue;
    const { schema, table: name } = splitTable(table);
    // ONLY for plain tables: their inheritance children are masked by their own entries.
    // A partitioned table has no rows of its own, so its partitions are updated through it.
    const only = kind === 'r' ? 'ONLY ' : '';
    // Rows whose masked columns are all NULL stay as they are: nothing to mask, nothing to rewrite.
    const anyValue = columns.map((c) => `${quoteIdent(c.column)} IS NOT NULL`).join(' OR ');
    const head = `UPDATE ${only}${quoteQualified(schema, name)} SET ${sets.join(', ')}`;
    const statement = `${head} WHERE ${anyValue}`;
    tables.push({
      table,
      columns,
      statement,
      head,
      filter: anyValue,
      paramCount: highestParam(statement),
      only,
      estimatedRows: Number(rows[0]?.estimated_rows ?? 0),
      kind,
      pages: Number(rows[0]?.pages ?? 0),
      keyColumns: rows.filter((r) => r.in_primary_key).map((r) => r.column),
    });
  }

  // A foreign key whose two ends are masked differently would silently stop matching:
  // masking runs with foreign-key checks off, so nothing else would notice.
  for (const fk of input.foreignKeys) {
    const from = strategyOf(fk.from_table, fk.from_column);
    const to = strategyOf(fk.to_table, fk.to_column);
    if (from === undefined && to === undefined) continue;
    if (from !== undefined && to !== undefined && isDeepStrictEqual(from, to) && isInjective(from) !== false) continue;
    const masked = from !== undefined ? `${fk.from_table}.${fk.from_column}` : `${fk.to_table}.${fk.to_column}`;
    const other = from !== undefined ? `${fk.to_table}.${fk.to_column}` : `${fk.from_table}.${fk.from_column}`;
    const strategy = (from ?? to) as MaskStrategy;
    problems.push(
      from !== undefined && to !== undefined
        ? `${database}: foreign key ${fk.constraint} joins ${fk.from_table}.${fk.from_column} (${describeStrategy(from)}) to ${fk.to_table}.${fk.to_column} (${describeStrategy(to)}); mask both ends with the same email, name, phone or hash strategy so they still match`
        : `${database}: foreign key ${fk.constraint} joins ${masked} (${describeStrategy(strategy)}) to ${other}, which is not masked; mask ${other} with the same strategy so the key still matches`,
    );
  }

  if (problems.length > 0) return { ok: false, problems };
  // Biggest first: with a pool of connections the longest table should not start last.
  tables.sort((a, b) => b.estimatedRows - a.estimatedRows || a.table.localeCompare(b.table));
  return { ok: true, tables };
}

/** What `plan` shows: every masked column with its strategy, per database, without asking any server. */
export function describeMaskConfig(databases: Readonly<Record<string, DatabaseMaskConfig>>): string[] {
  const lines: string[] = [];
  for (const [database, tables] of Object.entries(databases)) {
    for (const table of maskedTables(tables)) {
      for (const [column, strategy] of Object.entries(tables[table] ?? {})) {
        lines.push(`${database}: ${table}.${column}: ${describeStrategy(strategy)}`);
      }
    }
  }
  return lines;
}

/**
 * The highest $n a statement refers to. Strategies use the key's parameters
 * in pairs from the start ($1–$2 for the HMAC, $3–$4 for the name seeds), so
 * the parameters up to it are all referred to. A sql strategy is the user's
 * expression: a `$` there is not one of ours, since a user's SQL cannot take
 * bind parameters (and one inside a string literal only overstates the count).
 */
export function highestParam(statement: string): number {
  let highest = 0;
  for (const match of statement.matchAll(/\$(\d+)::/g)) highest = Math.max(highest, Number(match[1]));
  return highest;
}
