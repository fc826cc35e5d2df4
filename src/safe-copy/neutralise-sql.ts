import type { NeutraliseSettings } from '../config/types.js';
import { quoteIdent } from './sql-text.js';

/**
 * Pure SQL for neutralising a fresh copy: the queries that find what carries
 * over from production, and the statements that switch it off. Nothing here
 * talks to a server; neutralise.ts runs them.
 */

/** ALTER SYSTEM settings that point at production servers or archives (PostgreSQL docs, BEHAVIOUR.md §10.2). */
export const PRODUCTION_AUTO_CONF_SETTINGS = ['archive_command', 'restore_command', 'primary_conninfo', 'primary_slot_name'] as const;

export const NEUTRALISE_QUERIES = {
  /** Settings present in postgresql.auto.conf, with the value that counts (the last; pg_file_settings needs superuser). */
  autoConfSettings: `SELECT DISTINCT ON (name) name, setting FROM pg_file_settings
    WHERE sourcefile LIKE '%postgresql.auto.conf' AND name = ANY($1::text[]) ORDER BY name, seqno DESC`,
  synchronousStandbyNames: `SELECT current_setting('synchronous_standby_names') AS value`,
  subscriptions: `SELECT s.subname AS name, d.datname AS database, s.subenabled AS enabled, s.subslotname AS slot
    FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid ORDER BY d.datname, s.subname`,
  /** The database pg_cron's scheduler reads its jobs from; NULL when pg_cron is not loaded. */
  cronDatabase: `SELECT current_setting('cron.database_name', true) AS database`,
  cronTable: `SELECT to_regclass('cron.job') IS NOT NULL AS present`,
  /** Whether pg_cron's library is loaded; a CNPG copy's private window leaves it out (src/targets/cnpg/private-window.ts). */
  cronLoaded: `SELECT 'pg_cron' = ANY(string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')) AS loaded`,
  deactivateCronJobs: `WITH changed AS (UPDATE cron.job SET active = false WHERE active RETURNING jobid)
    SELECT count(*)::int AS count FROM changed`,
  loginRolesWithPassword: `SELECT rolname AS name FROM pg_authid WHERE rolcanlogin AND rolpassword IS NOT NULL ORDER BY rolname`,
} as const;

/** The names neutralise looks for in postgresql.auto.conf. */
export const AUTO_CONF_NAMES = [...PRODUCTION_AUTO_CONF_SETTINGS, 'synchronous_standby_names'];

/**
 * Statements that empty synchronous_standby_names and drop production
 * settings from postgresql.auto.conf, given what the file holds now. Each
 * ALTER SYSTEM rewrites and fsyncs the file, so only what is there is reset,
 * and a file that already says '' is left alone (a second pass does nothing).
 * Each runs on its own (ALTER SYSTEM refuses a transaction block).
 */
export function synchronousReplicationStatements(autoConf: ReadonlyArray<{ name: string; setting: string }>): string[] {
  const present = new Map(autoConf.map((s) => [s.name, s.setting]));
  const statements = [
    ...PRODUCTION_AUTO_CONF_SETTINGS.filter((name) => present.has(name)).map((name) => `ALTER SYSTEM RESET ${name}`),
    // SET, not RESET: postgresql.conf may name standbys too, and postgresql.auto.conf is read last.
    ...(present.get('synchronous_standby_names') === '' ? [] : [`ALTER SYSTEM SET synchronous_standby_names = ''`]),
  ];
  return statements.length ? [...statements, 'SELECT pg_reload_conf()'] : [];
}

export interface SubscriptionFact {
  name: string;
  database: string;
  enabled: boolean;
  slot: string | null;
}

/**
 * Disables a subscription and detaches it from its slot, in that order
 * (PostgreSQL requires a disabled subscription for slot_name = NONE). Never
 * DROP SUBSCRIPTION: that would drop the slot on the production publisher.
 */
export function subscriptionStatements(sub: SubscriptionFact): string[] {
  const name = quoteIdent(sub.name);
  return [
    ...(sub.enabled ? [`ALTER SUBSCRIPTION ${name} DISABLE`] : []),
    ...(sub.slot !== null ? [`ALTER SUBSCRIPTION ${name} SET (slot_name = NONE)`] : []),
  ];
}

/** LOGIN roles whose passwords a reset removes: every one with a password except those kept. */
export function rolesToReset(withPassword: readonly string[], keep: ReadonlySet<string>): string[] {
  return withPassword.filter((name) => !keep.has(name));
}

export function passwordResetStatement(role: string): string {
  return `ALTER ROLE ${quoteIdent(role)} PASSWORD NULL`;
}

/** Roles that keep their passwords: the owner, the test roles, the job's keepRoles, the roles db-refresher and the operator log in with. */
export function keptRoles(input: {
  settings: NeutraliseSettings;
  testRoles: readonly string[];
  owner?: string | undefined;
  connectsAs: readonly string[];
  operatorManaged: readonly string[];
}): Set<string> {
  return new Set(
    [...input.settings.keepRoles, ...input.testRoles, ...input.connectsAs, ...input.operatorManaged, input.owner].filter(
      (name): name is string => name !== undefined,
    ),
  );
}

/** What `plan` says neutralisation will do, one line per item switched on. */
export function describeNeutralisation(settings: NeutraliseSettings): string[] {
  const lines: string[] = [];
  if (settings.synchronousReplication) {
    lines.push(
      `synchronous replication: synchronous_standby_names = '' and ALTER SYSTEM RESET ${PRODUCTION_AUTO_CONF_SETTINGS.join(', ')}`,
    );
  }
  if (settings.subscriptions) {
    lines.push(
      'subscriptions: start with max_logical_replication_workers = 0, then DISABLE each one and SET (slot_name = NONE); the publisher keeps its slot',
    );
  }
  if (settings.cron) lines.push('pg_cron: no job may run during the private start; every active job is deactivated (active = false)');
  if (settings.passwords) {
    lines.push(
      `passwords: LOGIN roles lose their passwords, except the owner, the test roles, the roles db-refresher and the operator log in with${settings.keepRoles.length ? ` and ${settings.keepRoles.join(', ')}` : ''}`,
    );
  }
  return lines;
}

export function neutralisationEnabled(settings: NeutraliseSettings): boolean {
  return settings.synchronousReplication || settings.subscriptions || settings.cron || settings.passwords;
}
