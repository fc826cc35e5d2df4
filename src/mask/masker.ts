import type { MaskConfig, PgEndpoint } from '../config/types.js';
import { PhaseFailure } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import type { SqlConnector } from '../ports.js';
import { type CatalogColumnRow, FOREIGN_KEY_COLUMNS, type ForeignKeyRow, MASKED_TABLE_COLUMNS } from './catalog.js';
import { type PageRange, planChunks } from './chunks.js';
import { maskingFailureHint } from './failure-hint.js';
import { keyParamList, keyParams } from './key.js';
import { MatviewRefreshError, refreshMatviews } from './matviews.js';
import { type DatabaseMaskConfig, maskedTables, planDatabase, type TableMaskPlan } from './plan.js';
import type { MaskedDatabaseRecord, MaskedTableRecord, MaskingRecord, RefreshedView } from './record.js';
import { analyzeAndResample, type SampleRow, sampleStatement } from './resample.js';
import { applySessionSettings, errorText, MASKING_SESSION_SETTINGS } from './session.js';
import { SplitTable } from './split-table.js';

/**
 * Masks the copy: checks every configured column against the copy's catalog
 * (and has the server EXPLAIN every statement) before the first update, then
 * runs one set-based UPDATE per table, up to `parallel` at a time, each on its
 * own connection, followed by ANALYZE so the statistics describe the masked
 * data and no longer hold source values. A large plain table is split into
 * page ranges masked in parallel on one shared snapshot (split-table.ts).
 * Then the materialized views that read masked tables are refreshed from the
 * masked data (matviews.ts). Session settings: session.ts.
 */

export interface MaskInput {
  mask: MaskConfig;
  /** How to reach a database on the copy as a role that may update every masked table. */
  endpoint(database: string): PgEndpoint;
  sql: SqlConnector;
  log: Logger;
  signal: AbortSignal;
  progress?(detail: Record<string, unknown>): void;
  now?(): number;
  /** The smallest page range a table is split into (chunks.ts MIN_CHUNK_PAGES); tests set a small one to split small tables. */
  minChunkPages?: number;
}

interface Work {
  database: string;
  plan: TableMaskPlan;
  /** One open range: the table is one UPDATE; more: masked as page ranges in parallel. */
  ranges: PageRange[];
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
        const [server] = await session.query<{ version: number }>("SELECT current_setting('server_version_num')::int AS version");
        if (!plan.ok) {
          problems.push(...plan.problems);
          return;
        }
        for (const table of plan.tables) {
          try {
            // The server parses, type-checks and plans the real statement (constants, sql expressions, casts) without running it.
            await session.query(`EXPLAIN ${table.statement}`, params.slice(0, table.paramCount));
            const ranges = planChunks({
              kind: table.kind,
              serverVersion: Number(server?.version ?? 0),
              pages: table.pages,
              parallel: input.mask.parallel,
              minChunkPages: input.minChunkPages,
            });
            work.push({ database, plan: table, ranges });
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
      // An abort between picking this table and registering its backend would not cancel it.
      if (input.signal.aborted) throw new Error('masking stopped');
      rows = await session.execute(plan.statement, params.slice(0, plan.paramCount));
    } finally {
      if (pid !== undefined) running.delete(pid);
    }
    const columns = await analyzeAndResample(session, plan, before);
    return { table: plan.table, rows, durationMs: now() - started, columns };
  });
}

/** One unit of the worker pool: a whole table, or one page range of a split table. */
interface QueueItem {
  database: string;
  plan: TableMaskPlan;
  /** Resolves with the table's record once the table is done; a range other than the last one resolves with undefined. */
  run(): Promise<MaskedTableRecord | undefined>;
}

/** The tables in their order, a split table as one item per range at its place. */
function queueOf(
  input: MaskInput,
  work: Work[],
  params: unknown[],
  running: (database: string) => Set<number>,
): { queue: QueueItem[]; splits: SplitTable[] } {
  const queue: QueueItem[] = [];
  const splits: SplitTable[] = [];
  for (const item of work) {
    const { database, plan, ranges } = item;
    if (ranges.length < 2) {
      queue.push({ database, plan, run: () => maskTable(input, item, params, running(database)) });
      continue;
    }
    const split = new SplitTable({
      sql: input.sql,
      endpoint: input.endpoint(database),
      database,
      plan,
      ranges,
      params: params.slice(0, plan.paramCount),
      sampleRows: input.mask.sampleRows,
      running: running(database),
      signal: input.signal,
      log: input.log,
      now: input.now ?? Date.now,
    });
    splits.push(split);
    ranges.forEach((_, i) => {
      queue.push({ database, plan, run: () => split.runChunk(i) });
    });
  }
  return { queue, splits };
}

/** Refreshes, database by database, the materialized views that read the tables just masked. */
async function refreshAll(
  input: MaskInput,
  work: Work[],
  running: (database: string) => Set<number>,
): Promise<Map<string, RefreshedView[]>> {
  const refreshed = new Map<string, RefreshedView[]>();
  for (const database of [...new Set(work.map((w) => w.database))]) {
    const tables = work.filter((w) => w.database === database).map((w) => w.plan.table);
    try {
      const views = await input.sql.withSession(input.endpoint(database), database, async (session) => {
        await applySessionSettings(session);
        return refreshMatviews({ session, tables, signal: input.signal, running: running(database), now: input.now ?? Date.now });
      });
      refreshed.set(database, views);
      for (const view of views) input.log.info({ database, view: view.view, durationMs: view.durationMs }, 'materialized view refreshed');
    } catch (error) {
      if (input.signal.aborted) throw input.signal.reason ?? error;
      const view = error instanceof MatviewRefreshError ? error.view : undefined;
      throw new PhaseFailure('masking-failed', `masking ${database}: ${errorText(error)}`, {
        hint: view
          ? `${view} reads masked tables and its query failed on the masked data (for example a cast, or a unique index on the view, that the fakes break); change the view in the source or the strategies of the columns it reads. The copy stays closed until the next run makes a fresh one.`
          : 'The materialized views that read masked tables could not be listed; the copy stays closed until the next run makes a fresh one.',
        cause: error,
      });
    }
  }
  return refreshed;
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
  const running = new Map<string, Set<number>>();
  const runningIn = (database: string): Set<number> => {
    const pids = running.get(database) ?? new Set<number>();
    running.set(database, pids);
    return pids;
  };
  const { queue, splits } = queueOf(input, work, params, runningIn);
  const parallel = Math.max(1, Math.min(input.mask.parallel, queue.length));
  const results = new Map<string, MaskedTableRecord[]>();
  let next = 0;
  let done = 0;
  let failure: unknown;
  let refreshed = new Map<string, RefreshedView[]>();

  const onAbort = () => {
    for (const [database, pids] of running) void cancelRunning(input, database, pids);
  };
  input.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const worker = async () => {
      while (failure === undefined && !input.signal.aborted) {
        const item = queue[next];
        next += 1;
        if (!item) return;
        try {
          const record = await item.run();
          if (!record) continue;
          results.set(item.database, [...(results.get(item.database) ?? []), record]);
          done += 1;
          input.log.info(
            { database: item.database, table: item.plan.table, rows: record.rows, durationMs: record.durationMs, chunks: record.chunks },
            'table masked',
          );
          input.progress?.({ tablesDone: done, tables: work.length, table: `${item.database}: ${item.plan.table}` });
        } catch (error) {
          failure ??= new PhaseFailure('masking-failed', `masking ${item.database}: ${item.plan.table} failed: ${errorText(error)}`, {
            hint: maskingFailureHint(error, item.plan),
            cause: error,
          });
        }
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
    // Only once every table is masked: a view refreshed earlier would read source values.
    if (failure === undefined && !input.signal.aborted) refreshed = await refreshAll(input, work, runningIn);
  } finally {
    input.signal.removeEventListener('abort', onAbort);
    // No chunk runs any more: end the snapshot sessions of split tables whose ranges did not all run.
    await Promise.all(splits.map((split) => split.abandon()));
  }
  if (input.signal.aborted) throw input.signal.reason ?? new Error('masking stopped');
  if (failure !== undefined) throw failure;

  const databases: MaskedDatabaseRecord[] = Object.keys(input.mask.databases).map((database) => ({
    database,
    tables: (results.get(database) ?? []).sort((a, b) => a.table.localeCompare(b.table)),
    refreshedViews: refreshed.get(database) ?? [],
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
