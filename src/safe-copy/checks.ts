import type { NeutraliseSettings } from '../config/types.js';
import type { SqlSession } from '../ports.js';
import type { Check } from '../run/facts.js';

/**
 * Verification of a neutralised copy: what `neutralise` switched off is still
 * off once the copy is open. Read-only; runs in the `verify` phase.
 */

export const NEUTRALISED_QUERIES = {
  synchronousStandbyNames: `SELECT current_setting('synchronous_standby_names') AS value`,
  enabledSubscriptions: `SELECT count(*) FILTER (WHERE subenabled)::int AS enabled FROM pg_subscription`,
  /** cron.database_name is superuser-only; NULL when pg_cron is not loaded. */
  cronDatabase: `SELECT current_setting('cron.database_name', true) AS database`,
  isSuperuser: `SELECT current_setting('is_superuser') = 'on' AS superuser`,
  activeCronJobs: `SELECT count(*) FILTER (WHERE active)::int AS active FROM cron.job`,
  cronTable: `SELECT to_regclass('cron.job') IS NOT NULL AS present`,
} as const;

/** Pure: the checks from what was read. */
export function neutralisedChecks(
  settings: NeutraliseSettings,
  facts: { standbyNames?: string; enabledSubscriptions?: number; activeCronJobs?: number | null },
): Check[] {
  const checks: Check[] = [];
  if (settings.synchronousReplication && facts.standbyNames !== undefined) {
    checks.push(
      facts.standbyNames === ''
        ? { name: 'no synchronous standby', ok: true, message: 'synchronous_standby_names is empty: commits never wait for a standby' }
        : {
            name: 'no synchronous standby',
            ok: false,
            failureClass: 'verification-failed',
            message: `synchronous_standby_names is "${facts.standbyNames}": writes with synchronous_commit on would wait forever`,
          },
    );
  }
  if (settings.subscriptions && facts.enabledSubscriptions !== undefined) {
    checks.push(
      facts.enabledSubscriptions === 0
        ? { name: 'no enabled subscription', ok: true, message: 'no subscription is enabled' }
        : {
            name: 'no enabled subscription',
            ok: false,
            failureClass: 'verification-failed',
            message: `${facts.enabledSubscriptions} subscription(s) enabled: they would connect to the production publisher`,
          },
    );
  }
  if (settings.cron && facts.activeCronJobs !== undefined) {
    checks.push(
      facts.activeCronJobs === null
        ? { name: 'no active cron job', ok: true, message: 'pg_cron is not loaded on the copy' }
        : facts.activeCronJobs === 0
          ? { name: 'no active cron job', ok: true, message: 'every pg_cron job is inactive' }
          : {
              name: 'no active cron job',
              ok: false,
              failureClass: 'verification-failed',
              message: `${facts.activeCronJobs} pg_cron job(s) active: they would fire on the copy`,
            },
    );
  }
  return checks;
}

/**
 * Reads the facts for neutralisedChecks. `cronSession` opens a session on
 * pg_cron's database. Only a superuser sees every pg_cron job (cron.job has
 * row security) and may read cron.database_name, so for other roles the cron
 * fact is left out (undefined).
 */
export async function readNeutralisedFacts(
  session: SqlSession,
  settings: NeutraliseSettings,
  cronSession: <T>(database: string, fn: (s: SqlSession) => Promise<T>) => Promise<T>,
): Promise<{ standbyNames?: string; enabledSubscriptions?: number; activeCronJobs?: number | null }> {
  const facts: { standbyNames?: string; enabledSubscriptions?: number; activeCronJobs?: number | null } = {};
  if (settings.synchronousReplication) {
    facts.standbyNames = (await session.query<{ value: string }>(NEUTRALISED_QUERIES.synchronousStandbyNames))[0]?.value ?? '';
  }
  if (settings.subscriptions) {
    facts.enabledSubscriptions = (await session.query<{ enabled: number }>(NEUTRALISED_QUERIES.enabledSubscriptions))[0]?.enabled ?? 0;
  }
  const superuser = (await session.query<{ superuser: boolean }>(NEUTRALISED_QUERIES.isSuperuser))[0]?.superuser === true;
  if (settings.cron && superuser) {
    const database = (await session.query<{ database: string | null }>(NEUTRALISED_QUERIES.cronDatabase))[0]?.database;
    facts.activeCronJobs = database
      ? await cronSession(database, async (s) => {
          const present = (await s.query<{ present: boolean }>(NEUTRALISED_QUERIES.cronTable))[0]?.present;
          if (!present) return null;
          return (await s.query<{ active: number }>(NEUTRALISED_QUERIES.activeCronJobs))[0]?.active ?? 0;
        })
      : null;
  }
  return facts;
}
