import type { MaskConfig, PgEndpoint } from '../config/types.js';
import type { SqlConnector } from '../ports.js';
import type { Check } from '../run/facts.js';
import {
  type CoverageColumnRow,
  coverageColumnsQuery,
  MATVIEW_SOURCE_COLUMNS,
  MAX_UNANALYSED_TABLES,
  type MatviewSourceRow,
  unanalysedSampleQuery,
} from './coverage-queries.js';
import {
  type ColumnEvidence,
  classifyColumn,
  evidenceFromValues,
  finding,
  isAllowed,
  NAME_PREFILTER,
  VALUE_PATTERNS,
} from './coverage-rules.js';
import type { CoverageFinding, CoverageRecord, MaskingRecord } from './record.js';

/**
 * The coverage check, part of verification: every column of every user table
 * (and populated materialized view) in the copy is classified by name and by a bounded sample of its values; a
 * personal-looking column that is neither masked nor allowed is a finding.
 * Masked columns whose re-sampled rows still held their source value are
 * findings too. At most two queries per database.
 */

export interface CoverageInput {
  mask: MaskConfig;
  databases: readonly string[];
  endpoint(database: string): PgEndpoint;
  sql: SqlConnector;
  /** What the mask phase recorded (re-samples); absent when masking did not run. */
  masking?: MaskingRecord | undefined;
  now?(): number;
}

function isMasked(mask: MaskConfig, database: string, table: string, column: string): boolean {
  return mask.databases[database]?.[table]?.[column] !== undefined;
}

function evidenceOf(database: string, row: CoverageColumnRow): ColumnEvidence {
  return {
    database,
    schema: row.schema ?? '',
    table: row.table ?? '',
    column: row.column ?? '',
    category: row.category ?? undefined,
    sampled: row.sampled ?? 0,
    emailValues: row.email_values ?? 0,
    phoneValues: row.phone_values ?? 0,
    emailInText: row.email_in_text ?? 0,
    cardCandidates: row.card_candidates ?? [],
    ibanCandidates: row.iban_candidates ?? [],
  };
}

/**
 * A materialized view's column counts as masked when the view reads table
 * columns of that name (through views too) and all of them are masked: the
 * mask phase refreshed the view from them. A column renamed in the view is
 * not matched, so it stays a finding (the advice says to allow it).
 */
function readsOnlyMasked(mask: MaskConfig, database: string, column: ColumnEvidence, sources: readonly MatviewSourceRow[]): boolean {
  const same = sources.filter((s) => s.schema === column.schema && s.view === column.table && s.source_column === column.column);
  return same.length > 0 && same.every((s) => isMasked(mask, database, `${s.source_schema}.${s.source_table}`, s.source_column));
}

export async function checkCoverage(input: CoverageInput): Promise<CoverageRecord> {
  const now = input.now ?? Date.now;
  const started = now();
  const { mask } = input;
  const findings: CoverageFinding[] = [];
  let queries = 0;
  let columns = 0;
  let tables = 0;
  const unreadable: Array<{ database: string; schema: string; table: string; column: string; user: string }> = [];
  /** `database.schema.view` of the materialized views among the checked relations. */
  const matviews = new Set<string>();
  for (const database of input.databases) {
    const evidence = await input.sql.withSession(input.endpoint(database), database, async (session) => {
      const params = [
        NAME_PREFILTER,
        Math.max(1, Math.ceil(mask.sampleRows / 2)),
        VALUE_PATTERNS.email,
        VALUE_PATTERNS.emailInText,
        VALUE_PATTERNS.phone,
        VALUE_PATTERNS.cardCandidate,
        VALUE_PATTERNS.ibanCandidate,
        mask.sampleRows,
      ];
      let rows: CoverageColumnRow[];
      try {
        queries += 1;
        rows = await session.query<CoverageColumnRow>(coverageColumnsQuery('pg_statistic'), params);
      } catch (error) {
        // pg_statistic is for superusers; any other role reads the same samples through the pg_stats view.
        if ((error as { code?: unknown }).code !== '42501') throw error;
        queries += 1;
        rows = await session.query<CoverageColumnRow>(coverageColumnsQuery('pg_stats'), params);
      }
      const totals = rows.find((r) => r.total_columns !== null);
      columns += totals?.total_columns ?? 0;
      tables += totals?.total_tables ?? 0;
      const found: ColumnEvidence[] = [];
      const unanalysed: Array<{ schema: string; table: string; column: string; category?: string | undefined }> = [];
      for (const row of rows) {
        if (row.column === null || row.schema === null || row.table === null) continue;
        if (row.matview) matviews.add(`${database}.${row.schema}.${row.table}`);
        if (row.readable === false) {
          unreadable.push({ database, schema: row.schema, table: row.table, column: row.column, user: input.endpoint(database).user });
          continue;
        }
        if (row.sampleable && !row.has_stats && row.has_rows !== false) {
          unanalysed.push({ schema: row.schema, table: row.table, column: row.column, category: row.category ?? undefined });
          if (!row.name_hint) continue;
        }
        found.push(evidenceOf(database, row));
      }
      // Tables never analysed have no sample in the statistics: read a few rows from (a bounded number of) them.
      const unanalysedTables = [...new Set(unanalysed.map((c) => `${c.schema}.${c.table}`))].slice(0, MAX_UNANALYSED_TABLES);
      const toRead = unanalysed.filter((c) => unanalysedTables.includes(`${c.schema}.${c.table}`));
      if (toRead.length > 0) {
        queries += 1;
        const values = await session.query<{ schema: string; table: string; column: string; value: string }>(
          unanalysedSampleQuery(toRead, mask.sampleRows),
        );
        for (const c of toRead) {
          const sample = values.filter((v) => v.schema === c.schema && v.table === c.table && v.column === c.column).map((v) => v.value);
          const index = found.findIndex((e) => e.schema === c.schema && e.table === c.table && e.column === c.column);
          const read = evidenceFromValues({ database, ...c }, sample);
          if (index >= 0) found[index] = read;
          else found.push(read);
        }
      }
      // A refreshed materialized view holds fakes under the masked columns' names: find which table columns each one reads.
      let sources: MatviewSourceRow[] = [];
      if (found.some((e) => matviews.has(`${database}.${e.schema}.${e.table}`))) {
        queries += 1;
        sources = await session.query<MatviewSourceRow>(MATVIEW_SOURCE_COLUMNS);
      }
      return { found, sources };
    });
    for (const column of evidence.found) {
      const qualified = `${column.schema}.${column.table}.${column.column}`;
      if (isMasked(mask, database, `${column.schema}.${column.table}`, column.column)) continue;
      if (readsOnlyMasked(mask, database, column, evidence.sources)) continue;
      if (isAllowed(mask.allow, database, qualified)) continue;
      const classified = classifyColumn(column);
      if (classified.rules.length === 0) continue;
      const matview = matviews.has(`${database}.${column.schema}.${column.table}`);
      findings.push(matview ? { ...finding(column, classified), materializedView: true } : finding(column, classified));
    }
  }

  // A column the checking role may not read cannot be shown clean: a finding unless masked or allowed.
  for (const c of unreadable) {
    const table = `${c.schema}.${c.table}`;
    if (isMasked(mask, c.database, table, c.column) || isAllowed(mask.allow, c.database, `${table}.${c.column}`)) continue;
    findings.push({
      database: c.database,
      table,
      column: c.column,
      rules: ['unreadable'],
      sampled: 0,
      matched: 0,
      evidence: `the role "${c.user}" may not read this column, so its values were not checked`,
    });
  }

  // Masked columns whose re-sampled rows kept their source value were not really masked.
  for (const db of input.masking?.databases ?? []) {
    for (const table of db.tables) {
      for (const column of table.columns) {
        if (!column.resampled || column.resampled.unchanged === 0) continue;
        findings.push({
          database: db.database,
          table: table.table,
          column: column.column,
          rules: ['resample:unchanged'],
          sampled: column.resampled.rows,
          matched: column.resampled.unchanged,
          evidence: `masked with ${column.strategy}, but ${column.resampled.unchanged} of ${column.resampled.rows} re-sampled rows still hold their source value`,
        });
      }
    }
  }

  findings.sort((a, b) => `${a.database}.${a.table}.${a.column}`.localeCompare(`${b.database}.${b.table}.${b.column}`));
  return {
    mode: mask.coverage,
    ok: findings.length === 0,
    columns,
    tables,
    queries,
    durationMs: now() - started,
    findings,
  };
}

/** The coverage result as verification checks: one per finding (an error under `fail`, a warning under `warn`). */
export function coverageChecks(coverage: CoverageRecord): Check[] {
  if (coverage.mode === 'off') return [];
  if (coverage.findings.length === 0) {
    return [
      {
        name: 'masking coverage',
        ok: true,
        message: `${coverage.columns} columns in ${coverage.tables} tables checked: nothing personal-looking left unmasked`,
      },
    ];
  }
  return coverage.findings.map((f) => ({
    name: `masking coverage: ${f.database}: ${f.table}.${f.column}`,
    ok: false,
    message: f.rules.includes('resample:unchanged')
      ? `${f.evidence}; check the strategy (a constant or sql expression that returns the value unchanged)`
      : f.rules.includes('unreadable')
        ? `${f.evidence}: grant that role SELECT on ${f.table} (or pg_read_all_data), mask the column, or list ${f.table}.${f.column} under mask.allow`
        : f.materializedView
          ? `looks personal and is neither masked nor allowed (${f.rules.join(', ')}): ${f.evidence}; ${f.table} is a materialized view, which cannot be masked itself: mask the column of the table it reads from under mask.databases.${f.database} (db-refresher refreshes materialized views that read masked tables after masking), or list ${f.table}.${f.column} under mask.allow (also when the column only holds a masked column under another name)`
          : `looks personal and is neither masked nor allowed (${f.rules.join(', ')}): ${f.evidence}; mask it under mask.databases.${f.database}, or list ${f.table}.${f.column} under mask.allow`,
    failureClass: 'verification-failed',
    severity: coverage.mode === 'warn' ? 'warning' : 'error',
  }));
}
