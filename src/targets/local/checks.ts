import { existsSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { formatBytes } from '../../config/byte-size.js';
import type { LocalTargetConfig } from '../../config/types.js';
import { describeSearch, discoverPgBinDirs } from '../../postgres/binaries.js';
import type { Check, SourceFacts } from '../../run/facts.js';
import { directorySize, runningServer } from './data-dir.js';
import { roomNeeded } from './room.js';

/**
 * The local target's preflight checks that look at the host rather than at
 * the data directory's ownership: PostgreSQL binaries of the source's major
 * version, the target port, and room on the file system.
 */

export function versionCheck(source: SourceFacts, env: NodeJS.ProcessEnv): Check {
  const all = discoverPgBinDirs(env);
  const binDir = all.find((d) => d.major === source.majorVersion);
  return binDir
    ? {
        name: 'same major version',
        ok: true,
        message: `source and target both run PostgreSQL ${source.majorVersion} (binaries in ${binDir.dir}, via ${binDir.via})`,
      }
    : {
        name: 'same major version',
        ok: false,
        failureClass: 'version-mismatch',
        message: `the source runs PostgreSQL ${source.majorVersion}, and no PostgreSQL ${source.majorVersion} server binaries were found (searched ${describeSearch(env)}; found ${all.map((d) => `${d.major} in ${d.dir}`).join(', ') || 'none'}). Source and target must have same PostgreSQL version: install PostgreSQL ${source.majorVersion} or set PG_BINDIR`,
      };
}

export async function portCheck(config: LocalTargetConfig, mayBeOurs: boolean): Promise<Check> {
  const { host, port, dataDir } = config;
  const running = mayBeOurs ? runningServer(dataDir) : undefined;
  if (running && running.port === port) {
    return { name: 'target port', ok: true, message: `${host}:${port} is served by the current copy (pid ${running.pid})` };
  }
  const free = await new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
  return free
    ? { name: 'target port', ok: true, message: `${host}:${port} is free` }
    : {
        name: 'target port',
        ok: false,
        failureClass: 'target-port-in-use',
        message: `${host}:${port} is in use by a process that is not this job's copy; the new copy could not start there. Stop that process or change the target port`,
      };
}

export async function roomCheck(dataDir: string, source: SourceFacts, replacingOurs: boolean): Promise<Check> {
  let probe = path.dirname(dataDir);
  while (!existsSync(probe) && probe !== path.dirname(probe)) probe = path.dirname(probe);
  const fs = await statfs(probe);
  const free = fs.bavail * fs.bsize;
  const reclaimed = replacingOurs ? directorySize(dataDir) : 0;
  if (source.totalSizeBytes === undefined) {
    return {
      name: 'room for the copy',
      ok: true,
      severity: 'warning',
      message: `cannot read the source's size (the SQL role lacks CONNECT on every database or pg_read_all_stats); ${formatBytes(free)} free at ${probe}`,
    };
  }
  const room = roomNeeded({ totalSizeBytes: source.totalSizeBytes, walSegmentBytes: source.walSegmentBytes });
  const needed = room.bytes;
  const available = free + reclaimed;
  const text = `needs about ${formatBytes(needed)} (databases ${formatBytes(room.databases)}, WAL ${formatBytes(room.wal)}, plus 10%), ${formatBytes(available)} available at ${probe}${reclaimed ? ` counting ${formatBytes(reclaimed)} freed by removing the old copy` : ''}`;
  return available >= needed
    ? { name: 'room for the copy', ok: true, message: text }
    : { name: 'room for the copy', ok: false, failureClass: 'insufficient-space', message: text };
}
