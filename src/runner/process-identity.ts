import { readFileSync } from 'node:fs';

/**
 * A pid alone does not name a process for long: after a restart (a container's
 * pid 1, a busy host) another process gets the same number. A pid together
 * with the process's start time does. On Linux the start time is field 22 of
 * /proc/<pid>/stat (clock ticks since boot); elsewhere it is unknown and the
 * pid has to do.
 */

export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may contain spaces or parentheses itself.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the process that was `pid`, started at `startTime` (when known), is still running. */
export function isSameProcessAlive(pid: number, startTime: string | undefined): boolean {
  if (!pidExists(pid)) return false;
  if (startTime === undefined) return true;
  const now = processStartTime(pid);
  return now === undefined || now === startTime;
}
