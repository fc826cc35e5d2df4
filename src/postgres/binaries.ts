import { execFileSync } from 'node:child_process';
import { accessSync, constants, readdirSync, realpathSync } from 'node:fs';
import path from 'node:path';

/**
 * Finds PostgreSQL server binaries. Order: PG_BINDIR, then PATH, then
 * `pg_config --bindir`, then /usr/lib/postgresql/<major>/bin newest first.
 * A directory counts only if it has every program asked for: Debian puts
 * wrapper scripts for some programs on PATH, and those are not enough.
 */

export interface PgBinDir {
  dir: string;
  major: number;
  /** Where it was found, for messages. */
  via: string;
}

const DEFAULT_PROGRAMS = ['pg_basebackup', 'pg_ctl'] as const;

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function hasAll(dir: string, programs: readonly string[]): boolean {
  return programs.every((p) => isExecutable(path.join(dir, p)));
}

/** `pg_ctl (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` → 15; 9.6 style → 9. */
export function parseMajorVersion(versionOutput: string): number | undefined {
  const match = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(versionOutput);
  return match ? Number(match[1]) : undefined;
}

function majorOf(dir: string): number | undefined {
  try {
    return parseMajorVersion(execFileSync(path.join(dir, 'pg_ctl'), ['--version'], { encoding: 'utf8', timeout: 10_000 }));
  } catch {
    return undefined;
  }
}

function candidates(env: NodeJS.ProcessEnv): Array<{ dir: string; via: string }> {
  const out: Array<{ dir: string; via: string }> = [];
  if (env.PG_BINDIR) out.push({ dir: env.PG_BINDIR, via: 'PG_BINDIR' });
  for (const entry of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    for (const program of DEFAULT_PROGRAMS) {
      const file = path.join(entry, program);
      if (!isExecutable(file)) continue;
      try {
        out.push({ dir: path.dirname(realpathSync(file)), via: `PATH (${file})` });
      } catch {
        // A dangling symlink on PATH: not a candidate.
      }
    }
  }
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', timeout: 10_000, env }).trim();
    if (dir) out.push({ dir, via: 'pg_config --bindir' });
  } catch {
    // No pg_config: fall through to the distribution layout.
  }
  try {
    const majors = readdirSync('/usr/lib/postgresql')
      .filter((name) => /^\d+$/.test(name))
      .sort((a, b) => Number(b) - Number(a));
    for (const major of majors) out.push({ dir: `/usr/lib/postgresql/${major}/bin`, via: '/usr/lib/postgresql' });
  } catch {
    // Not a Debian/Ubuntu layout.
  }
  return out;
}

/**
 * Every usable binary directory, in discovery order, without duplicates.
 * PG_BINDIR, when set, is the only candidate: an explicit choice is not second-guessed.
 */
export function discoverPgBinDirs(env: NodeJS.ProcessEnv = process.env, programs: readonly string[] = DEFAULT_PROGRAMS): PgBinDir[] {
  const seen = new Set<string>();
  const found: PgBinDir[] = [];
  const list = env.PG_BINDIR ? [{ dir: env.PG_BINDIR, via: 'PG_BINDIR' }] : candidates(env);
  for (const { dir, via } of list) {
    if (seen.has(dir)) continue;
    seen.add(dir);
    if (!hasAll(dir, programs)) continue;
    const major = majorOf(dir);
    if (major !== undefined) found.push({ dir, major, via });
  }
  return found;
}

/** The first directory whose major version matches, else undefined. */
export function findPgBinDir(
  major: number | undefined,
  env: NodeJS.ProcessEnv = process.env,
  programs: readonly string[] = DEFAULT_PROGRAMS,
): PgBinDir | undefined {
  const all = discoverPgBinDirs(env, programs);
  return major === undefined ? all[0] : all.find((d) => d.major === major);
}

export function describeSearch(env: NodeJS.ProcessEnv = process.env): string {
  return env.PG_BINDIR ? `PG_BINDIR=${env.PG_BINDIR}` : 'PG_BINDIR (unset), PATH, `pg_config --bindir` and /usr/lib/postgresql/*/bin';
}
