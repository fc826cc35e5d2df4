import { readdirSync, readFileSync } from 'node:fs';

/**
 * Finds and ends pg_basebackup processes (and their watchdog shells) that a
 * killed db-refresher left copying into this job's staging directory. Each
 * holds walsenders and a replication slot on the source until it ends.
 * They are recognised by their arguments: `-D <staging>/pgdata`, a path only
 * this job's clone uses. Linux only (/proc); elsewhere there is nothing to find.
 */

function argvOf(pid: string): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
}

export function findCloneProcesses(pgdata: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const found: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const argv = argvOf(entry);
    if (!argv?.includes(pgdata)) continue;
    const ours = argv.some((a) => a === 'db-refresher-child' || a.endsWith('/pg_basebackup') || a === 'pg_basebackup');
    if (ours) found.push(Number(entry));
  }
  return found;
}

/** SIGKILLs every clone process of `pgdata`; waits (bounded) until they are gone. Returns their pids. */
export async function endCloneProcesses(pgdata: string, waitMs = 5_000): Promise<number[]> {
  const pids = findCloneProcesses(pgdata);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  const deadline = performance.now() + waitMs;
  while (pids.length > 0 && findCloneProcesses(pgdata).length > 0 && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return pids;
}
