import type { PgEndpoint } from '../../config/types.js';
import type { Clock, PhaseContext, SqlConnector, SqlSession } from '../../ports.js';

/**
 * The progress of a CloudNativePG clone, read where the copy happens: the
 * source's pg_stat_progress_basebackup (PostgreSQL >= 13). The clone Job's
 * pg_basebackup runs in the cluster, so the only other sign of it is the
 * Cluster's phase, which says "Setting up primary" from start to end.
 *
 * The view lists every base backup running on the source, so ours is picked
 * out by what we know of it (pickBackup): the role and application_name it
 * connects with (the externalClusters entry's connection parameters; CNPG
 * sets no application_name, BEHAVIOUR.md §2.3 step 4, so pg_basebackup's
 * fallback applies) and a backend that started after the Cluster was created.
 * When two backups match, nothing is shown rather than someone else's figures.
 *
 * Values other than pid are NULL for a role that may not read another role's
 * statistics; then no progress is shown, with one debug log line.
 */

/** pg_basebackup's fallback_application_name (its program name). */
export const BASEBACKUP_APPLICATION = 'pg_basebackup';

/**
 * How long before the Cluster's creation (API server clock) a backend may have
 * started (source clock) and still count as ours: room for the two clocks'
 * skew and the second-rounded creationTimestamp.
 */
export const CLOCK_SKEW_MS = 30_000;

/** What the report says when the backup left the view before it was seen complete. */
export const ENDED = 'base backup ended';

/** Phases of pg_stat_progress_basebackup after every data file was sent (PostgreSQL 13 to 17). */
const FINAL_PHASES = new Set(['waiting for wal archiving to finish', 'transferring wal files']);

export const ACCESS_QUERY = `SELECT current_setting('server_version_num')::int AS version,
  current_user AS me,
  pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS read_all_stats,
  EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1 AND pg_has_role(current_user, oid, 'USAGE')) AS acts_as_backup_role`;

export const PROGRESS_QUERY = `SELECT p.pid, p.phase, p.backup_total::text AS backup_total, p.backup_streamed::text AS backup_streamed,
  a.usename, a.application_name, a.backend_start
FROM pg_stat_progress_basebackup p JOIN pg_stat_activity a ON a.pid = p.pid`;

export interface AccessFacts {
  version: number;
  me: string;
  read_all_stats: boolean;
  acts_as_backup_role: boolean;
}

/** Pure: why the clone's progress cannot be read with this role on this server, or undefined when it can. */
export function progressUnreadable(facts: AccessFacts, backupRole: string): string | undefined {
  if (facts.version < 130000) {
    return `the source runs PostgreSQL ${Math.floor(facts.version / 10000)}; pg_stat_progress_basebackup exists from PostgreSQL 13`;
  }
  if (!facts.read_all_stats && !facts.acts_as_backup_role) {
    return `the SQL role "${facts.me}" may not read the statistics of "${backupRole}", the role the clone connects as; GRANT pg_read_all_stats TO "${facts.me}" on the source to see the clone's progress`;
  }
  return undefined;
}

export interface BackupRow {
  pid: number;
  /** NULL (with the figures) when the role may not read this backend's statistics. */
  phase: string | null;
  totalBytes: number | null;
  streamedBytes: number | null;
  user: string | null;
  applicationName: string | null;
  startedAtMs: number | null;
}

const num = (value: unknown): number | null => (value === null || value === undefined ? null : Number(value));

/** Pure: a row of PROGRESS_QUERY as node-postgres returns it (bigint as text, timestamptz as Date). */
export function parseBackupRow(row: Record<string, unknown>): BackupRow {
  const started = row.backend_start;
  return {
    pid: Number(row.pid),
    phase: typeof row.phase === 'string' ? row.phase : null,
    totalBytes: num(row.backup_total),
    streamedBytes: num(row.backup_streamed),
    user: typeof row.usename === 'string' ? row.usename : null,
    applicationName: typeof row.application_name === 'string' ? row.application_name : null,
    startedAtMs: started instanceof Date ? started.getTime() : typeof started === 'string' ? Date.parse(started) : null,
  };
}

export interface WantedBackup {
  user: string;
  applicationName: string;
  /** The Cluster's creation, less CLOCK_SKEW_MS. */
  notBeforeMs: number;
  /** The backup followed so far, which wins over newer ones. */
  followedPid?: number | undefined;
}

/** Pure: the clone's backup among the running ones, or why none is picked. */
export function pickBackup(rows: readonly BackupRow[], want: WantedBackup): { row?: BackupRow; why?: string } {
  const theirs = rows.filter((r) => r.user === want.user && r.applicationName === want.applicationName);
  const visible = theirs.filter((r) => r.phase !== null && r.startedAtMs !== null);
  if (theirs.length > 0 && visible.length === 0) return { why: 'hidden' };
  const candidates = visible.filter((r) => (r.startedAtMs ?? 0) >= want.notBeforeMs);
  const followed = candidates.find((r) => r.pid === want.followedPid);
  if (followed) return { row: followed };
  if (candidates.length === 1) return { row: candidates[0] as BackupRow };
  if (candidates.length > 1) {
    return {
      why: `${candidates.length} base backups by "${want.user}" (application_name "${want.applicationName}") started since the Cluster was created (pids ${candidates.map((r) => r.pid).join(', ')}); which one is the clone cannot be told`,
    };
  }
  return {};
}

/** What the progress events carry: the local clone's fields (percent, bytes) plus the ETA and the view's phase. */
export interface CloneProgress extends Record<string, unknown> {
  backupPhase: string;
  copiedBytes: number;
  totalBytes?: number;
  percent?: number;
  /** Time left at the rate seen since the first bytes came, when known. */
  etaMs?: number;
}

/** Pure: percent, bytes and ETA of a backup row; `since` is the first sample with streamed bytes. */
export function progressOfRow(row: BackupRow, since: { atMs: number; bytes: number } | undefined, nowMs: number): CloneProgress {
  const copied = row.streamedBytes ?? 0;
  const total = row.totalBytes;
  const detail: CloneProgress = { backupPhase: row.phase ?? 'unknown', copiedBytes: copied };
  if (total !== null && total > 0) {
    detail.totalBytes = total;
    detail.percent = Math.min(100, Math.floor((copied * 100) / total));
    const elapsed = since ? nowMs - since.atMs : 0;
    const done = since ? copied - since.bytes : 0;
    // A rate needs a little time and some bytes behind it.
    if (elapsed >= 1000 && done > 0 && copied < total) detail.etaMs = Math.round(((total - copied) * elapsed) / done / 1000) * 1000;
  }
  return detail;
}

/**
 * Pure state across polls: which backup is followed, when it started moving,
 * what was last reported. `observe` says what to report (only changes), and
 * whether the backup is over.
 */
export class BackupTracker {
  readonly #want: Omit<WantedBackup, 'followedPid'>;
  #pid: number | undefined;
  #since: { atMs: number; bytes: number } | undefined;
  #last: CloneProgress | undefined;
  #lastWhy: string | undefined;

  constructor(want: Omit<WantedBackup, 'followedPid'>) {
    this.#want = want;
  }

  observe(rows: readonly BackupRow[], nowMs: number): { report?: CloneProgress; done?: boolean; note?: string; hidden?: boolean } {
    const { row, why } = pickBackup(rows, { ...this.#want, followedPid: this.#pid });
    if (why === 'hidden') return { hidden: true };
    const note = why !== this.#lastWhy ? why : undefined;
    this.#lastWhy = why;
    if (!row) {
      if (this.#pid === undefined || why) return note ? { note } : {};
      // The followed backup ended: finished, or failed (CNPG's Job then retries it with a new one).
      const last = this.#last;
      this.#pid = undefined;
      this.#since = undefined;
      if (last && ((last.percent ?? 0) >= 100 || FINAL_PHASES.has(last.backupPhase))) {
        const total = last.totalBytes ?? last.copiedBytes;
        return { done: true, report: { backupPhase: 'finished', copiedBytes: total, totalBytes: total, percent: 100 } };
      }
      // Between two polls the last percent or so often goes by with the backup's end: whether it
      // completed cannot be told from here, so the bar goes (the Cluster's phase says what follows).
      this.#last = undefined;
      return {
        report: { backupPhase: ENDED, copiedBytes: last?.copiedBytes ?? 0, ...(last?.totalBytes ? { totalBytes: last.totalBytes } : {}) },
        note: `the base backup left pg_stat_progress_basebackup at ${last?.percent ?? 0}%; if it failed, CloudNativePG retries it`,
      };
    }
    if (row.pid !== this.#pid) {
      this.#pid = row.pid;
      this.#since = undefined;
    }
    if (!this.#since && (row.streamedBytes ?? 0) > 0) this.#since = { atMs: nowMs, bytes: row.streamedBytes ?? 0 };
    const detail = progressOfRow(row, this.#since, nowMs);
    const changed = detail.percent !== this.#last?.percent || detail.backupPhase !== this.#last?.backupPhase;
    this.#last = detail;
    return changed ? { report: detail, ...(note ? { note } : {}) } : note ? { note } : {};
  }
}

export interface CloneProgressInput {
  sql: SqlConnector;
  /** The source as db-refresher's SQL role reaches it (the preflight and verify connection). */
  endpoint: () => Promise<PgEndpoint>;
  /** The role and application_name the clone connects as. */
  backup: { user: string; applicationName: string };
  /** When the Cluster was created (ms), undefined when unknown. */
  clusterCreatedMs: () => Promise<number | undefined>;
  ctx: Pick<PhaseContext, 'log' | 'progress'>;
  clock: Clock;
  intervalMs?: number;
}

export interface ProgressWatch {
  /** Ends the polling and its session; resolves once nothing of it runs. */
  stop(): Promise<void>;
}

/**
 * Polls the source while the clone runs and reports its progress through
 * ctx.progress. Never fails the run: a problem is a debug log line, and the
 * polling ends when the backup is complete or stop() is called.
 */
export function watchCloneProgress(input: CloneProgressInput): ProgressWatch {
  const stopper = new AbortController();
  const { log } = input.ctx;
  const loop = poll(input, stopper.signal).catch((error: unknown) => {
    if (!stopper.signal.aborted) log.debug({ err: error }, "the clone's progress could not be read on the source; no progress is shown");
  });
  return {
    stop: async () => {
      stopper.abort();
      // The sleep ends at once; a query in flight ends within its statement_timeout. A connection
      // attempt to a source that stopped answering could hold the phase for its whole deadline
      // (15 s), so the phase waits 2 s at most and the attempt ends, and closes, on its own.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([loop, new Promise((resolve) => (timer = setTimeout(resolve, STOP_WAIT_MS)))]);
      clearTimeout(timer);
    },
  };
}

const STOP_WAIT_MS = 2000;

async function poll(input: CloneProgressInput, stopped: AbortSignal): Promise<void> {
  const { log } = input.ctx;
  const intervalMs = input.intervalMs ?? 1000;
  const created = await input.clusterCreatedMs();
  const tracker = new BackupTracker({
    ...input.backup,
    notBeforeMs: (created ?? input.clock.now().getTime()) - CLOCK_SKEW_MS,
  });
  const endpoint = await input.endpoint();
  while (!stopped.aborted) {
    const outcome = await input.sql
      .withSession(endpoint, endpoint.dbname, (session) => pollSession(session, input, tracker, stopped, intervalMs))
      .catch((error: Error) => error);
    if (outcome === 'over' || stopped.aborted) return;
    // A lost connection (the source restarted, a network blip): try again, the clone goes on regardless.
    log.debug({ err: outcome instanceof Error ? outcome.message : String(outcome) }, "reading the clone's progress failed; retrying");
    await sleep(Math.max(intervalMs, 2000), stopped);
  }
}

async function pollSession(
  session: SqlSession,
  input: CloneProgressInput,
  tracker: BackupTracker,
  stopped: AbortSignal,
  intervalMs: number,
): Promise<'over'> {
  const { log } = input.ctx;
  // A stalled server must not hold stop() up for long.
  await session.query("SET statement_timeout = '5s'");
  const [facts] = await session.query<AccessFacts & Record<string, unknown>>(ACCESS_QUERY, [input.backup.user]);
  const unreadable = facts ? progressUnreadable(facts, input.backup.user) : 'the source did not answer';
  if (unreadable) {
    log.debug({ reason: unreadable }, "the clone's progress is not shown");
    return 'over';
  }
  while (!stopped.aborted) {
    const rows = (await session.query(PROGRESS_QUERY)).map(parseBackupRow);
    const seen = tracker.observe(rows, input.clock.now().getTime());
    if (seen.hidden) {
      log.debug(
        { role: facts?.me, backupRole: input.backup.user },
        "the clone's progress is hidden from the SQL role; GRANT pg_read_all_stats on the source to see it",
      );
      return 'over';
    }
    if (seen.note) log.debug({ note: seen.note }, "the clone's progress");
    if (seen.report) input.ctx.progress(seen.report);
    if (seen.done) return 'over';
    await sleep(intervalMs, stopped);
  }
  return 'over';
}

/** Resolves after `ms`, or at once when `signal` aborts; leaves no timer behind either way. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
