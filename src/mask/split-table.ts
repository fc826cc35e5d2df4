import type { PgEndpoint } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { SqlConnector } from '../ports.js';
import { describeRange, type PageRange, rangeStatement } from './chunks.js';
import type { TableMaskPlan } from './plan.js';
import type { MaskedTableRecord } from './record.js';
import { analyzeAndResample, type SampleRow, sampleStatement } from './resample.js';
import { applySessionSettings, errorText } from './session.js';
import { quoteLiteral } from './sql-text.js';

/**
 * One large plain table masked as page ranges ("chunks"), each an UPDATE on
 * its own connection, all reading one shared snapshot.
 *
 * Why the shared snapshot: an UPDATE writes each new row version wherever
 * there is room, possibly on a page of another chunk's range. A chunk that
 * could see another chunk's committed new versions would mask those rows a
 * second time. So a coordinator session opens a REPEATABLE READ transaction,
 * takes the "before" sample and exports its snapshot; every chunk imports it
 * (SET TRANSACTION SNAPSHOT) and so sees exactly the rows as they were before
 * any chunk ran: each row once, in the range of the page it was on. The
 * coordinator keeps its transaction open (idle) until every chunk is done,
 * since a snapshot can only be imported while its exporter is open; then it
 * runs ANALYZE and the re-sample once for the table.
 *
 * Chunks commit on their own, with no barrier: a chunk waiting on a unique
 * index entry of another chunk's uncommitted row must be able to go on once
 * that chunk commits (a barrier would make that a wait PostgreSQL's deadlock
 * detector cannot see). Ranges are disjoint, so no chunk updates a row
 * another one updated and no serialization failure is expected.
 */

export interface SplitTableInput {
  sql: SqlConnector;
  endpoint: PgEndpoint;
  database: string;
  plan: TableMaskPlan;
  ranges: readonly PageRange[];
  /** The key's bind parameters, already cut to the statement's paramCount. */
  params: unknown[];
  sampleRows: number;
  /** Backends running an UPDATE, for pg_cancel_backend on abort. */
  running: Set<number>;
  signal: AbortSignal;
  log: Logger;
  now(): number;
}

const SERIALIZATION_FAILURE = '40001';

export class SplitTable {
  private snapshot: Promise<string> | undefined;
  private coordinator: Promise<MaskedTableRecord | undefined> | undefined;
  private release: ((complete: boolean) => void) | undefined;
  private rows = 0;
  private finished = 0;
  private failed = false;
  private startedAt = 0;

  constructor(private readonly input: SplitTableInput) {}

  get chunks(): number {
    return this.input.ranges.length;
  }

  /**
   * Masks range `index`. The first chunk to start opens the coordinator; the
   * last one to finish waits for ANALYZE and the re-sample and resolves with
   * the table's record (the others with undefined).
   */
  async runChunk(index: number): Promise<MaskedTableRecord | undefined> {
    const range = this.input.ranges[index] as PageRange;
    this.snapshot ??= this.openCoordinator();
    try {
      const rows = await this.maskRange(await this.snapshot, range);
      this.rows += rows;
      this.input.log.info(
        {
          database: this.input.database,
          table: this.input.plan.table,
          chunk: `${index + 1}/${this.chunks}`,
          range: describeRange(range),
          rows,
        },
        'table range masked',
      );
    } catch (error) {
      this.failed = true;
      throw error;
    } finally {
      this.finished += 1;
    }
    if (this.finished < this.chunks || this.failed) return undefined;
    this.release?.(true);
    const record = await this.coordinator;
    if (!record) throw new Error('the coordinator session ended before the table was analysed');
    return record;
  }

  /** Ends the coordinator of a table whose chunks will not all run (masking failed or was aborted); call when no chunk is running. */
  async abandon(): Promise<void> {
    if (!this.coordinator) return;
    this.release?.(false);
    await this.coordinator.catch(() => undefined);
  }

  private openCoordinator(): Promise<string> {
    const { sql, endpoint, database, plan } = this.input;
    this.startedAt = this.input.now();
    const done = new Promise<boolean>((resolve) => {
      this.release = resolve;
    });
    let exported: (id: string) => void = () => undefined;
    const snapshot = new Promise<string>((resolve) => {
      exported = resolve;
    });
    this.coordinator = sql.withSession(endpoint, database, async (session) => {
      await applySessionSettings(session);
      // It idles in its transaction while the ranges run; a server-wide timeout must not end it (and the snapshot) early.
      await session.execute('SET idle_in_transaction_session_timeout = 0');
      await session.execute('BEGIN ISOLATION LEVEL REPEATABLE READ');
      let before: SampleRow[];
      let complete: boolean;
      try {
        before = await session.query<SampleRow>(sampleStatement(plan, this.input.sampleRows));
        const [row] = await session.query<{ id: string }>('SELECT pg_export_snapshot() AS id');
        exported(String(row?.id));
        complete = await done;
      } finally {
        // It only read; ending the transaction releases the snapshot. An error here shows in ANALYZE next.
        await session.execute('ROLLBACK').catch(() => undefined);
      }
      if (!complete) return undefined;
      const columns = await analyzeAndResample(session, plan, before);
      return { table: plan.table, rows: this.rows, durationMs: this.input.now() - this.startedAt, chunks: this.chunks, columns };
    });
    // Every chunk waiting for the snapshot fails with the coordinator's error; the last chunk or abandon() awaits the rest.
    void this.coordinator.catch(() => undefined);
    return Promise.race([
      snapshot,
      this.coordinator.then(() => {
        throw new Error('the coordinator session ended before exporting its snapshot');
      }),
    ]);
  }

  private maskRange(snapshot: string, range: PageRange): Promise<number> {
    const { sql, endpoint, database, plan, running, signal } = this.input;
    return sql.withSession(endpoint, database, async (session) => {
      await applySessionSettings(session);
      await session.execute('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await session.execute(`SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshot)}`);
      const pid = session.backendPid();
      if (pid !== undefined) running.add(pid);
      let rows: number;
      try {
        // An abort between picking this chunk and registering its backend would not cancel it.
        if (signal.aborted) throw new Error('masking stopped');
        rows = await session.execute(rangeStatement(plan, range), this.input.params);
      } catch (error) {
        if ((error as { code?: string }).code === SERIALIZATION_FAILURE) {
          throw new Error(
            `${describeRange(range)}: another session changed rows of this range while it was masked (${errorText(error)}); nothing but db-refresher may write to the copy during masking`,
          );
        }
        throw new Error(`${describeRange(range)}: ${errorText(error)}`, { cause: error });
      } finally {
        if (pid !== undefined) running.delete(pid);
      }
      await session.execute('COMMIT');
      return rows;
    });
  }
}
