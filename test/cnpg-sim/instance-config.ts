/**
 * The configuration the instance manager derives from the Cluster spec (BEHAVIOUR.md §10.1, §10.3,
 * CNPG 1.30): `spec.postgresql.parameters` (minus the fixed and blocked keys) and
 * `spec.postgresql.shared_preload_libraries` go to `custom.conf`, `spec.postgresql.pg_hba` between
 * CNPG's fixed rules and its default rule in `pg_hba.conf`. The Job writes them before PostgreSQL's
 * first start (WriteInitialPostgresqlConf), so settings present at creation are in effect from then on.
 * The instance manager rewrites them on every reconcile of its Cluster (refreshConfigurationFiles) and,
 * when anything changed, reloads and waits until `cnpg.config_sha256` shows the new hash
 * (WaitForConfigReload). A primary left with `pending_restart` is restarted in place (§10.1 "Restart
 * flow": the Pod is not recreated).
 *
 * Not simulated: the phases CNPG shows during an in-place restart (`Applying configuration`, `Primary
 * instance is being restarted in-place`), the mutating webhook filling GlobalDefaultSettings into the
 * stored spec, `${podselector:...}` expansion, LDAP rules, `pg_ident` lines and `enableAlterSystem`
 * (on PostgreSQL 15 it only chmods postgresql.auto.conf).
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import type { OsUser } from '../../src/postgres/os-user.js';
import type { Obj } from './kube.js';
import { chownTo, type PgServer, waitUntilPrimary, withSuperuser } from './postgres.js';

/** `FixedConfigurationParameters` (pkg/postgres/configuration.go), fixed and blocked alike (§10.1). */
const FIXED_OR_BLOCKED = new Set([
  'archive_mode',
  'archive_command',
  'cluster_name',
  'port',
  'primary_conninfo',
  'primary_slot_name',
  'restore_command',
  'shared_preload_libraries',
  'temp_tablespaces',
  'synchronous_standby_names',
  'synchronized_standby_slots',
  'ssl',
  'ssl_prefer_server_ciphers',
  'pg_failover_slots.primary_dsn',
  'pg_failover_slots.standby_slot_names',
  'listen_addresses',
  'hot_standby',
  'logging_collector',
  'log_destination',
  'log_directory',
  'log_filename',
  'log_file_mode',
  'log_truncate_on_rotation',
  'restart_after_crash',
  'recovery_min_apply_delay',
  'recovery_end_command',
  'archive_cleanup_command',
  'promote_trigger_file',
  'config_file',
  'data_directory',
  'hba_file',
  'ident_file',
  'external_pid_file',
  'allow_system_table_mods',
  'jit_provider',
  'event_source',
  'data_sync_retry',
  'stats_temp_directory',
]);
const FIXED_OR_BLOCKED_PATTERNS = [
  /^recovery_target/,
  /^ssl_.*_file$/,
  /^ssl_passphrase_command/,
  /^unix_socket_/,
  /^log_rotation_/,
  /^bonjour/,
  /^syslog_/,
];

export function isFixedOrBlocked(name: string): boolean {
  return FIXED_OR_BLOCKED.has(name) || FIXED_OR_BLOCKED_PATTERNS.some((p) => p.test(name));
}

const q = (value: string): string => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;

/** The user's parameters CNPG keeps: fixed and blocked keys are dropped (the instance manager's rule without the webhook). */
export function userParameters(spec: Obj | undefined): Record<string, string> {
  const given = (spec?.postgresql?.parameters ?? {}) as Record<string, unknown>;
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(given)) if (!isFixedOrBlocked(name)) kept[name] = String(value);
  return kept;
}

/** custom.conf: the user's parameters, the libraries the spec lists, and the hash the instance manager waits for. */
export function buildCustomConf(spec: Obj | undefined): { text: string; sha256: string } {
  const lines = Object.entries(userParameters(spec))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, value]) => `${name} = ${q(value)}`);
  const libraries = (spec?.postgresql?.shared_preload_libraries ?? []) as string[];
  if (libraries.length > 0) lines.push(`shared_preload_libraries = ${q(libraries.join(','))}`);
  const sha256 = createHash('sha256').update(lines.join('\n')).digest('hex');
  const text = [
    '# Written by the simulated CloudNativePG operator (test/cnpg-sim) from spec.postgresql.',
    ...lines,
    `cnpg.config_sha256 = ${q(sha256)}`,
  ];
  return { text: `${text.join('\n')}\n`, sha256 };
}

/**
 * CNPG's pg_hba.conf template (§10.3): fixed rules, the user's lines in list order, the default rule.
 * `local all all trust` stands for `local all all peer map=local` on a socket only the simulator reaches.
 */
export function buildInstanceHba(spec: Obj | undefined): string {
  const user = (spec?.postgresql?.pg_hba ?? []) as string[];
  return `${[
    '# Written by the simulated CloudNativePG operator (test/cnpg-sim).',
    '#',
    '# FIXED RULES',
    '#',
    'local all all trust',
    'hostssl postgres streaming_replica all cert',
    'hostssl replication streaming_replica all cert',
    '#',
    '# USER-DEFINED RULES',
    '#',
    ...user,
    '#',
    '# DEFAULT RULES',
    '#',
    'host all all all scram-sha-256',
  ].join('\n')}\n`;
}

function writeIfChanged(path: string, text: string, runAs: OsUser | undefined): boolean {
  let current: string | undefined;
  try {
    current = readFileSync(path, 'utf8');
  } catch {
    current = undefined;
  }
  if (current === text) return false;
  writeFileSync(path, text, { mode: 0o600 });
  chownTo(path, runAs);
  return true;
}

/** refreshConfigurationFiles: custom.conf always, pg_hba.conf for an instance (the Job keeps its local-only rules). Returns whether anything changed and the hash to wait for. */
export function refreshConfigurationFiles(
  dataDir: string,
  spec: Obj | undefined,
  runAs: OsUser | undefined,
  withHba: boolean,
): { changed: boolean; sha256: string } {
  const custom = buildCustomConf(spec);
  const confChanged = writeIfChanged(join(dataDir, 'custom.conf'), custom.text, runAs);
  const hbaChanged = withHba ? writeIfChanged(join(dataDir, 'pg_hba.conf'), buildInstanceHba(spec), runAs) : false;
  return { changed: confChanged || hbaChanged, sha256: custom.sha256 };
}

/** The running instance the instance manager reconfigures. */
export interface ConfiguredInstance {
  server: PgServer;
  socketDir: string;
  port: number;
  runAs: OsUser | undefined;
  signal: AbortSignal;
}

/**
 * The instance manager's share of an instance reconcile (§10.1 "Reload is driven by watch events"):
 * rewrite the files from the spec; if anything changed, reload and wait until `cnpg.config_sha256`
 * shows the new hash; then restart in place when a setting is `pending_restart`.
 */
export async function reconcileConfiguration(
  instance: ConfiguredInstance,
  spec: Obj | undefined,
): Promise<'unchanged' | 'reloaded' | 'restarted'> {
  const { changed, sha256 } = refreshConfigurationFiles(instance.server.dataDir, spec, instance.runAs, true);
  if (!changed) return 'unchanged';
  const su = <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => withSuperuser(instance.socketDir, instance.port, fn);
  await su((c) => c.query('SELECT pg_reload_conf()'));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const hash = await su(async (c) => (await c.query(`SELECT current_setting('cnpg.config_sha256', true) AS h`)).rows[0]?.h);
    if (hash === sha256) break;
    if (Date.now() > deadline) throw new Error(`the configuration reload did not take effect (cnpg.config_sha256 is ${hash})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const pending = await su(
    async (c) => (await c.query('SELECT EXISTS (SELECT 1 FROM pg_settings WHERE pending_restart) AS p')).rows[0]?.p === true,
  );
  if (!pending) return 'reloaded';
  await instance.server.stop('fast');
  await instance.server.start(instance.signal);
  await waitUntilPrimary(instance.socketDir, instance.port);
  return 'restarted';
}
