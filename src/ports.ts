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
import type { JobConfig, PgEndpoint, SourceConfig } from './config/types.js';
import type { Logger } from './observe/logger.js';
import type { RunEvent } from './run/events.js';
import type { Check, SourceFacts } from './run/facts.js';
import type { PhaseDetail, RunRecord, SkipReason, TargetDescription } from './run/record.js';

export interface PhaseContext {
  runId: string;
  /** The run record as it stood when the phase started (snapshot time, trigger). */
  run: RunRecord;
  log: Logger;
  signal: AbortSignal;
  /** Reports progress within a phase (e.g. bytes copied) to the live display. */
  progress(detail: Record<string, unknown>): void;
  /**
   * What preflight learned about the source, in this process. Undefined in a
   * resumed run (it starts after preflight) and in preflight itself.
   */
  facts?: SourceFacts | undefined;
}

/** A login on the copy: the application owner. */
export interface OwnerLogin {
  user: string;
  database: string;
  password: Secret;
}

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
  /** Whether an interrupted `open` already let the users in, so a resumed `open` has nothing left to do. */
  windowOpened?(ctx: PhaseContext): Promise<boolean>;
  /** Roles the target's operator or db-refresher logs in with; a password reset keeps them. */
  reservedRoles?(): string[];
  /** How verification reaches a database on the copy; `owner` is what defaultOwner() gave, when the target needs it to log in. */
  endpoint(database: string, owner?: OwnerLogin): PgEndpoint;
  /**
   * Completes the source's credentials from where the target keeps them (CNPG:
   * the Secrets the Cluster's externalClusters entry names). Checks say which
   * secret or key is missing.
   */
  resolveSource?(source: SourceConfig, ctx: PhaseContext): Promise<{ source: SourceConfig; checks: Check[] }>;
  /** The application owner on the copy (CNPG: from its Secret), read when verification starts. */
  defaultOwner?(ctx: PhaseContext): Promise<OwnerLogin | undefined>;
  /**
   * Finishes what a killed run of the job left behind (child processes still
   * holding the source, credentials on disk, a half-removed old copy). Called
   * by whoever holds the job's lock, before a run and at service start.
   */
  recover?(log: Logger): Promise<PhaseDetail>;
  /** Why `run`, left unfinished, must not be resumed (its copy was replaced by a newer run), or undefined. */
  resumeRefusal?(run: RunRecord): Promise<string | undefined>;
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
  /** Runs a statement for its effect; resolves with the number of rows it touched. */
  execute(text: string, params?: unknown[]): Promise<number>;
  /** The server process serving this session, so another session can cancel its query. */
  backendPid(): number | undefined;
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
  /**
   * Every record of the job still queued or running, newest first, however many newer records
   * there are: start-up recovery settles them all, not only those among the newest it reads.
   */
  unfinished?(job: string): Promise<RunRecord[]>;
  /** The job's newest successful refresh (not a dry run), however many newer records there are; retention keeps it. */
  lastSuccess?(job: string): Promise<RunRecord | undefined>;
  /** The suspend or resume last set through the API for a job, if any (it overrides the config's `suspend`). */
  getSuspension(job: string): Promise<JobSuspension | undefined>;
  saveSuspension(job: string, suspension: JobSuspension): Promise<void>;
}

/** A suspend or resume set through the API: who, when and why. */
export interface JobSuspension {
  suspended: boolean;
  by: string;
  at: string;
  reason?: string | undefined;
}

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

export interface Clock {
  now(): Date;
}

/** Releases a slot taken from a RunGate. */
export type Release = () => void;

/**
 * Limits how many runs go at once (the service: globally and per source).
 * A run that finds no free slot is recorded as queued and waits.
 */
export interface RunGate {
  /** A slot for the job now, or undefined when none is free. */
  tryAcquire(job: JobConfig): Release | undefined;
  /** Waits for a slot; rejects when the signal aborts. */
  acquire(job: JobConfig, signal: AbortSignal): Promise<Release>;
}

/**
 * A target refreshed blue/green (strategy blueGreen): the new copy is built beside the current one,
 * which keeps serving until the swap. The blue/green phases call these; teardown does nothing.
 */
export interface BlueGreenTarget extends Target {
  /** Finishes an interrupted swap, clears the slot the new copy takes, and clones into it. */
  cloneBeside(ctx: PhaseContext): Promise<PhaseDetail>;
  /** Switches clients to the new copy; idempotent, so a resumed run continues an interrupted swap. */
  swap(ctx: PhaseContext): Promise<PhaseDetail>;
  /** Removes the previous copy when keepPrevious is 0; otherwise says until when it is kept. */
  cleanupPrevious(ctx: PhaseContext): Promise<PhaseDetail>;
  /** After a failure before the swap: removes the half-made copy; returns what to add to the error ("the current copy was not changed"). */
  afterFailure(run: RunRecord, ctx: PhaseContext): Promise<string | undefined>;
  /** Switches clients back to the previous copy while it is kept; the copy it replaces is kept in its place. */
  rollback(ctx: PhaseContext): Promise<PhaseDetail>;
  /**
   * Outside any run (the service, at start and then every minute, holding the job's lock): finishes a
   * swap a dead process left, removes a half-made copy, and the previous copy once keepPrevious has passed.
   */
  reap(ctx: PhaseContext): Promise<PhaseDetail>;
}
