import { spawn } from 'node:child_process';
import type { OsUser } from './os-user.js';

/**
 * Runs a PostgreSQL program and keeps the tail of its output, which is what a
 * failure message needs. Arguments never carry secrets: passwords travel in a
 * passfile and keys in 0600 files, so `ps` shows nothing sensitive.
 */

export interface CommandResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** Last lines of stdout and stderr, interleaved in arrival order. */
  tail: string[];
}

export interface CommandOptions {
  env?: NodeJS.ProcessEnv;
  runAs?: OsUser | undefined;
  cwd?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  onLine?: (line: string) => void;
  tailLines?: number;
}

export function runCommand(program: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  const keep = options.tailLines ?? 40;
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, {
      env: options.env ?? process.env,
      cwd: options.cwd ?? '/',
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.runAs ? { uid: options.runAs.uid, gid: options.runAs.gid } : {}),
    });
    const tail: string[] = [];
    let timedOut = false;
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
      });
    };
    const emit = (line: string) => {
      if (line.trim() === '') return;
      options.onLine?.(line);
      tail.push(line);
      if (tail.length > keep) tail.shift();
    };
    take(child.stdout);
    take(child.stderr);
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGTERM');
          }, options.timeoutMs);
    const onAbort = () => child.kill('SIGTERM');
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (error) => {
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      reject(error);
    });
    child.on('close', (exitCode, signal) => {
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve({ exitCode, signal, timedOut, tail });
    });
  });
}
