/**
 * The environment of every PostgreSQL program db-refresher starts, built on
 * purpose rather than inherited: the service's environment holds the
 * replication password, API tokens and webhook URLs, and a copy's postmaster
 * keeps its environment for life, where any superuser of the copy can read it
 * (pg_read_binary_file('/proc/<pid>/environ')). Only what the programs need
 * to find each other, speak the right locale and read the right time passes.
 */

const PASSED = new Set(['PATH', 'LANG', 'LANGUAGE', 'TZ', 'TMPDIR', 'LD_LIBRARY_PATH', 'PG_OOM_ADJUST_FILE', 'PG_OOM_ADJUST_VALUE']);

export function childEnv(from: NodeJS.ProcessEnv, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(from)) {
    if (value !== undefined && (PASSED.has(key) || key.startsWith('LC_'))) env[key] = value;
  }
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  return { ...env, ...extra };
}
