import { spawn } from 'node:child_process';
import { timerMs } from '../timer.js';
import { childEnv } from './child-env.js';
import type { OsUser } from './os-user.js';

/**
 * Runs a PostgreSQL program and keeps the tail of its output, which is what a
 * failure message needs. Arguments never carry secrets: passwords travel in a
 * passfile and keys in 0600 files, so `ps` shows nothing sensitive.
 *
 * The program runs in a process group of its own, and a timeout, an abort or
 * the end of this process ends the whole group: pg_basebackup forks a WAL
 * receiver that would otherwise outlive it, holding walsenders and a slot on
 * the source. A watchdog shell in the group kills it within about a second of
 * this process disappearing (kill -9 included), and when the program itself
 * ends. The result comes when the program exits, not when every descendant
 * has closed its output, so a stray descendant cannot hold a phase open.
 */

export interface CommandResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** Last lines of stdout and stderr, interleaved in arrival order. */
  tail: string[];
}

export interface CommandOptions {
  /** The child's whole environment; default: childEnv(process.env), never process.env itself. */
  env?: NodeJS.ProcessEnv;
  runAs?: OsUser | undefined;
  cwd?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  onLine?: (line: string) => void;
  tailLines?: number;
}

/** How long a group gets between SIGTERM and SIGKILL. */
const KILL_AFTER_MS = 5_000;
/** How long output may keep flowing after the program exited (its group is killed first). */
const DRAIN_MS = 2_000;

/**
 * $1: this process's pid; the rest: the program and its arguments. The
 * subshell ignores SIGTERM so that it outlives a group SIGTERM and can
 * finish the job with SIGKILL if this process dies before it does.
 */
const WATCHDOG = [
  'parent=$1; shift; leader=$$',
  `( trap '' TERM; while [ -d "/proc/$parent" ] && [ -d "/proc/$leader" ] && ! grep -q '^[^)]*) Z' "/proc/$leader/stat" 2>/dev/null; do sleep 0.5; done; kill -s KILL -- "-$leader" ) </dev/null >/dev/null 2>&1 &`,
  'exec "$@"',
].join('\n');

/** Process groups started here and not yet ended: killed when this process exits. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // The group is gone already.
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pgid of liveGroups) killGroup(pgid, 'SIGKILL');
  });
}

export class CommandNotStarted extends Error {
  override name = 'CommandNotStarted';
}

export function runCommand(program: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  const keep = options.tailLines ?? 40;
  if (options.signal?.aborted) {
    const reason = options.signal.reason;
    return Promise.reject(
      new CommandNotStarted(`${program} was not started: ${reason instanceof Error ? reason.message : String(reason ?? 'aborted')}`),
    );
  }
  installExitHook();
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', WATCHDOG, 'db-refresher-child', String(process.pid), program, ...args], {
      env: options.env ?? childEnv(process.env),
      cwd: options.cwd ?? '/',
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      ...(options.runAs ? { uid: options.runAs.uid, gid: options.runAs.gid } : {}),
    });
    const pgid = child.pid;
    if (pgid !== undefined) liveGroups.add(pgid);
    const tail: string[] = [];
    let timedOut = false;
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let settled = false;
    const timers = new Set<NodeJS.Timeout>();
    const later = (ms: number, fn: () => void) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        fn();
      }, timerMs(ms));
      timers.add(timer);
    };
    const emit = (line: string) => {
      if (line.trim() === '') return;
      options.onLine?.(line);
      tail.push(line);
      if (tail.length > keep) tail.shift();
    };
    const take = (stream: NodeJS.ReadableStream) => {
      let pending = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        pending += chunk;
        // pg_basebackup redraws its progress line with \r.
        const lines = pending.split(/\r\n|\n|\r/);
        pending = lines.pop() ?? '';
        for (const line of lines) emit(line);
      });
      stream.on('end', () => {
        if (pending) emit(pending);
        pending = '';
      });
    };
    take(child.stdout);
    take(child.stderr);

    const finish = () => {
      if (settled) return;
      settled = true;
      for (const timer of timers) clearTimeout(timer);
      options.signal?.removeEventListener('abort', terminate);
      if (pgid !== undefined) {
        killGroup(pgid, 'SIGKILL');
        liveGroups.delete(pgid);
      }
      child.stdout.destroy();
      child.stderr.destroy();
      resolve({ exitCode: exited?.code ?? null, signal: exited?.signal ?? null, timedOut, tail });
    };
    let terminating = false;
    function terminate() {
      if (terminating || pgid === undefined) return;
      terminating = true;
      killGroup(pgid, 'SIGTERM');
      later(KILL_AFTER_MS, () => {
        killGroup(pgid, 'SIGKILL');
        // A process stuck in the kernel may take a moment to die; never wait for it forever.
        later(DRAIN_MS, finish);
      });
    }
    if (options.timeoutMs !== undefined) {
      later(options.timeoutMs, () => {
        timedOut = true;
        terminate();
      });
    }
    options.signal?.addEventListener('abort', terminate, { once: true });
    child.on('error', (error) => {
      if (settled) return;
      settled = true;
      for (const timer of timers) clearTimeout(timer);
      options.signal?.removeEventListener('abort', terminate);
      if (pgid !== undefined) liveGroups.delete(pgid);
      reject(error);
    });
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      // Whatever the program left behind in its group ends with it; then its output drains.
      if (pgid !== undefined) killGroup(pgid, 'SIGKILL');
      later(DRAIN_MS, finish);
    });
    child.on('close', () => {
      if (exited) finish();
    });
  });
}
