import type { JobConfig, PgEndpoint, SourceConfig } from '../config/types.js';
import { classifyError, type FailureClass } from '../failures.js';
import type { SqlConnector } from '../ports.js';
import type { Check, SourceFacts } from '../run/facts.js';
import { DATA_DIRECTORY, SOURCE_SETTINGS, TOTAL_SIZE } from './queries.js';

/**
 * Source-side preflight: everything pg_basebackup will need from the source,
 * asked the same way it will ask, before anything is torn down.
 */

/**
 * Walsender slots a clone takes on the source: one for the backup and one for
 * streaming WAL; CNPG's Job also keeps its IDENTIFY_SYSTEM probe connection
 * open while pg_basebackup runs (BEHAVIOUR.md §6.2), so a cnpg clone takes three.
 */
export function walSendersPerClone(job: JobConfig): { count: number; why: string } {
  return job.target.kind === 'cnpg'
    ? { count: 3, why: "one for the backup, one for WAL streaming, one for CloudNativePG's connection probe" }
    : { count: 2, why: 'one for the backup, one for WAL streaming' };
}

export function replicationEndpoint(source: SourceConfig): PgEndpoint {
  return source;
}

export function sqlEndpoint(source: SourceConfig, database = source.dbname): PgEndpoint {
  return { ...source, user: source.sql.user, password: source.sql.password, dbname: database };
}

function failed(name: string, message: string, failureClass: FailureClass): Check {
  return { name, ok: false, message, failureClass };
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

interface SettingsRow extends Record<string, unknown> {
  server_version_num: number;
  max_wal_senders: number;
  active_wal_senders: number;
  tablespaces: Array<{ name: string; location: string }>;
  is_superuser: boolean;
  can_read_settings: boolean;
  has_pg_checkpoint: boolean;
  database_owners: Record<string, string> | null;
  wal_segment_bytes: string;
}

export async function inspectSource(job: JobConfig, sql: SqlConnector): Promise<{ checks: Check[]; facts?: SourceFacts }> {
  const { source } = job;
  const where = `${source.host}:${source.port}`;
  const checks: Check[] = [];

  let systemIdentifier: string;
  try {
    const identity = await sql.identifySystem(replicationEndpoint(source));
    systemIdentifier = identity.systemIdentifier;
    checks.push({ name: 'source reachable', ok: true, message: `${where} answers` });
    checks.push({
      name: 'replication connection',
      ok: true,
      message: `${source.user} opened a replication connection (IDENTIFY_SYSTEM: system ${identity.systemIdentifier}, timeline ${identity.timeline})`,
    });
  } catch (error) {
    const failureClass = classifyError(error);
    const text = errorText(error);
    if (failureClass === 'source-unreachable') {
      checks.push(failed('source reachable', `cannot connect to ${where}: ${text}`, failureClass));
    } else {
      checks.push({ name: 'source reachable', ok: true, message: `${where} answers` });
      const name = failureClass === 'replication-not-permitted' ? 'role has REPLICATION' : 'replication connection';
      checks.push(failed(name, `${source.user}@${where} was refused a replication connection: ${text}`, failureClass));
    }
    return { checks };
  }
  checks.push({ name: 'role has REPLICATION', ok: true, message: `${source.user} may start a walsender` });

  let settings: SettingsRow;
  let totalSizeBytes: number | undefined;
  let dataDirectory: string | undefined;
  try {
    const result = await sql.withSession(sqlEndpoint(source), source.dbname, async (session) => {
      const [row] = await session.query<SettingsRow>(SOURCE_SETTINGS);
      let total: number | undefined;
      try {
        const [sizeRow] = await session.query<{ total: string }>(TOTAL_SIZE);
        total = sizeRow ? Number(sizeRow.total) : undefined;
      } catch {
        // Without CONNECT on every database (or pg_read_all_stats) the total is unknown; the room check says so.
      }
      let dir: string | undefined;
      if (row && (row.is_superuser || row.can_read_settings)) {
        const [dirRow] = await session.query<{ data_directory: string }>(DATA_DIRECTORY);
        dir = dirRow?.data_directory;
      }
      return { row, total, dir };
    });
    if (!result.row) throw new Error('the settings query returned no row');
    settings = result.row;
    totalSizeBytes = result.total;
    dataDirectory = result.dir;
  } catch (error) {
    checks.push(
      failed(
        'SQL access to the source',
        `${source.sql.user} cannot run SQL on ${where}/${source.dbname}: ${errorText(error)}. Verification needs it; set source.sql to a role that may connect.`,
        classifyError(error),
      ),
    );
    return { checks };
  }

  // Our own replication connection is closed by now, so every walsender counted belongs to someone else.
  const free = settings.max_wal_senders - settings.active_wal_senders;
  const needed = walSendersPerClone(job);
  checks.push(
    free >= needed.count
      ? {
          name: 'free walsender slots',
          ok: true,
          message: `${free} free (max_wal_senders=${settings.max_wal_senders}, ${settings.active_wal_senders} in use)`,
        }
      : failed(
          'free walsender slots',
          `source has max_wal_senders=${settings.max_wal_senders} and ${settings.active_wal_senders} in use: a clone needs ${needed.count} free (${needed.why}); raise max_wal_senders or retry later`,
          'wal-senders-exhausted',
        ),
  );

  const tablespaces = settings.tablespaces ?? [];
  checks.push(
    tablespaces.length === 0
      ? { name: 'tablespaces compatible', ok: true, message: 'the source uses only the default tablespaces' }
      : failed(
          'tablespaces compatible',
          `the source has tablespaces ${tablespaces.map((t) => `${t.name} (${t.location})`).join(', ')}; source and target must have the same tablespaces configuration, and db-refresher copies only clusters without user tablespaces`,
          'tablespace-mismatch',
        ),
  );

  const majorVersion = Math.floor(settings.server_version_num / 10_000);
  return {
    checks,
    facts: {
      host: source.host,
      port: source.port,
      systemIdentifier,
      serverVersionNum: settings.server_version_num,
      majorVersion,
      maxWalSenders: settings.max_wal_senders,
      activeWalSenders: settings.active_wal_senders,
      totalSizeBytes,
      tablespaces,
      dataDirectory,
      canCheckpoint: settings.is_superuser || settings.has_pg_checkpoint,
      databaseOwners: settings.database_owners ?? {},
      walSegmentBytes: Number(settings.wal_segment_bytes),
    },
  };
}
