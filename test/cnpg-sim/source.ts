/**
 * The connection to an `externalClusters` entry, as `pkg/management/external` builds it (§2.3 step 4):
 * the SecretKeySelectors are read through the API and dumped to files (the password as a passfile),
 * and a libpq conninfo is assembled for pg_basebackup. The IDENTIFY_SYSTEM probe of
 * `waitForStreamingConnectionAvailable` runs on a physical replication connection (node-postgres with
 * `replication=true`), with libpq's sslmode rules, and its errors are worded like pgx's.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { type ConnectionOptions, checkServerIdentity } from 'node:tls';
import pg from 'pg';
import type { OsUser } from '../../src/postgres/os-user.js';
import type { Kube, Obj } from './kube.js';
import { chownTo } from './postgres.js';

/** Where a source really is, for tests whose manifests name hosts that do not resolve here. */
export type SourceResolver = (address: { host: string; port: number }) => { host: string; port: number } | undefined;

export class SourceSecretError extends Error {}

export interface SourceConnection {
  /** The conninfo given to `pg_basebackup -d` (secrets appear as file paths only). */
  conninfo: string;
  params: Record<string, string>;
  password: string | undefined;
  tls: { cert?: string; key?: string; ca?: string };
  /** Where the probe dials (hostaddr when a resolver mapped the host). */
  dial: { host: string; port: number };
}

const conninfoValue = (value: string): string =>
  /^[^\s'\\]+$/.test(value) ? value : `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
const passfileField = (value: string): string => value.replace(/\\/g, '\\\\').replace(/:/g, '\\:');

async function readSelector(kube: Kube, namespace: string, selector: Obj): Promise<string | undefined> {
  const name = String(selector.name ?? '');
  const key = String(selector.key ?? '');
  const secret = await kube.getOrNull('secrets', namespace, name);
  if (!secret) {
    if (selector.optional) return undefined;
    throw new SourceSecretError(`secrets "${name}" not found`);
  }
  const value = secret.data?.[key];
  if (value === undefined) {
    if (selector.optional) return undefined;
    throw new SourceSecretError(`missing key ${key} in secret ${name}`);
  }
  return Buffer.from(String(value), 'base64').toString('utf8');
}

/**
 * Reads the secrets and writes `<dir>/<secret>_<key>` files and `<dir>/pgpass`, owned by the user
 * pg_basebackup runs as (libpq ignores a passfile or key others can read).
 */
export async function prepareSourceConnection(
  kube: Kube,
  namespace: string,
  external: Obj,
  dir: string,
  runAs: OsUser | undefined,
  resolve?: SourceResolver,
): Promise<SourceConnection> {
  // Parents stay 0755 (a recursive mkdir would give them the mode too, and the OS user must pass through).
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o700);
  chownTo(dir, runAs);
  const params: Record<string, string> = {};
  for (const [key, value] of Object.entries((external.connectionParameters ?? {}) as Record<string, unknown>)) {
    params[key] = String(value);
  }
  const writeFile = (name: string, content: string): string => {
    const path = join(dir, name);
    writeFileSync(path, content, { mode: 0o600 });
    chownTo(path, runAs);
    return path;
  };
  const tls: SourceConnection['tls'] = {};
  for (const [field, param, slot] of [
    ['sslCert', 'sslcert', 'cert'],
    ['sslKey', 'sslkey', 'key'],
    ['sslRootCert', 'sslrootcert', 'ca'],
  ] as const) {
    const selector = external[field] as Obj | undefined;
    if (!selector) continue;
    const content = await readSelector(kube, namespace, selector);
    if (content === undefined) continue;
    params[param] = writeFile(`${selector.name}_${selector.key}`, content);
    tls[slot] = content;
  }
  let password: string | undefined;
  if (external.password) {
    password = await readSelector(kube, namespace, external.password as Obj);
    if (password !== undefined) params.passfile = writeFile('pgpass', `*:*:*:*:${passfileField(password)}\n`);
  }
  const host = params.host ?? 'localhost';
  const port = Number(params.port ?? 5432);
  const mapped = resolve?.({ host, port });
  if (mapped) {
    params.hostaddr = mapped.host;
    params.port = String(mapped.port);
  }
  params.options ??= '-c wal_sender_timeout=0s';
  const conninfo = Object.entries(params)
    .map(([k, v]) => `${k}=${conninfoValue(v)}`)
    .join(' ');
  return { conninfo, params, password, tls, dial: { host: mapped?.host ?? host, port: mapped?.port ?? port } };
}

type SslAttempt = false | ConnectionOptions;

/** libpq's sslmode rules as a list of connection attempts (prefer/allow fall back). */
function sslAttempts(conn: SourceConnection): SslAttempt[] | string {
  const mode = conn.params.sslmode ?? 'prefer';
  const host = conn.params.host ?? 'localhost';
  const base: ConnectionOptions = {};
  if (conn.tls.cert) base.cert = conn.tls.cert;
  if (conn.tls.key) base.key = conn.tls.key;
  const noVerify: ConnectionOptions = { ...base, rejectUnauthorized: false };
  const verifyCa: ConnectionOptions = { ...base, rejectUnauthorized: true, checkServerIdentity: () => undefined };
  if (conn.tls.ca) verifyCa.ca = conn.tls.ca;
  const verifyFull: ConnectionOptions = { ...verifyCa, checkServerIdentity: (_name, cert) => checkServerIdentity(host, cert) };
  if (isIP(host) === 0) verifyFull.servername = host;
  switch (mode) {
    case 'disable':
      return [false];
    case 'allow':
      return [false, noVerify];
    case 'prefer':
      return [noVerify, false];
    case 'require':
      return [conn.tls.ca ? verifyCa : noVerify];
    case 'verify-ca':
    case 'verify-full':
      if (!conn.tls.ca) return `sslmode ${mode} requires a root certificate (sslrootcert)`;
      return [mode === 'verify-ca' ? verifyCa : verifyFull];
    default:
      return `invalid sslmode value: "${mode}"`;
  }
}

/** pgx v5's ConnectError wording, e.g. "failed to connect to `user=u database=d`: 127.0.0.1:5432 (host): server error: FATAL: … (SQLSTATE 28P01)". */
export function pgxError(conn: SourceConnection, errors: readonly unknown[]): string {
  const user = conn.params.user ?? '';
  const database = conn.params.dbname ?? '';
  const { host: dialHost, port } = conn.dial;
  const original = conn.params.host ?? dialHost;
  const details = errors.map((err) => {
    const e = err as { code?: string; severity?: string; message?: string };
    if (e.severity && e.code && /^[0-9A-Z]{5}$/.test(e.code)) {
      return `${dialHost}:${port} (${original}): server error: ${e.severity}: ${e.message} (SQLSTATE ${e.code})`;
    }
    switch (e.code) {
      case 'ECONNREFUSED':
        return `${dialHost}:${port} (${original}): dial error: dial tcp ${dialHost}:${port}: connect: connection refused`;
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return `hostname resolving error: lookup ${dialHost}: no such host`;
      case 'ETIMEDOUT':
        return `${dialHost}:${port} (${original}): dial error: dial tcp ${dialHost}:${port}: i/o timeout`;
      default:
        break;
    }
    const message = e.message ?? String(err);
    if (/SSL|TLS|certificate|self[- ]signed|altnames/i.test(message)) {
      const text = message === 'The server does not support SSL connections' ? 'server refused TLS connection' : message;
      return `${dialHost}:${port} (${original}): tls error: ${text}`;
    }
    return `${dialHost}:${port} (${original}): ${message}`;
  });
  // A server refusing TLS under sslmode=prefer/allow is the fallback working, not a failure; repeats say nothing new.
  const refused = (d: string): boolean => d.endsWith('tls error: server refused TLS connection');
  const shown = [...new Set(details.some((d) => !refused(d)) ? details.filter((d) => !refused(d)) : details)];
  const prefix = `failed to connect to \`user=${user} database=${database}\`:`;
  return shown.length === 1 ? `${prefix} ${shown[0]}` : `${prefix}\n\t${shown.join('\n\t')}`;
}

export interface ProbeResult {
  /** The open replication connection; CNPG's pool keeps it (and its walsender slot) until the clone ends (§6.2). */
  client: pg.Client;
  serverVersionNum: number;
  serverVersion: string;
  systemId: string;
}

export class ProbeError extends Error {}

/** One IDENTIFY_SYSTEM attempt on a physical replication connection. */
export async function probeSource(conn: SourceConnection): Promise<ProbeResult> {
  const attempts = sslAttempts(conn);
  if (typeof attempts === 'string') throw new ProbeError(`cannot parse \`${conn.conninfo}\`: ${attempts}`);
  const timeoutSeconds = Number(conn.params.connect_timeout ?? 0);
  const errors: unknown[] = [];
  for (const ssl of attempts) {
    // node-postgres sends `replication` as a startup parameter; its typings do not list it.
    const config: pg.ClientConfig & { replication: string } = {
      host: conn.dial.host,
      port: conn.dial.port,
      user: conn.params.user ?? 'postgres',
      database: conn.params.dbname ?? conn.params.user ?? 'postgres',
      ...(conn.password !== undefined ? { password: conn.password } : {}),
      replication: 'true',
      options: conn.params.options,
      ...(conn.params.application_name ? { application_name: conn.params.application_name } : {}),
      connectionTimeoutMillis: timeoutSeconds > 0 ? timeoutSeconds * 1000 : 30_000,
      ssl,
    };
    const client = new pg.Client(config);
    client.on('error', () => undefined);
    try {
      await client.connect();
      const identify = (await client.query('IDENTIFY_SYSTEM')).rows[0] as Obj | undefined;
      const num = Number((await client.query('SHOW server_version_num')).rows[0]?.server_version_num);
      const text = String((await client.query('SHOW server_version')).rows[0]?.server_version ?? '');
      return { client, serverVersionNum: num, serverVersion: text, systemId: String(identify?.systemid ?? '') };
    } catch (err) {
      errors.push(err);
      await client.end().catch(() => undefined);
    }
  }
  throw new ProbeError(pgxError(conn, errors));
}
