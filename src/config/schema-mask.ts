import { z } from 'zod';
import { secretRef } from './secret-ref.js';

/**
 * The `mask:` section of a job: which columns of the copy are replaced, how,
 * and how strictly the coverage check treats personal-looking columns that
 * are not masked. The strategies themselves (SQL, type rules) live in
 * src/mask/strategies.ts; this file only says what may be written.
 */

export const NAMED_STRATEGIES = ['email', 'name', 'phone', 'hash', 'null', 'redact'] as const;
export type NamedStrategy = (typeof NAMED_STRATEGIES)[number];

const strategySchema = z
  .union(
    [
      z.enum(NAMED_STRATEGIES),
      z.strictObject({
        keepLast: z.number().int().min(0).max(64).describe('Keep this many trailing characters; letters before them become x, digits 0'),
      }),
      z.strictObject({
        dateShift: z.number().int().min(1).max(36_500).describe('Shift by a deterministic number of days within ± this many'),
      }),
      z.strictObject({
        constant: z
          .union([z.string(), z.number().min(-Number.MAX_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER), z.boolean()])
          .describe('Every non-NULL value becomes this (cast to the column type)'),
      }),
      z.strictObject({
        sql: z
          .string()
          .min(1)
          // The masking statements bind the key's HMAC blocks to $1–$4: an expression that named them
          // could write the key into the copy. Rejected even inside a string literal, which is rare
          // and easy to write otherwise ('$' || '1').
          .refine((expression) => !/\$\d/.test(expression), {
            error: 'must not use bind parameters ($1, $2, …): db-refresher binds the masking key to them; write values as literals',
          })
          .describe('An SQL expression over the row; the column may be referenced by name. NULLs stay NULL.'),
      }),
    ],
    {
      error: () =>
        `must be one of ${NAMED_STRATEGIES.join(', ')}, or {keepLast: N}, {dateShift: DAYS}, {constant: VALUE}, {sql: "EXPRESSION"}`,
    },
  )
  .describe('How a column is masked');

/**
 * One part of `schema.table` or of an allow entry: the name as PostgreSQL stores it (case-sensitive,
 * spaces allowed), optionally in double quotes as in SQL (`public."Customer Data"`); never a dot,
 * which separates the parts.
 */
const PART = '(?:"[^".]+"|[^".]+)';

/** The names without their SQL quotes, as the catalog holds them and as the rest of db-refresher uses them. */
function unquoteParts(qualified: string): string {
  return qualified
    .split('.')
    .map((part) => (part.length > 1 && part.startsWith('"') && part.endsWith('"') ? part.slice(1, -1) : part))
    .join('.');
}

const qualifiedTable = z.string().regex(new RegExp(`^${PART}\\.${PART}$`), {
  error: (issue) => `"${String(issue.input)}" must be written schema.table, e.g. public.customers or public."Customer Data"`,
});

const tableColumns = z
  .record(z.string().min(1), strategySchema)
  .refine((columns) => Object.keys(columns).length > 0, { error: 'name at least one column' })
  .describe('Column name → strategy');

const allowedColumn = z
  .string()
  .regex(new RegExp(`^(${PART}\\.)?${PART}\\.${PART}\\.${PART}$`), {
    error: (issue) =>
      `"${String(issue.input)}" must be written schema.table.column (every database) or database.schema.table.column, e.g. public.products.name`,
  })
  .transform(unquoteParts);

export const COVERAGE_MODES = ['fail', 'warn', 'off'] as const;

export const maskSchema = z
  .strictObject({
    key: secretRef.describe('Secret key of the deterministic fakes: the same value gives the same fake under one key, in every table'),
    databases: z
      .record(z.string().min(1), z.record(qualifiedTable, tableColumns))
      .refine((dbs) => Object.keys(dbs).length > 0, { error: 'name at least one database' })
      .transform((dbs) =>
        Object.fromEntries(
          Object.entries(dbs).map(([database, tables]) => [
            database,
            Object.fromEntries(Object.entries(tables).map(([table, columns]) => [unquoteParts(table), columns])),
          ]),
        ),
      )
      .describe('Database → schema.table → column → strategy'),
    allow: z.array(allowedColumn).default([]).describe('Columns the coverage check may leave unmasked even if they look personal'),
    coverage: z
      .enum(COVERAGE_MODES)
      .default('fail')
      .describe('A personal-looking column that is neither masked nor allowed: fail the run, warn, or do not check'),
    parallel: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(4)
      .describe('How many masking UPDATEs run at once, one connection each: different tables, or page ranges of one large table'),
    sampleRows: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(20)
      .describe('Values per column the coverage check samples when the copy has no statistics for it, and per masked column re-sampled'),
  })
  .describe('Masking of personal data in the copy, before anyone else may connect');

export type MaskStrategy = z.output<typeof strategySchema>;
export type CoverageMode = (typeof COVERAGE_MODES)[number];
