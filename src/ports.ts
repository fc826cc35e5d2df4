/**
 * Glossary
 * - job: a configured refresh: one source, one target, how to verify it.
 * - run: one execution of a job. Its run record is the history entry.
 * - phase: one step of a run (preflight, snapshot, teardown, clone, start, verify).
 * - source: the live server that is copied. It is only ever read.
 * - target: the copy that each run replaces (a local data directory, a CNPG Cluster).
 * - figures: size, owner and table counts of one database, taken on the source
 *   just before teardown and on the copy after the clone.
 * - check: one named yes/no finding with a message, in preflight or verification.
 *
 * The interfaces here are the seams between the pure core and the effects:
 * the runner talks to a Target, a RunStore and a SqlConnector, never to
 * child_process, the filesystem or pg directly.
 */
import type { Secret } from './config/secret.js';
import type { PgEndpoint, SourceConfig } from './config/types.js';
import type { FailureClass } from './failures.js';
import type { Logger } from './observe/logger.js';
import type { RunRecord } from './runner/run-record.js';
import type { RunEvent } from './runner/runner.js';

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

export interface TargetDescription {
  kind: string;
  /** One line for people, e.g. "local data directory /srv/qa on 127.0.0.1:5433". */
  summary: string;
  /** Structured details for plan output and the run record. No secrets. */
  details: Record<string, unknown>;
  /** What the target-specific phases will do, in words, for `plan`. */
  steps: { teardown: string; clone: string; start: string };
}

export interface PhaseContext {
  runId: string;
  /** The run record as it stood when the phase started (snapshot time, trigger). */
  run: RunRecord;
  log: Logger;
  signal: AbortSignal;
  /** Reports progress within a phase (e.g. bytes copied) to the live display. */
  progress(detail: Record<string, unknown>): void;
}

/** Anything a phase wants recorded about what it did. */
export type PhaseDetail = Record<string, unknown>;

/**
 * A place a copy lives. Each method is one phase's effect and must be
 * idempotent: running it again after a crash does the right thing.
 */
export interface Target {
  describe(): TargetDescription;
  /**
   * Target-side checks: safety rails, version, room, port. Never changes anything.
   * `source` is undefined when the source could not be inspected; the safety rails still run.
   */
  preflight(source: SourceFacts | undefined, ctx: PhaseContext): Promise<Check[]>;
  /** Stops and removes the current copy. Must re-check the safety rails itself. */
  teardown(ctx: PhaseContext): Promise<PhaseDetail>;
  /** Makes a new physical copy of the source. */
  clone(ctx: PhaseContext): Promise<PhaseDetail>;
  /**
   * Starts the copy and returns once it accepts connections. When the job has
   * work for the private window (neutralise, roles, prepare, masking), the copy
   * starts so that only db-refresher can connect; `open` lets its users in.
   */
  start(ctx: PhaseContext): Promise<PhaseDetail>;
  /** The private window's door: how db-refresher reaches the copy as its superuser before it is open. */
  privateAccess?(ctx: PhaseContext): Promise<PrivateAccess>;
  /** Ends the private window: the copy now accepts its users' connections. Idempotent. */
  open?(ctx: PhaseContext): Promise<PhaseDetail>;
  /** Roles the target's operator or db-refresher logs in with; a password reset keeps them. */
  reservedRoles?(): string[];
  /** How verification reaches a database on the copy. */
  endpoint(database: string): PgEndpoint;
  /**
   * Completes the source's credentials from where the target keeps them (CNPG:
   * the Secrets the Cluster's externalClusters entry names). Checks say which
   * secret or key is missing.
   */
  resolveSource?(source: SourceConfig, ctx: PhaseContext): Promise<{ source: SourceConfig; checks: Check[] }>;
  /** The application owner to log in as during verification, when the job names none. */
  defaultOwner?(): { user: string; database: string; password: Secret } | undefined;
  /** Records the outcome where the target's users look (CNPG: annotations and Events). Best effort. */
  recordOutcome?(run: RunRecord, ctx: PhaseContext): Promise<void>;
}

export interface PrivateAccess {
  /** The superuser's endpoint for a database on the copy, usable only during the private window. */
  endpoint(database: string): PgEndpoint;
  /** A database that always exists on the copy, for cluster-wide statements. */
  maintenanceDatabase: string;
}

export interface SystemIdentity {
  systemIdentifier: string;
  timeline: number;
  walPosition: string;
}

export interface SqlSession {
  query<Row extends Record<string, unknown>>(text: string, params?: unknown[]): Promise<Row[]>;
  /**
   * Runs a script with the simple query protocol (several statements allowed,
   * one implicit transaction) and returns each statement's command tag and row count.
   */
  script(text: string): Promise<StatementOutcome[]>;
}

export interface StatementOutcome {
  command: string;
  rowCount: number | null;
}

export interface SqlConnector {
  /** Opens a session on `database`, runs fn, and always closes it. */
  withSession<T>(endpoint: PgEndpoint, database: string, fn: (session: SqlSession) => Promise<T>): Promise<T>;
  /** Opens a physical replication connection and runs IDENTIFY_SYSTEM, as pg_basebackup will. */
  identifySystem(endpoint: PgEndpoint): Promise<SystemIdentity>;
}

export interface RunStore {
  /** Writes the whole record atomically; creates or replaces. */
  save(run: RunRecord): Promise<void>;
  get(id: string): Promise<RunRecord | undefined>;
  /** Newest first. */
  list(job: string, options?: { limit?: number; before?: string }): Promise<RunRecord[]>;
}

/** Why a scheduled run did not happen. */
export type SkipReason = 'overlap' | 'suspended' | 'missed';

/**
 * Tells people and systems what happened. Implementations queue and deliver in
 * the background: a call never throws and never waits for the network, so a
 * slow or broken webhook can never slow down or fail a refresh.
 */
export interface Notifier {
  runEvent(event: RunEvent): void;
  skipped(input: { job: string; reason: SkipReason; scheduledFor?: string; detail?: string }): void;
  upcoming(input: { job: string; at: string }): void;
  /** Delivers what is queued, giving up after timeoutMs (used on shutdown and at the end of `run`). */
  flush(timeoutMs: number): Promise<void>;
}

export const silentNotifier: Notifier = {
  runEvent: () => undefined,
  skipped: () => undefined,
  upcoming: () => undefined,
  flush: async () => undefined,
};

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
