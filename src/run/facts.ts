import type { FailureClass } from '../failures.js';
import type { CoverageRecord } from '../mask/record.js';

/**
 * The facts a run collects: checks (preflight, verification), what preflight
 * learned about the source, and the figures of each database on the source and
 * on the copy. Plain data; the run record holds them.
 */

export interface Check {
  name: string;
  ok: boolean;
  message: string;
  /** Set on failed checks: what went wrong, in the classifier's terms. */
  failureClass?: FailureClass;
  /** A failing check with severity "warning" does not stop the run. */
  severity?: 'error' | 'warning';
}

/** What preflight learned about the source; targets use it for their own checks. */
export interface SourceFacts {
  host: string;
  port: number;
  systemIdentifier: string;
  serverVersionNum: number;
  majorVersion: number;
  maxWalSenders: number;
  activeWalSenders: number;
  /** Sum of pg_database_size over all databases, when the role may read it. */
  totalSizeBytes?: number | undefined;
  /** User tablespaces (not pg_default/pg_global) with their locations. */
  tablespaces: Array<{ name: string; location: string }>;
  /** The source's data_directory, when the role may read it (superuser or pg_read_all_settings). */
  dataDirectory?: string | undefined;
  /** Whether the SQL role may run CHECKPOINT (superuser or pg_checkpoint). */
  canCheckpoint: boolean;
  /** Owner of each database (templates excluded): a physical copy keeps them. */
  databaseOwners?: Record<string, string> | undefined;
  /** The size of one WAL segment file (wal_segment_size); a copy holds at least a few. */
  walSegmentBytes?: number | undefined;
}

export interface DatabaseFigures {
  database: string;
  sizeBytes: number;
  owner: string;
  /** User tables (ordinary and partitioned) per schema. */
  tablesBySchema: Record<string, number>;
  /** Required tables found, when asked for. */
  presentTables?: string[];
}

export interface DatabaseVerification {
  database: string;
  source?: DatabaseFigures;
  copy?: DatabaseFigures;
  checks: Check[];
}

export interface Verification {
  ok: boolean;
  databases: DatabaseVerification[];
  checks: Check[];
  /** The masking coverage check, when the job masks (mask.coverage not off). */
  coverage?: CoverageRecord;
}
