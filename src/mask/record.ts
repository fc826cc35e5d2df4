/**
 * What masking and the coverage check leave in the run record. Plain data,
 * never a value from the copy: names, counts, durations and rule names only,
 * so a record can be shown to anyone who may see the job.
 */

export interface MaskedColumnRecord {
  column: string;
  /** The strategy in words, e.g. `email`, `keepLast 4`. */
  strategy: string;
  /** Re-sampled after masking: sampled rows (by primary key) and how many still held their source value. */
  resampled?: { rows: number; unchanged: number };
}

export interface MaskedTableRecord {
  table: string;
  rows: number;
  durationMs: number;
  /** Page ranges masked in parallel on one shared snapshot (docs/masking.md); absent when the table was one UPDATE. */
  chunks?: number;
  columns: MaskedColumnRecord[];
}

/** A materialized view refreshed after masking (matviews.ts). */
export interface RefreshedView {
  /** schema.view */
  view: string;
  durationMs: number;
}

export interface MaskedDatabaseRecord {
  database: string;
  tables: MaskedTableRecord[];
  /** Materialized views that read masked tables, refreshed (and ANALYZEd) after masking, in refresh order. */
  refreshedViews: RefreshedView[];
}

export interface MaskingRecord {
  databases: MaskedDatabaseRecord[];
  /** Totals, for notifications and metrics. */
  tables: number;
  columns: number;
  rows: number;
  /** UPDATE connections used at once (each split table being masked holds one more, idle, for its snapshot). */
  parallel: number;
  /** What was switched off during the updates, in words (README: Masking). */
  sessionSettings: string[];
}

export type CoverageMode = 'fail' | 'warn' | 'off';

export interface CoverageFinding {
  database: string;
  /** schema.table */
  table: string;
  column: string;
  /** Rules that matched: `name:email`, `values:email`, `values:iban`, `values:card`, `resample:unchanged`, `unreadable` (the checking role may not read it). */
  rules: string[];
  /** Values sampled from the column, and how many of them matched the value rules. */
  sampled: number;
  matched: number;
  /** The evidence in words, e.g. `18 of 20 sampled values look like e-mail addresses`. */
  evidence: string;
  /** Set when `table` is a materialized view: the advice is to mask the table it reads from, not the view. */
  materializedView?: true;
}

export interface CoverageRecord {
  mode: CoverageMode;
  ok: boolean;
  /** Columns looked at, masked and allowed ones included. */
  columns: number;
  tables: number;
  /** Catalog and sample queries run, in total (a fixed number per database). */
  queries: number;
  durationMs: number;
  findings: CoverageFinding[];
}

/** "masked 7 columns in 3 tables; coverage: ok" — the line notifications carry. */
export function maskingSummary(masking: MaskingRecord | undefined, coverage: CoverageRecord | undefined): string | undefined {
  if (!masking && !coverage) return undefined;
  const parts: string[] = [];
  if (masking) {
    parts.push(
      `masked ${masking.columns} column${masking.columns === 1 ? '' : 's'} in ${masking.tables} table${masking.tables === 1 ? '' : 's'}`,
    );
  }
  if (coverage && coverage.mode !== 'off') {
    const n = coverage.findings.length;
    parts.push(`coverage: ${n === 0 ? 'ok' : `${n} finding${n === 1 ? '' : 's'}`}`);
  }
  return parts.join('; ');
}
