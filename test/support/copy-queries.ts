import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';

/** Runs SQL on a copy as the application owner (the copy has the source's roles and passwords). */
export async function queryCopy<Row extends Record<string, unknown>>(
  port: number,
  password: string,
  text: string,
  options: { user?: string; database?: string; tls?: boolean } = {},
): Promise<Row[]> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: options.user ?? 'app',
    password,
    database: options.database ?? 'app',
    ssl: options.tls ? { rejectUnauthorized: false } : false,
  });
  await client.connect();
  try {
    return (await client.query(text)).rows as Row[];
  } finally {
    await client.end();
  }
}

/** The pid of the postmaster serving a data directory, or undefined. */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    return Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return undefined;
  }
}
