import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { findPgBinDir } from '../../src/postgres/binaries.js';

/**
 * A PG_BINDIR whose pg_basebackup is the real one with --max-rate, so a local
 * clone of the small test database lasts several seconds and reports progress
 * several times (the status page and cancel tests need a clone under way).
 */
export function slowBinDir(root: string, rate = '6M'): string {
  const real = findPgBinDir(undefined, process.env, ['pg_basebackup', 'pg_ctl']);
  if (!real) throw new Error('no PostgreSQL binaries');
  const dir = path.join(root, `slow-bin-${rate}`);
  mkdirSync(dir, { recursive: true });
  chmodSync(root, 0o755);
  symlinkSync(path.join(real.dir, 'pg_ctl'), path.join(dir, 'pg_ctl'));
  writeFileSync(path.join(dir, 'pg_basebackup'), `#!/bin/sh\nexec ${path.join(real.dir, 'pg_basebackup')} --max-rate=${rate} "$@"\n`, {
    mode: 0o755,
  });
  return dir;
}
