/**
 * Child processes of the test API server (etcd, the API server) that cannot outlive the test run.
 *
 * Each binary runs in its own process group (spawned detached), so stopping it reaches everything
 * it started. Three layers make sure nothing is left behind:
 * 1. `stop()`: SIGTERM to the group, SIGKILL after a grace period.
 * 2. Process `exit`, SIGINT and SIGTERM handlers that SIGKILL every live group and remove temp dirs.
 * 3. A watchdog shell in the same group that kills the group within a second of this Node process
 *    disappearing, which covers the cases no handler runs for (SIGKILL, a crashed worker).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedProcess {
  readonly name: string;
  /** Also the process group id: the binary is exec'ed by the group leader. */
  readonly pid: number;
  readonly logPath: string;
  /** Settles when the process has exited, for whatever reason. */
  readonly exited: Promise<ProcessExit>;
  /** Whether the process is still running. */
  running(): boolean;
  /** The last lines of the process's combined stdout/stderr, for error messages. */
  logTail(lines?: number): string;
  /** SIGTERM the group, SIGKILL it after `graceMs`; resolves once the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

// `bash -c WATCHDOG name <parent pid> <command> <args…>`: forks a watcher into the background, then
// becomes the command, so the command keeps the group leader's pid ($$ in the watcher). Once the
// parent is gone the watcher SIGTERMs the group, gives the command 5 s, then SIGKILLs what is left,
// itself included. It ignores SIGTERM so that it outlives a graceful stop; stop() SIGKILLs it.
const WATCHDOG = `
parent=$1; shift
(
  trap '' TERM
  while kill -0 "$parent" 2>/dev/null; do sleep 1; done
  kill -TERM 0 2>/dev/null
  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 $$ 2>/dev/null || break; sleep 0.5; done
  kill -KILL 0 2>/dev/null
) </dev/null >/dev/null 2>&1 &
exec "$@"
`;

const liveGroups = new Set<number>();
const tempDirs = new Set<string>();
let handlersInstalled = false;

export interface SpawnOptions {
  /** The process whose disappearance kills this one; default: this Node process. */
  watchPid?: number;
}

export function spawnManaged(
  name: string,
  command: string,
  args: readonly string[],
  logPath: string,
  opts: SpawnOptions = {},
): ManagedProcess {
  installExitHandlers();
  const logFd = openSync(logPath, 'a');
  const watchPid = opts.watchPid ?? process.pid;
  let child: ChildProcess;
  try {
    child = spawn('bash', ['-c', WATCHDOG, `${name}-watchdog`, String(watchPid), command, ...args], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
    });
  } finally {
    // The child holds its own copy of the descriptor.
    closeSync(logFd);
  }
  const pid = child.pid;
  if (pid === undefined) {
    throw new Error(`could not start ${name} (${command})`);
  }
  liveGroups.add(pid);
  // The test run must be able to end while the server runs; the exit handlers clean up then.
  child.unref();

  let isRunning = true;
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('exit', (code, signal) => {
      isRunning = false;
      resolve({ code, signal });
    });
    child.once('error', () => {
      isRunning = false;
      resolve({ code: null, signal: null });
    });
  });

  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 5000): Promise<void> => {
    stopping ??= (async () => {
      signalGroup(pid, 'SIGTERM');
      const timer = new Promise<'timeout'>((resolve) => {
        setTimeout(resolve, graceMs, 'timeout').unref();
      });
      await Promise.race([exited, timer]);
      // Also reaps the watchdog, which ignores SIGTERM.
      signalGroup(pid, 'SIGKILL');
      await exited;
      liveGroups.delete(pid);
    })();
    return stopping;
  };

  return {
    name,
    pid,
    logPath,
    exited,
    running: () => isRunning,
    logTail: (lines = 30) => tailFile(logPath, lines),
    stop,
  };
}

/** A temp dir removed at process exit if its owner did not remove it first. */
export function trackTempDir(dir: string): void {
  installExitHandlers();
  tempDirs.add(dir);
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (err) {
    // ESRCH: the group is already gone, which is the goal.
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') {
      throw err;
    }
  }
}

function killEverythingNow(): void {
  for (const pgid of liveGroups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  liveGroups.clear();
  for (const dir of tempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort while exiting
    }
  }
  tempDirs.clear();
}

function installExitHandlers(): void {
  if (handlersInstalled) {
    return;
  }
  handlersInstalled = true;
  process.once('exit', killEverythingNow);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = (): void => {
      killEverythingNow();
      // Alone on this signal, we must not swallow it: restore the default action and re-raise.
      if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

function tailFile(path: string, lines: number): string {
  try {
    const text = readFileSync(path, 'utf8').trimEnd();
    return text.split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
