import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { findPgBinDir, type PgBinDir } from '../src/postgres/binaries.js';
import { runCommand } from '../src/postgres/command.js';
import { serverOsUser } from '../src/postgres/os-user.js';

/**
 * Throwaway PostgreSQL clusters on free loopback ports, for the demo, the
 * tests and the benchmarks. Each lives in its own directory under the
 * sandbox root and is reached over TCP as the superuser "postgres".
 */

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface ClusterOptions {
  name: string;
  port?: number;
  /** postgresql.conf settings, e.g. { max_wal_senders: '1' }. */
  settings?: Record<string, string>;
  /** pg_hba.conf lines; the default allows password logins and replication from 127.0.0.1. */
  hba?: string[];
  /** Files for ssl = on: server certificate, key and the CA for client certificates. */
  tls?: { cert: string; key: string; ca: string };
}

export const DEFAULT_HBA = [
  'local all all trust',
  'host all all 127.0.0.1/32 scram-sha-256',
  'host replication all 127.0.0.1/32 scram-sha-256',
];

export class SandboxCluster {
  readonly name: string;
  readonly dataDir: string;
  readonly port: number;
  readonly host = '127.0.0.1';
  readonly superuserPassword: string;
  readonly binDir: PgBinDir;
  readonly #sandbox: Sandbox;

  constructor(sandbox: Sandbox, name: string, dataDir: string, port: number, password: string, binDir: PgBinDir) {
    this.#sandbox = sandbox;
    this.name = name;
    this.dataDir = dataDir;
    this.port = port;
    this.superuserPassword = password;
    this.binDir = binDir;
  }

  async #pgCtl(args: string[]): Promise<void> {
    const result = await runCommand(path.join(this.binDir.dir, 'pg_ctl'), args, { runAs: serverOsUser() });
    if (result.exitCode !== 0) {
      let log = '';
      try {
        log = readFileSync(this.logFile, 'utf8').split('\n').slice(-10).join('\n');
      } catch {
        // No log yet.
      }
      throw new Error(`pg_ctl ${args[0]} for ${this.name} failed: ${result.tail.join('\n')}\n${log}`);
    }
  }

  get logFile(): string {
    return path.join(this.#sandbox.root, `${this.name}.log`);
  }

  start(): Promise<void> {
    return this.#pgCtl(['start', '-D', this.dataDir, '-w', '-t', '60', '-l', this.logFile]);
  }

  stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    return this.#pgCtl(['stop', '-D', this.dataDir, '-m', mode, '-w', '-t', '60']);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Runs SQL as the superuser; returns the rows of the last statement. */
  async sql<Row extends Record<string, unknown> = Record<string, unknown>>(
    text: string,
    database = 'postgres',
    params?: unknown[],
  ): Promise<Row[]> {
    const client = new pg.Client({ host: this.host, port: this.port, user: 'postgres', password: this.superuserPassword, database });
    await client.connect();
    try {
      const result = await client.query(text, params);
      const last = Array.isArray(result) ? result[result.length - 1] : result;
      return (last?.rows ?? []) as Row[];
    } finally {
      await client.end();
    }
  }

  setHba(lines: string[]): void {
    writeFileSync(path.join(this.dataDir, 'pg_hba.conf'), `${lines.join('\n')}\n`);
  }

  async reload(): Promise<void> {
    await this.#pgCtl(['reload', '-D', this.dataDir]);
  }
}

export class Sandbox {
  readonly root: string;
  readonly #clusters: SandboxCluster[] = [];

  private constructor(root: string) {
    this.root = root;
  }

  static create(prefix = 'db-refresher-sandbox-'): Sandbox {
    const root = mkdtempSync(path.join(tmpdir(), prefix));
    const user = serverOsUser();
    if (user) chownSync(root, user.uid, user.gid);
    const sandbox = new Sandbox(root);
    sandbox.#watchdog = startWatchdog(root);
    return sandbox;
  }

  #watchdog: ChildProcess | undefined;

  /** A directory under the sandbox that the PostgreSQL OS user may write to. */
  dir(name: string): string {
    const dir = path.join(this.root, name);
    mkdirSync(dir, { recursive: true });
    const user = serverOsUser();
    if (user) chownSync(dir, user.uid, user.gid);
    return dir;
  }

  async createCluster(options: ClusterOptions): Promise<SandboxCluster> {
    const binDir = findPgBinDir(undefined, process.env, ['initdb', 'pg_ctl', 'postgres', 'pg_basebackup']);
    if (!binDir) {
      throw new Error(
        'no PostgreSQL server binaries found (searched PG_BINDIR, PATH, pg_config --bindir, /usr/lib/postgresql/*/bin); install PostgreSQL >= 13',
      );
    }
    const runAs = serverOsUser();
    const dataDir = path.join(this.root, options.name);
    const password = randomBytes(12).toString('hex');
    const pwfile = path.join(this.root, `${options.name}.pw`);
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (runAs) chownSync(pwfile, runAs.uid, runAs.gid);
    const init = await runCommand(
      path.join(binDir.dir, 'initdb'),
      ['-D', dataDir, '-U', 'postgres', '--pwfile', pwfile, '-A', 'scram-sha-256', '--no-sync', '-E', 'UTF8', '--locale', 'C'],
      { runAs },
    );
    rmSync(pwfile, { force: true });
    if (init.exitCode !== 0) throw new Error(`initdb for ${options.name} failed: ${init.tail.join('\n')}`);

    const port = options.port ?? (await freePort());
    const settings: Record<string, string> = {
      port: String(port),
      listen_addresses: "'127.0.0.1'",
      unix_socket_directories: "''",
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      shared_buffers: "'32MB'",
      max_connections: '30',
      max_wal_senders: '10',
      ...(options.tls
        ? { ssl: 'on', ssl_cert_file: `'${options.tls.cert}'`, ssl_key_file: `'${options.tls.key}'`, ssl_ca_file: `'${options.tls.ca}'` }
        : {}),
      ...options.settings,
    };
    appendFileSync(
      path.join(dataDir, 'postgresql.conf'),
      `\n${Object.entries(settings)
        .map(([k, v]) => `${k} = ${v}`)
        .join('\n')}\n`,
    );
    writeFileSync(path.join(dataDir, 'pg_hba.conf'), `${(options.hba ?? DEFAULT_HBA).join('\n')}\n`);
    const cluster = new SandboxCluster(this, options.name, dataDir, port, password, binDir);
    this.#clusters.push(cluster);
    await cluster.start();
    return cluster;
  }

  /** Stops every server running from a directory under the sandbox (clusters and copies) and removes it all. */
  async destroy(): Promise<void> {
    const runAs = serverOsUser();
    const binDir = this.#clusters[0]?.binDir ?? findPgBinDir(undefined);
    const dirs = readdirSync(this.root, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .flatMap((e) => [
        path.join(this.root, e.name),
        ...readdirSync(path.join(this.root, e.name), { withFileTypes: true })
          .filter((c) => c.isDirectory())
          .map((c) => path.join(this.root, e.name, c.name)),
      ]);
    for (const dir of dirs) {
      let pid: string | undefined;
      try {
        pid = readFileSync(path.join(dir, 'postmaster.pid'), 'utf8').split('\n')[0];
      } catch {
        continue;
      }
      if (binDir && pid) {
        await runCommand(path.join(binDir.dir, 'pg_ctl'), ['stop', '-D', dir, '-m', 'immediate', '-w', '-t', '30'], { runAs }).catch(
          () => undefined,
        );
      }
    }
    rmSync(this.root, { recursive: true, force: true });
    this.#watchdog?.kill('SIGKILL');
  }
}

/**
 * A detached shell that outlives this process: if the process dies without
 * destroy() (a killed test worker, a timed-out CI step), it stops every
 * PostgreSQL server under the sandbox (SIGQUIT: immediate shutdown) and
 * removes the directory, so no stray servers hold ports or disk.
 */
function startWatchdog(root: string): ChildProcess {
  const script = `
parent=$1; root=$2
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
for pidfile in "$root"/*/postmaster.pid "$root"/*/*/postmaster.pid; do
  [ -f "$pidfile" ] && kill -QUIT "$(head -n 1 "$pidfile")" 2>/dev/null
done
sleep 2
rm -rf "$root"`;
  const child = spawn('/bin/sh', ['-c', script, 'sandbox-watchdog', String(process.pid), root], { detached: true, stdio: 'ignore' });
  child.unref();
  return child;
}
