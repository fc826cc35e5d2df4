import type { LOG_LEVELS, NOTIFY_EVENTS, SSL_MODES } from './schema.js';
import type { Secret } from './secret.js';

/**
 * The loaded, validated and frozen configuration that the rest of the program
 * sees. Paths are absolute and secrets are resolved into `Secret` values.
 */

export type SslMode = (typeof SSL_MODES)[number];
export type LogLevel = (typeof LOG_LEVELS)[number];
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

/** Where and how to log in to a PostgreSQL server. */
export interface PgEndpoint {
  host: string;
  port: number;
  user: string;
  dbname: string;
  sslmode: SslMode;
  password?: Secret | undefined;
  sslCert?: Secret | undefined;
  sslKey?: Secret | undefined;
  sslRootCert?: Secret | undefined;
}

export interface SourceConfig extends PgEndpoint {
  /** Credentials for SQL queries on the source (defaults to the replication credentials). */
  sql: { user: string; password?: Secret | undefined };
}

export interface LocalTargetConfig {
  kind: 'local';
  dataDir: string;
  port: number;
  host: string;
  adopt: boolean;
  startTimeoutSeconds: number;
  cloneTimeoutSeconds: number;
}

export type TargetConfig = LocalTargetConfig;

export interface VerifiedDatabase {
  name: string;
  minTables?: number | undefined;
  minSizeBytes?: number | undefined;
  requiredTables: string[];
}

export interface VerifyConfig {
  databases: VerifiedDatabase[];
  sizeTolerancePercent: number;
  owner?: { user: string; database: string; password: Secret } | undefined;
}

export interface JobConfig {
  name: string;
  description?: string | undefined;
  schedule?: string | undefined;
  timezone: string;
  suspend: boolean;
  source: SourceConfig;
  target: TargetConfig;
  verify: VerifyConfig;
  notify: string[];
}

export interface NotificationTarget {
  name: string;
  kind: 'slack' | 'generic';
  url: Secret;
  secret?: Secret | undefined;
  events: NotifyEvent[];
}

export interface Config {
  /** The file this was loaded from, for messages. */
  path: string;
  stateDir: string;
  logLevel: LogLevel;
  notifications: Record<string, NotificationTarget>;
  jobs: JobConfig[];
}
