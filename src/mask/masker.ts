import type { MaskConfig, PgEndpoint } from '../config/types.js';
import { PhaseFailure } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import type { SqlConnector, SqlSession } from '../ports.js';
import { type CatalogColumnRow, FOREIGN_KEY_COLUMNS, type ForeignKeyRow, MASKED_TABLE_COLUMNS } from './catalog.js';
import { keyParamList, keyParams } from './key.js';
import { type DatabaseMaskConfig, maskedTables, planDatabase, type TableMaskPlan } from './plan.js';
import type { MaskedColumnRecord, MaskedDatabaseRecord, MaskedTableRecord, MaskingRecord } from './record.js';
import { quoteIdent, quoteQualified, splitTable } from './sql-text.js';

/**
 * Masks the copy: checks every configured column against the copy's catalog
 * (and has the server EXPLAIN every statement) before the first update, then
 * runs one set-based UPDATE per table, up to `parallel` tables at a time, each
 * on its own connection, followed by ANALYZE so the statistics describe the
 * masked data and no longer hold source values.
 *
 * Every masking session sets session_replication_role = replica: user
 * triggers and foreign-key checks do not fire for its own updates, so nothing
 * runs per row, and nothing has to be switched back on afterwards (a crash
 * leaves no table with triggers disabled).
 */

/** Session settings of every masking connection; what each one is for is said in README (Masking). */
export const MASKING_SESSION_SETTINGS: ReadonlyArray<{ sql: string; why: string; required: boolean }> = [
  {
    sql: 'SET session_replication_role = replica',
    why: 'triggers and foreign-key checks off for this session only',
    required: true,
  },
  { sql: 'SET statement_timeout = 0', why: 'a large table may take longer than the default statement timeout', required: true },
  { sql: 'SET synchronous_commit = off', why: 'the copy is rebuilt by the next run anyway', required: true },
  { sql: "SET DateStyle = 'ISO, YMD'", why: 'dateShift hashes the text of a date; the same in every session', required: true },
  { sql: "SET TimeZone = 'UTC'", why: 'dateShift hashes the text of a timestamp; the same in every session', required: true },
  { sql: 'SET jit = off', why: 'compiling the long masking expressions costs more than it saves', required: true },
  // Keep bind parameters (the key blocks) out of the server log, where the server supports it.
  { sql: 'SET log_parameter_max_length = 0', why: 'bind parameters (the key blocks) stay out of the server log', required: false },
  { sql: 'SET log_parameter_max_length_on_error = 0', why: 'bind parameters stay out of error log lines', required: false },
];

export interface MaskInput {
  mask: MaskConfig;
  /** How to reach a database on the copy as a role that may update every masked table. */
  endpoint(database: string): PgEndpoint;
  sql: SqlConnector;
  log: Logger;
  signal: AbortSignal;
  progress?(detail: Record<string, unknown>): void;
  now?(): number;
}

interface Work {
  database: string;
  plan: TableMaskPlan;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function applySessionSettings(session: SqlSession): Promise<void> {
  for (const setting of MASKING_SESSION_SETTINGS) {
    try {
      await session.execute(setting.sql);
    } catch (error) {
      if (!setting.required) continue;
      if (setting.sql.includes('session_replication_role')) {
        throw new Error(
          `cannot switch off triggers and foreign-key checks for the masking session (${errorText(error)}); masking needs a superuser on the copy, or on PostgreSQL 15 and later: GRANT SET ON PARAMETER session_replication_role TO the role db-refresher uses`,
        );
      }
      throw error;
    }
  }
}

/** Catalog checks and EXPLAIN of every statement: all problems of all databases, before any update. */
async function planAll(input: MaskInput, params: unknown[]): Promise<Work[]> {
  const problems: string[] = [];
  const work: Work[] = [];
  for (const [database, config] of Object.entries(input.mask.databases) as Array<[string, DatabaseMaskConfig]>) {
    try {
      await input.sql.withSession(input.endpoint(database), database, async (session) => {
        await applySessionSettings(session);
        const tables = maskedTables(config);
        const columns = await session.query<CatalogColumnRow>(MASKED_TABLE_COLUMNS, [tables]);
        const foreignKeys = await session.query<ForeignKeyRow>(FOREIGN_KEY_COLUMNS, [tables]);
        const plan = planDatabase({ database, config, columns, foreignKeys });
        if (!plan.ok) {
          problems.push(...plan.problems);
          return;
        }
        for (const table of plan.tables) {
          try {
            // The server parses, type-checks and plans the real statement (constants, sql expressions, casts) without running it.
            await session.query(`EXPLAIN ${table.statement}`, params.slice(0, table.paramCount));
            work.push({ database, plan: table });
          } catch (error) {
            problems.push(`${database}: ${table.table}: the masking statement is not valid for this table: ${errorText(error)}`);
          }
        }
      });
    } catch (error) {
      problems.push(`${database}: cannot prepare masking: ${errorText(error)}`);
    }
  }
  if (problems.length > 0) {
    throw new PhaseFailure(
      'masking-failed',
      `masking was not started: ${problems.length} problem${problems.length === 1 ? '' : 's'} in mask config: ${problems.join('; ')}`,
      {
        details: problems,
        hint: 'Fix the mask section of the job (table, column and strategy names, column types); nothing in the copy was changed.',
      },
    );
  }
  return work;
}

/** Up to `sampleRows` rows with the masked columns as text, taken before the update; `k` is the primary key when there is one. */
function sampleStatement(plan: TableMaskPlan, limit: number): string {
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

type SampleRow = Record<string, string | null> & { k: string };

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

async function maskTable(input: MaskInput, item: Work, params: unknown[], running: Set<number>): Promise<MaskedTableRecord> {
  const { plan, database } = item;
  const now = input.now ?? Date.now;
  const started = now();
  return input.sql.withSession(input.endpoint(database), database, async (session) => {
    await applySessionSettings(session);
    const before = await session.query<SampleRow>(sampleStatement(plan, input.mask.sampleRows));
    const pid = session.backendPid();
    if (pid !== undefined) running.add(pid);
    let rows: number;
    try {
      rows = await session.execute(plan.statement, params.slice(0, plan.paramCount));
    } finally {
      if (pid !== undefined) running.delete(pid);
    }
    const { schema, table } = splitTable(plan.table);
    // Fresh statistics: the copy's pg_statistic still held the source's most common values.
    await session.execute(`ANALYZE ${quoteQualified(schema, table)}`);
    const columns: MaskedColumnRecord[] = plan.columns.map((c) => ({ column: c.column, strategy: c.describe }));
    if (before.length > 0) {
      const counts = await resample(session, plan, before);
      counts.forEach((resampled, i) => {
        (columns[i] as MaskedColumnRecord).resampled = resampled;
      });
    }
    return { table: plan.table, rows, durationMs: now() - started, columns };
  });
}

/** Cancels the queries still running on the copy: a closed connection alone would let an UPDATE run to its end. */
async function cancelRunning(input: MaskInput, database: string, pids: Set<number>): Promise<void> {
  if (pids.size === 0) return;
  await input.sql
    .withSession(input.endpoint(database), database, (session) =>
      session.query('SELECT pg_cancel_backend(pid) FROM unnest($1::int[]) AS pid', [[...pids]]),
    )
    .catch((error: unknown) => input.log.warn({ err: error }, 'could not cancel the masking queries'));
}

export async function maskCopy(input: MaskInput): Promise<MaskingRecord> {
  const params = keyParamList(keyParams(input.mask.key.reveal()));
  const work = await planAll(input, params);
  const parallel = Math.max(1, Math.min(input.mask.parallel, work.length));
  const results = new Map<string, MaskedTableRecord[]>();
  const running = new Map<string, Set<number>>();
  let next = 0;
  let done = 0;
  let failure: unknown;

  const onAbort = () => {
    for (const [database, pids] of running) void cancelRunning(input, database, pids);
  };
  input.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const worker = async () => {
      while (failure === undefined && !input.signal.aborted) {
        const item = work[next];
        next += 1;
        if (!item) return;
        const pids = running.get(item.database) ?? new Set<number>();
        running.set(item.database, pids);
        try {
          const record = await maskTable(input, item, params, pids);
          results.set(item.database, [...(results.get(item.database) ?? []), record]);
          done += 1;
          input.log.info(
            { database: item.database, table: item.plan.table, rows: record.rows, durationMs: record.durationMs },
            'table masked',
          );
          input.progress?.({ tablesDone: done, tables: work.length, table: `${item.database}: ${item.plan.table}` });
        } catch (error) {
          failure ??= new PhaseFailure('masking-failed', `masking ${item.database}: ${item.plan.table} failed: ${errorText(error)}`, {
            hint: 'The copy stays closed to everyone but db-refresher; fix the cause and run the job again (the next run makes a fresh copy).',
            cause: error,
          });
        }
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
  } finally {
    input.signal.removeEventListener('abort', onAbort);
  }
  if (input.signal.aborted) throw input.signal.reason ?? new Error('masking stopped');
  if (failure !== undefined) throw failure;

  const databases: MaskedDatabaseRecord[] = Object.keys(input.mask.databases).map((database) => ({
    database,
    tables: (results.get(database) ?? []).sort((a, b) => a.table.localeCompare(b.table)),
  }));
  const tables = databases.flatMap((d) => d.tables);
  return {
    databases,
    tables: tables.length,
    columns: tables.reduce((n, t) => n + t.columns.length, 0),
    rows: tables.reduce((n, t) => n + t.rows, 0),
    parallel,
    sessionSettings: MASKING_SESSION_SETTINGS.map((s) => `${s.sql.replace(/^SET /, '')}: ${s.why}`),
  };
}
