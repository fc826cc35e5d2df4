import type { NeutraliseSettings } from '../config/types.js';
import type { SqlSession } from '../ports.js';
import { type CopyAccess, withCopySession } from './access.js';
import {
  AUTO_CONF_NAMES,
  NEUTRALISE_QUERIES,
  PRODUCTION_AUTO_CONF_SETTINGS,
  passwordResetStatement,
  rolesToReset,
  type SubscriptionFact,
  subscriptionStatements,
  synchronousReplicationStatements,
} from './neutralise-sql.js';

/**
 * The `neutralise` phase's work: switch off what a physical clone carries
 * over from production, on a copy only db-refresher can reach, and count it
 * for the run record. Idempotent: a second pass finds nothing left to do.
 */

export interface NeutraliseReport {
  synchronousReplication?: { standbyNamesWere: string; autoConfReset: string[] };
  subscriptions?: { disabled: number; detached: number; names: string[] };
  cron?: { database: string | null; deactivated: number; note?: string };
  passwords?: { reset: number; roles: string[]; kept: string[] };
}

export async function neutraliseCopy(
  access: CopyAccess,
  settings: NeutraliseSettings,
  keep: ReadonlySet<string>,
): Promise<NeutraliseReport> {
  const report: NeutraliseReport = {};
  await withCopySession(access, access.maintenanceDatabase, async (session) => {
    if (settings.synchronousReplication) report.synchronousReplication = await neutraliseSynchronousReplication(session);
    if (settings.passwords) report.passwords = await resetPasswords(session, keep);
    if (settings.subscriptions) {
      const subs = await session.query<SubscriptionFact & Record<string, unknown>>(NEUTRALISE_QUERIES.subscriptions);
      report.subscriptions = await detachSubscriptions(access, session, subs);
    }
    if (settings.cron) report.cron = await deactivateCron(access, session);
  });
  return report;
}

async function neutraliseSynchronousReplication(session: SqlSession): Promise<NonNullable<NeutraliseReport['synchronousReplication']>> {
  const [standby] = await session.query<{ value: string }>(NEUTRALISE_QUERIES.synchronousStandbyNames);
  const autoConf = await session.query<{ name: string; setting: string }>(NEUTRALISE_QUERIES.autoConfSettings, [AUTO_CONF_NAMES]);
  for (const statement of synchronousReplicationStatements(autoConf)) await session.query(statement);
  const production = new Set<string>(PRODUCTION_AUTO_CONF_SETTINGS);
  return { standbyNamesWere: standby?.value ?? '', autoConfReset: autoConf.map((r) => r.name).filter((name) => production.has(name)) };
}

async function resetPasswords(session: SqlSession, keep: ReadonlySet<string>): Promise<NonNullable<NeutraliseReport['passwords']>> {
  const withPassword = (await session.query<{ name: string }>(NEUTRALISE_QUERIES.loginRolesWithPassword)).map((r) => r.name);
  const roles = rolesToReset(withPassword, keep);
  for (const role of roles) await session.query(passwordResetStatement(role));
  return { reset: roles.length, roles, kept: withPassword.filter((name) => keep.has(name)) };
}

async function detachSubscriptions(
  access: CopyAccess,
  current: SqlSession,
  subs: SubscriptionFact[],
): Promise<NonNullable<NeutraliseReport['subscriptions']>> {
  let disabled = 0;
  let detached = 0;
  const byDatabase = new Map<string, SubscriptionFact[]>();
  for (const sub of subs) byDatabase.set(sub.database, [...(byDatabase.get(sub.database) ?? []), sub]);
  for (const [database, list] of byDatabase) {
    // ALTER SUBSCRIPTION works only in the subscription's own database.
    const run = async (session: SqlSession) => {
      for (const sub of list) {
        for (const statement of subscriptionStatements(sub)) await session.query(statement);
        if (sub.enabled) disabled += 1;
        if (sub.slot !== null) detached += 1;
      }
    };
    if (database === access.maintenanceDatabase) await run(current);
    else await withCopySession(access, database, run);
  }
  return { disabled, detached, names: subs.map((s) => `${s.database}.${s.name}`) };
}

async function deactivateCron(access: CopyAccess, current: SqlSession): Promise<NonNullable<NeutraliseReport['cron']>> {
  const [row] = await current.query<{ database: string | null }>(NEUTRALISE_QUERIES.cronDatabase);
  const database = row?.database ?? null;
  if (!database) return { database: null, deactivated: 0, note: 'pg_cron is not loaded on the copy: no job can run' };
  const run = async (session: SqlSession) => {
    const [table] = await session.query<{ present: boolean }>(NEUTRALISE_QUERIES.cronTable);
    if (!table?.present) return { database, deactivated: 0, note: `pg_cron is loaded but has no cron.job table in ${database}` };
    // Without the library, cron.job's cache-invalidation trigger cannot load it ("pg_cron can only be loaded via
    // shared_preload_libraries"); with no scheduler running there is no cache to invalidate, so the trigger is skipped.
    const [library] = await session.query<{ loaded: boolean }>(NEUTRALISE_QUERIES.cronLoaded);
    if (!library?.loaded) await session.query('SET session_replication_role = replica');
    const [changed] = await session.query<{ count: number }>(NEUTRALISE_QUERIES.deactivateCronJobs);
    if (!library?.loaded) await session.query('RESET session_replication_role');
    return { database, deactivated: changed?.count ?? 0, ...(library?.loaded ? {} : { note: 'pg_cron was not loaded (private window)' }) };
  };
  return database === access.maintenanceDatabase ? run(current) : withCopySession(access, database, run);
}
