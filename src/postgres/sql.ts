import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';
import type { PgEndpoint } from '../config/types.js';
import type { SqlConnector, SqlSession, SystemIdentity } from '../ports.js';

/**
 * The only module that imports pg. It turns a PgEndpoint (host, credentials,
 * sslmode, TLS material) into connections, following libpq's sslmode meanings
 * so that db-refresher and pg_basebackup agree on what is allowed.
 */

const CONNECT_TIMEOUT_MS = 10_000;
const STATEMENT_TIMEOUT_MS = 300_000;
const CONNECT_DEADLINE_MS = CONNECT_TIMEOUT_MS + 5_000;

function tlsOptions(endpoint: PgEndpoint): ConnectionOptions {
  const options: ConnectionOptions = {};
  if (endpoint.sslCert) options.cert = endpoint.sslCert.reveal();
  if (endpoint.sslKey) options.key = endpoint.sslKey.reveal();
  if (endpoint.sslRootCert) options.ca = endpoint.sslRootCert.reveal();
  switch (endpoint.sslmode) {
    case 'verify-full':
      // pg passes the host as servername (unless it is an IP), so Node checks the name or IP SAN.
      options.rejectUnauthorized = true;
      break;
    case 'verify-ca':
      options.rejectUnauthorized = true;
      // verify-ca checks the chain, not the name.
      options.checkServerIdentity = () => undefined;
      break;
    default:
      options.rejectUnauthorized = false;
  }
  return options;
}

function clientConfig(endpoint: PgEndpoint, database: string, useTls: boolean, replication: boolean): pg.ClientConfig {
  return {
    host: endpoint.host,
    port: endpoint.port,
    user: endpoint.user,
    database,
    ...(endpoint.password ? { password: endpoint.password.reveal() } : {}),
    ssl: useTls ? tlsOptions(endpoint) : false,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    application_name: 'db-refresher',
    ...(replication ? { replication: true } : { statement_timeout: STATEMENT_TIMEOUT_MS }),
  } as pg.ClientConfig;
}

function isNoTlsAtServer(error: unknown): boolean {
  return error instanceof Error && /does not support SSL/i.test(error.message);
}

function isTlsRequiredByServer(error: unknown): boolean {
  // pg_hba has only hostssl lines for us: libpq's "allow" retries with TLS.
  return error instanceof Error && /no pg_hba\.conf entry.*no encryption|SSL off/i.test(error.message);
}

// Loaded on first use: `serve` spends most of its life idle, and pg is resident memory it needs
// only while a refresh runs.
let pgModule: Promise<typeof pg> | undefined;
function loadPg(): Promise<typeof pg> {
  pgModule ??= import('pg').then((m) => m.default);
  return pgModule;
}

/**
 * Ends a client that failed to connect, waiting at most `ms`. The wait's timer is cleared
 * when end() wins: a pending timer keeps the event loop alive, and the CLI would sit for a
 * second after its last record (every "prefer" connection to a server without TLS comes here).
 */
async function endWithin(client: pg.Client, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.end().catch(() => undefined),
      new Promise((resolve) => {
        timer = setTimeout(resolve, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function connect(endpoint: PgEndpoint, database: string, replication: boolean): Promise<pg.Client> {
  const { Client } = await loadPg();
  const attempt = async (useTls: boolean) => {
    const client = new Client(clientConfig(endpoint, database, useTls, replication));
    // An idle client whose server goes away emits 'error'; without a listener that kills the process.
    client.on('error', () => undefined);
    let timer: NodeJS.Timeout | undefined;
    try {
      // pg's own connectionTimeoutMillis does not cover every stall (seen: a TLS alert under load left
      // connect() pending for minutes), so the whole attempt also has a deadline of its own.
      await Promise.race([
        client.connect(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(`timeout expired: no connection to ${endpoint.host}:${endpoint.port} within ${CONNECT_DEADLINE_MS / 1000} s`),
              ),
            CONNECT_DEADLINE_MS,
          );
        }),
      ]);
      return client;
    } catch (error) {
      await endWithin(client, 1000);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  };
  switch (endpoint.sslmode) {
    case 'disable':
      return attempt(false);
    case 'allow':
      try {
        return await attempt(false);
      } catch (error) {
        if (isTlsRequiredByServer(error)) return attempt(true);
        throw error;
      }
    case 'prefer':
      try {
        return await attempt(true);
      } catch (error) {
        if (isNoTlsAtServer(error)) return attempt(false);
        throw error;
      }
    default:
      return attempt(true);
  }
}

export class PgConnector implements SqlConnector {
  async withSession<T>(endpoint: PgEndpoint, database: string, fn: (session: SqlSession) => Promise<T>): Promise<T> {
    const client = await connect(endpoint, database, false);
    try {
      return await fn({
        query: async <Row extends Record<string, unknown>>(text: string, params?: unknown[]) =>
          (await client.query(text, params)).rows as Row[],
        script: async (text: string) => {
          // Without parameters pg uses the simple protocol; a multi-statement script returns one result per statement.
          const result = (await client.query(text)) as pg.QueryResult | pg.QueryResult[];
          return (Array.isArray(result) ? result : [result]).map((r) => ({ command: r.command, rowCount: r.rowCount }));
        },
        execute: async (text: string, params?: unknown[]) => (await client.query(text, params)).rowCount ?? 0,
        backendPid: () => (client as unknown as { processID?: number }).processID,
      });
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async identifySystem(endpoint: PgEndpoint): Promise<SystemIdentity> {
    const client = await connect(endpoint, endpoint.dbname, true);
    try {
      // Simple-protocol query: the replication protocol has no extended protocol.
      const result = await client.query('IDENTIFY_SYSTEM');
      const row = result.rows[0] as { systemid: string; timeline: number; xlogpos: string };
      return { systemIdentifier: String(row.systemid), timeline: Number(row.timeline), walPosition: String(row.xlogpos) };
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}
