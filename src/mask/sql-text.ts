/**
 * Quoting for SQL text that db-refresher generates. Identifiers and literals
 * come from the config (table and column names, constants), never from data,
 * and are quoted the way PostgreSQL's quote_ident/quote_literal do with
 * standard_conforming_strings on (the default since 9.1).
 */

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** `"schema"."table"` from `schema.table`. */
export function quoteQualified(schema: string, table: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}

/** Splits `schema.table` at its only dot (the config schema guarantees one). */
export function splitTable(qualified: string): { schema: string; table: string } {
  const dot = qualified.indexOf('.');
  return { schema: qualified.slice(0, dot), table: qualified.slice(dot + 1) };
}
