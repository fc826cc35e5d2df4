import type { NeutraliseSettings } from '../../config/types.js';

/**
 * Pure builders for a CNPG clone's private window (BEHAVIOUR.md §10, CNPG
 * 1.30). Rules and parameters present when the Cluster is created are in
 * effect from PostgreSQL's first start in the instance Pod (§10.1 "No restart
 * is needed for settings present at creation", §10.3 "Rules in the spec at
 * creation protect the clone from its first start"), so the clone is created
 * closed:
 * - `spec.postgresql.pg_hba` admits only the superuser db-refresher logs in
 *   as (its password is in the `<cluster>-superuser` Secret that
 *   `enableSuperuserAccess` creates) and rejects everyone else. User rules come
 *   after CNPG's fixed rules and before its default `host all all all
 *   scram-sha-256`, and PostgreSQL uses the first match.
 * - `max_logical_replication_workers: 0` (allowed in the spec; CNPG sets no
 *   default) keeps subscriptions from starting apply workers; pg_cron is left
 *   out of the preload list (below), since a loaded pg_cron raises
 *   `cron.max_running_jobs: 0` to 1 and would start a job that falls due.
 * - `enableAlterSystem: true` lets neutralise reset what the source's
 *   postgresql.auto.conf carried over (CNPG never rewrites that file, §10.2).
 *
 * Opening is a merge patch: pg_hba back to the user's rules (a reload),
 * the two parameters removed (both need a restart: CNPG restarts the primary
 * in place), then ALTER SYSTEM and superuser access back to the user's values.
 */

export const PRIVATE_SUPERUSER = 'postgres';

export function privateHbaRules(): string[] {
  return [`host all ${PRIVATE_SUPERUSER} all scram-sha-256`, 'host all all all reject'];
}

/** pg_cron's library name in shared_preload_libraries, and its default database (pg_cron.c, `cron.database_name`). */
const PG_CRON = 'pg_cron';
const PG_CRON_DEFAULT_DATABASE = 'postgres';

function libraries(spec: Record<string, unknown>): string[] | undefined {
  const postgresql = (spec.postgresql ?? {}) as Record<string, unknown>;
  return Array.isArray(postgresql.shared_preload_libraries) ? (postgresql.shared_preload_libraries as string[]) : undefined;
}

/**
 * Whether the window withholds pg_cron: CloudNativePG never preloads it by
 * itself (§10.6), so it runs only when the spec lists it, and left out of the
 * list no scheduler runs, whatever pg_cron's version. (`cron.max_running_jobs
 * = 0` does not stop jobs: pg_cron raises a value <= 0 to 1; and
 * `cron.launch_active_jobs` exists only from pg_cron 1.6.)
 */
export function withholdsCron(settings: NeutraliseSettings, userLibraries: readonly string[] | undefined): boolean {
  return settings.cron && (userLibraries ?? []).includes(PG_CRON);
}

/**
 * Parameters the window sets. With pg_cron withheld, `cron.database_name`
 * stays set (the user's value, or pg_cron's default) so that neutralise finds
 * the jobs table while the library is not loaded.
 */
export function privateParameters(settings: NeutraliseSettings, user: UserWindowSettings = {}): Record<string, string> {
  return {
    ...(settings.subscriptions ? { max_logical_replication_workers: '0' } : {}),
    ...(withholdsCron(settings, user.userLibraries)
      ? { 'cron.database_name': user.userParameters?.['cron.database_name'] ?? PG_CRON_DEFAULT_DATABASE }
      : {}),
  };
}

/** Merges the private window into a Cluster spec built from the values. */
export function withPrivateWindow(spec: Record<string, unknown>, settings: NeutraliseSettings): Record<string, unknown> {
  const postgresql = (spec.postgresql ?? {}) as Record<string, unknown>;
  const user = userWindowSettings(spec);
  return {
    ...spec,
    enableSuperuserAccess: true,
    postgresql: {
      ...postgresql,
      enableAlterSystem: true,
      pg_hba: privateHbaRules(),
      parameters: { ...((postgresql.parameters ?? {}) as Record<string, string>), ...privateParameters(settings, user) },
      ...(withholdsCron(settings, user.userLibraries)
        ? { shared_preload_libraries: (user.userLibraries ?? []).filter((name) => name !== PG_CRON) }
        : {}),
    },
  };
}

/** What the user's own spec says about the keys the private window changes. */
export interface UserWindowSettings {
  userHba?: string[] | undefined;
  userParameters?: Record<string, string> | undefined;
  userSuperuserAccess?: boolean | undefined;
  userAlterSystem?: boolean | undefined;
  userLibraries?: string[] | undefined;
}

/** The user's settings for the window's keys, read from the spec the values render to. */
export function userWindowSettings(spec: Record<string, unknown>): UserWindowSettings {
  const postgresql = (spec.postgresql ?? {}) as Record<string, unknown>;
  return {
    userHba: Array.isArray(postgresql.pg_hba) ? (postgresql.pg_hba as string[]) : undefined,
    userParameters: (postgresql.parameters ?? undefined) as Record<string, string> | undefined,
    userSuperuserAccess: typeof spec.enableSuperuserAccess === 'boolean' ? spec.enableSuperuserAccess : undefined,
    userAlterSystem: typeof postgresql.enableAlterSystem === 'boolean' ? postgresql.enableAlterSystem : undefined,
    userLibraries: libraries(spec),
  };
}

/**
 * The JSON merge patch that opens the clone: `null` removes a key. Opening
 * happens in two patches: first `access`, pg_hba and the parameters, with
 * superuser access kept on (stated, not just left alone, so that an `open`
 * resumed after the second patch gets the door back and can see the first
 * take effect), then `superuser` puts superuser access and ALTER SYSTEM back
 * to the user's values.
 */
export function openPatch(
  input: UserWindowSettings & { settings: NeutraliseSettings; part?: 'access' | 'superuser' },
): Record<string, unknown> {
  const parameters: Record<string, string | null> = {};
  for (const name of Object.keys(privateParameters(input.settings, input))) parameters[name] = input.userParameters?.[name] ?? null;
  const access = {
    pg_hba: input.userHba?.length ? input.userHba : null,
    parameters,
    ...(withholdsCron(input.settings, input.userLibraries) ? { shared_preload_libraries: input.userLibraries } : {}),
  };
  const superuser = { enableSuperuserAccess: input.userSuperuserAccess ?? false };
  const alterSystem = { enableAlterSystem: input.userAlterSystem ?? false };
  if (input.part === 'access') return { spec: { enableSuperuserAccess: true, postgresql: access } };
  if (input.part === 'superuser') return { spec: { ...superuser, postgresql: alterSystem } };
  return { spec: { ...superuser, postgresql: { ...alterSystem, ...access } } };
}

/**
 * What the superuser reads to know the opening patch took effect (run with
 * the private parameters' names as $1): settings waiting for a restart, when
 * the configuration was last loaded (microseconds since the epoch) and when
 * pg_hba.conf was last written (whole seconds: pg_stat_file gives st_mtime),
 * the catch-all reject rules in the file (pg_hba_file_rules reads the FILE,
 * not what the server loaded), and the private parameters' current and
 * built-in values.
 */
export const OPENED_QUERY = `SELECT
  (SELECT count(*)::int FROM pg_settings WHERE pending_restart) AS pending_restart,
  (extract(epoch FROM pg_conf_load_time()) * 1000000)::bigint::float8 AS load_us,
  extract(epoch FROM (pg_stat_file(current_setting('hba_file'))).modification)::bigint::float8 AS hba_mtime_s,
  (SELECT count(*)::int FROM pg_hba_file_rules
    WHERE auth_method = 'reject' AND database = '{all}' AND user_name = '{all}' AND address = 'all') AS reject_all,
  (SELECT coalesce(json_object_agg(name, json_build_array(setting, boot_val)), '{}'::json)
    FROM pg_settings WHERE name = ANY($1::text[])) AS settings,
  current_setting('shared_preload_libraries') AS libraries`;

/**
 * Asks the server to reload its configuration (as the superuser: it reloads
 * the files CloudNativePG wrote, nothing else), with the instant it asked and
 * the pg_hba.conf write it asked about.
 */
export const RELOAD_QUERY = `SELECT
  (extract(epoch FROM clock_timestamp()) * 1000000)::bigint::float8 AS at_us,
  extract(epoch FROM (pg_stat_file(current_setting('hba_file'))).modification)::bigint::float8 AS hba_mtime_s,
  pg_reload_conf() AS signalled`;

/** A reload db-refresher asked for: when (server clock, microseconds), and the pg_hba.conf mtime it was asked after. */
export interface ReloadAsked {
  at_us: number;
  hba_mtime_s: number;
}

export interface OpenedFacts {
  pending_restart: number;
  load_us: number;
  hba_mtime_s: number;
  reject_all: number;
  settings: Record<string, [string, string]>;
  libraries: string;
}

const REJECT_ALL = /^\s*host\s+all\s+all\s+all\s+reject\s*$/;

/**
 * Pure: whether the server loaded pg_hba.conf as it is now. The file's mtime
 * has whole seconds and the load time microseconds, so a load in the same
 * second as the last write proves nothing (the write may have come after
 * it): only a load in a later second does, or a load at or after a reload
 * db-refresher asked for once the file already held what it holds now (same
 * mtime).
 */
export function hbaLoaded(facts: Pick<OpenedFacts, 'load_us' | 'hba_mtime_s'>, asked?: ReloadAsked): boolean {
  if (Math.floor(facts.load_us / 1_000_000) > facts.hba_mtime_s) return true;
  return asked !== undefined && asked.hba_mtime_s === facts.hba_mtime_s && facts.load_us >= asked.at_us;
}

/** Pure: whether to ask for a reload now: the file is the user's, its load is not proven, and no reload asked after its last write is still on its way. */
export function hbaReloadWanted(facts: OpenedFacts, input: UserWindowSettings, asked?: ReloadAsked): boolean {
  if (holdsPrivateReject(facts, input) || hbaLoaded(facts, asked)) return false;
  return asked === undefined || asked.hba_mtime_s !== facts.hba_mtime_s;
}

function holdsPrivateReject(facts: OpenedFacts, input: UserWindowSettings): boolean {
  const userRejects = (input.userHba ?? []).filter((line) => REJECT_ALL.test(line)).length;
  return facts.reject_all > userRejects;
}

export const HBA_NOT_LOADED = 'pg_hba.conf may have been written after the last configuration reload';

/**
 * Pure: why the copy is not open yet, or undefined once it is. The private
 * parameters need a restart to go (CNPG restarts the primary in place, §10.1),
 * so their loaded value equal to the user's (or PostgreSQL's built-in one)
 * means the restart happened; a parameter no loaded library defines is not
 * listed in pg_settings and is skipped.
 */
export function notYetOpen(
  facts: OpenedFacts,
  input: UserWindowSettings & { settings: NeutraliseSettings },
  asked?: ReloadAsked,
): string | undefined {
  if (holdsPrivateReject(facts, input)) return "pg_hba.conf still holds the private window's reject rule";
  if (!hbaLoaded(facts, asked)) return HBA_NOT_LOADED;
  if (withholdsCron(input.settings, input.userLibraries)) {
    const loaded = facts.libraries.split(',').map((name) => name.trim());
    if (!loaded.includes(PG_CRON)) return "pg_cron is not loaded yet (waiting for CloudNativePG's in-place restart)";
  }
  for (const name of Object.keys(privateParameters(input.settings, input))) {
    const loaded = facts.settings[name];
    if (!loaded) continue;
    const want = input.userParameters?.[name] ?? loaded[1];
    if (loaded[0] !== want) return `${name} is still ${loaded[0]} (waiting for CloudNativePG's in-place restart)`;
  }
  if (facts.pending_restart > 0) return `${facts.pending_restart} setting(s) wait for a restart`;
  return undefined;
}
