import { type ChildProcess, spawn } from 'node:child_process';
import { CLI_BIN } from './cli.js';

/** `db-refresher serve` as users run it: started, waited on until ready (start-up recovery done), stopped with SIGTERM. */

export interface Served {
  child: ChildProcess;
  base: string;
  lines: string[];
  exit: Promise<number | null>;
  stop(): Promise<number | null>;
}

/** Every service started here, so a test that times out while one is starting can still stop it (killServes). */
const started = new Set<ChildProcess>();

export function killServes(): void {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  started.clear();
}

export async function serve(config: string, env: NodeJS.ProcessEnv): Promise<Served> {
  const child = spawn(process.execPath, [CLI_BIN, 'serve', '--config', config], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  started.add(child);
  child.on('close', () => started.delete(child));
  const lines: string[] = [];
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let base = '';
  let buffer = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not get ready:\n${lines.join('\n')}`)), 60_000);
    child.stderr?.on('data', (d: Buffer) => {
      buffer += d.toString();
      const parts = buffer.split('\n');
      buffer = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        const address = /"address":"([^"]+)"/.exec(line);
        if (address?.[1] && line.includes('HTTP API listening')) base = address[1];
        if (line.includes('db-refresher serve is ready')) {
          clearTimeout(timer);
          resolve();
        }
      }
    });
    void exit.then((code) => reject(new Error(`serve exited ${code}:\n${lines.join('\n')}`)));
  }).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
  return {
    child,
    base,
    lines,
    exit,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exit;
    },
  };
}

export async function api(base: string, token: string, method: string, url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${base}${url}`, { method, headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() };
}
