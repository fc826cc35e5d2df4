/**
 * The clone's PostgreSQL: the configuration CNPG writes after pg_basebackup (§2.3), starting and
 * stopping it with the real server binaries, and the SQL CNPG runs on it (§2.4). The simulator reaches
 * it as superuser through a Unix socket in a private folder, as CNPG's instance manager does
 * (`local all all peer map=local`); clients reach it over TCP on a loopback port.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { chownSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { runCommand } from '../../src/postgres/command.js';
import type { OsUser } from '../../src/postgres/os-user.js';

export interface PgRuntime {
  /** Folder with pg_ctl, postgres, pg_basebackup. */
  binDir: string;
  major: number;
  /** The OS user the server programs run as (undefined when not running as root). */
  runAs: OsUser | undefined;
}

/** The environment for PostgreSQL programs: no PG* variable of the test process leaks into them. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PG')) env[key] = value;
  }
  return env;
}

export function chownTo(path: string, user: OsUser | undefined): void {
  if (user) chownSync(path, user.uid, user.gid);
}

export interface ConfOptions {
  clusterName: string;
  port: number;
  /** '' disables TCP (while the Job configures the clone). */
  listenAddresses: string;
  socketDir: string;
  ssl?: { certFile: string; keyFile: string; caFile: string };
}

const q = (value: string): string => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;

/**
 * Replaces the cloned postgresql.conf, as CNPG's WriteInitialPostgresqlConf does. Differences from a
 * real instance: a loopback port instead of 5432 on the Pod IP, a private socket folder, no WAL
 * archiving, and fsync off (the data lives as long as a test).
 */
export function buildPostgresqlConf(o: ConfOptions): string {
  const lines = [
    '# Written by the simulated CloudNativePG operator (test/cnpg-sim), standing for the file CNPG generates.',
    `cluster_name = ${q(o.clusterName)}`,
    `listen_addresses = ${q(o.listenAddresses)}`,
    `port = ${o.port}`,
    `unix_socket_directories = ${q(o.socketDir)}`,
    `unix_socket_permissions = 0700`,
    'max_connections = 50',
    "shared_buffers = '32MB'",
    'dynamic_shared_memory_type = posix',
    'max_wal_senders = 10',
    'max_replication_slots = 10',
    'wal_level = replica',
    'hot_standby = on',
    'archive_mode = off',
    'fsync = off',
    'synchronous_commit = off',
    "password_encryption = 'scram-sha-256'",
    "log_destination = 'stderr'",
    'logging_collector = off',
    "shared_preload_libraries = ''",
  ];
  if (o.ssl) {
    lines.push(
      'ssl = on',
      `ssl_cert_file = ${q(o.ssl.certFile)}`,
      `ssl_key_file = ${q(o.ssl.keyFile)}`,
      `ssl_ca_file = ${q(o.ssl.caFile)}`,
    );
  } else {
    lines.push('ssl = off');
  }
  // CNPG's postgresql.conf includes custom.conf, written from the spec (instance-config.ts, §10.1).
  lines.push("include_if_exists = 'custom.conf'");
  return `${lines.join('\n')}\n`;
}

/**
 * 'restore' is WriteRestoreHbaConf (local only). 'instance' is CNPG's default pg_hba: certificates for
 * streaming_replica, scram-sha-256 for everybody else; `local ... trust` stands for CNPG's
 * `local all all peer map=local` on a socket only the simulator can reach.
 */
export function buildPgHba(mode: 'restore' | 'instance'): string {
  const lines = ['# Written by the simulated CloudNativePG operator (test/cnpg-sim).', 'local all all trust'];
  if (mode === 'instance') {
    lines.push(
      'hostssl postgres streaming_replica all cert',
      'hostssl replication streaming_replica all cert',
      'host all all all scram-sha-256',
    );
  }
  return `${lines.join('\n')}\n`;
}

export function writeConfiguration(dataDir: string, conf: string, hba: string, runAs: OsUser | undefined): void {
  for (const [file, text] of [
    ['postgresql.conf', conf],
    ['pg_hba.conf', hba],
  ] as const) {
    const path = join(dataDir, file);
    writeFileSync(path, text, { mode: 0o600 });
    chownTo(path, runAs);
  }
}

/** Postmasters started here and still running: a last-resort SIGQUIT (immediate shutdown) on exit. */
const running = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const dataDir of running) {
      const pid = postmasterPid(dataDir);
      if (pid) {
        try {
          process.kill(pid, 'SIGQUIT');
        } catch {
          // Already gone.
        }
      }
    }
  });
}

function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export class PgServer {
  readonly dataDir: string;
  readonly logFile: string;
  readonly #rt: PgRuntime;

  constructor(rt: PgRuntime, dataDir: string, logFile: string) {
    this.#rt = rt;
    this.dataDir = dataDir;
    this.logFile = logFile;
  }

  async start(signal?: AbortSignal): Promise<void> {
    installExitHook();
    running.add(this.dataDir);
    const result = await runCommand(
      join(this.#rt.binDir, 'pg_ctl'),
      ['start', '-D', this.dataDir, '-w', '-t', '60', '-s', '-l', this.logFile],
      {
        runAs: this.#rt.runAs,
        env: cleanEnv(),
        ...(signal ? { signal } : {}),
      },
    );
    if (result.exitCode !== 0) {
      running.delete(this.dataDir);
      throw new Error(`PostgreSQL did not start: ${[...result.tail, ...this.logTail(5)].join('\n')}`);
    }
  }

  /** pg_ctl stop; immediate mode is what stop() of the simulator uses. Quiet when not running. */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!existsSync(join(this.dataDir, 'postmaster.pid'))) {
      running.delete(this.dataDir);
      return;
    }
    await runCommand(join(this.#rt.binDir, 'pg_ctl'), ['stop', '-D', this.dataDir, '-m', mode, '-w', '-t', '60', '-s'], {
      runAs: this.#rt.runAs,
      env: cleanEnv(),
    });
    running.delete(this.dataDir);
  }

  logTail(lines: number): string[] {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines);
    } catch {
      return [];
    }
  }
}

/** A superuser session over the private socket. */
export async function withSuperuser<T>(
  socketDir: string,
  port: number,
  fn: (client: pg.Client) => Promise<T>,
  database = 'postgres',
): Promise<T> {
  const client = new pg.Client({ host: socketDir, port, user: 'postgres', database });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Waits until the server accepts connections and is out of recovery (ConfigureInstanceAfterRestore). */
export async function waitUntilPrimary(socketDir: string, port: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const inRecovery = await withSuperuser(
        socketDir,
        port,
        async (c) => (await c.query('SELECT pg_is_in_recovery() AS r')).rows[0]?.r === true,
      );
      if (!inRecovery) return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) throw new Error('PostgreSQL stayed in recovery');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const ident = (name: string): string => `"${name.replace(/"/g, '""')}"`;
const literal = (value: string): string => `'${value.replace(/'/g, "''")}'`;

/** The SCRAM-SHA-256 verifier CNPG computes client-side before ALTER ROLE ... PASSWORD. */
export function scramVerifier(password: string, salt = randomBytes(16), iterations = 4096): string {
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

async function roleExists(client: pg.Client, role: string): Promise<boolean> {
  return (await client.query('SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1', [role])).rowCount === 1;
}

/**
 * ConfigureNewInstance (§2.4), run by the Job: the owner role (LOGIN, no password) if missing, the
 * database (OWNER owner) only if missing. An existing database keeps its owner.
 */
export async function configureNewInstance(client: pg.Client, opts: { database: string; owner: string }): Promise<string[]> {
  const done: string[] = [];
  if (!(await roleExists(client, opts.owner))) {
    await client.query(`CREATE ROLE ${ident(opts.owner)} LOGIN`);
    done.push(`CREATE ROLE ${ident(opts.owner)} LOGIN`);
  }
  const exists = (await client.query('SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1', [opts.database])).rowCount === 1;
  if (!exists) {
    await client.query(`CREATE DATABASE ${ident(opts.database)} OWNER ${ident(opts.owner)}`);
    done.push(`CREATE DATABASE ${ident(opts.database)} OWNER ${ident(opts.owner)}`);
  }
  return done;
}

/** The instance manager's roles (§2.4): streaming_replica (LOGIN REPLICATION, pg_rewind grants) and cnpg_metrics_exporter. */
export async function ensureOperatorRoles(client: pg.Client): Promise<void> {
  if (await roleExists(client, 'streaming_replica')) {
    await client.query('ALTER ROLE streaming_replica WITH LOGIN REPLICATION');
  } else {
    await client.query('CREATE ROLE streaming_replica WITH LOGIN REPLICATION');
    await client.query("COMMENT ON ROLE streaming_replica IS 'Special user for streaming replication created by CloudNativePG'");
  }
  for (const fn of [
    'pg_catalog.pg_ls_dir(text, boolean, boolean)',
    'pg_catalog.pg_stat_file(text, boolean)',
    'pg_catalog.pg_read_binary_file(text)',
    'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)',
  ]) {
    await client.query(`GRANT EXECUTE ON FUNCTION ${fn} TO streaming_replica`);
  }
  if (!(await roleExists(client, 'cnpg_metrics_exporter'))) {
    await client.query('CREATE ROLE cnpg_metrics_exporter WITH LOGIN');
  }
  await client.query('GRANT pg_monitor TO cnpg_metrics_exporter');
}

/** DisableSuperuserPassword: `ALTER ROLE postgres WITH PASSWORD NULL` when a password is set. */
export async function disableSuperuserPassword(client: pg.Client): Promise<boolean> {
  const row = (await client.query("SELECT rolpassword IS NOT NULL AS set FROM pg_catalog.pg_authid WHERE rolname = 'postgres'")).rows[0];
  if (!row?.set) return false;
  await client.query('ALTER ROLE postgres WITH PASSWORD NULL');
  return true;
}

/** `ALTER ROLE "<role>" WITH PASSWORD '<verifier>'`; the literal password with passthrough. */
export async function setRolePassword(client: pg.Client, role: string, password: string, passthrough: boolean): Promise<void> {
  const value = passthrough ? password : scramVerifier(password);
  await client.query(`ALTER ROLE ${ident(role)} WITH PASSWORD ${literal(value)}`);
}

/** The system identifier and timeline of a running instance (status.systemID, status.timelineID). */
export async function controlInfo(client: pg.Client): Promise<{ systemId: string; timeline: number }> {
  const row = (
    await client.query(
      'SELECT system_identifier::text AS id, (SELECT timeline_id FROM pg_control_checkpoint()) AS tli FROM pg_control_system()',
    )
  ).rows[0];
  return { systemId: String(row?.id ?? ''), timeline: Number(row?.tli ?? 1) };
}
