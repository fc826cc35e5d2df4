import type { z } from 'zod';
import type { PrepareStep } from './prepare-files.js';
import type { configSchema, jobSchema, LOG_LEVELS, SSL_MODES } from './schema.js';
import type { CnpgValues } from './schema-cnpg.js';
import type { NOTIFY_EVENTS } from './schema-notify.js';
import type { Secret, SecretRef } from './secret.js';

/**
 * The loaded, validated and frozen configuration that the rest of the program
 * sees: the schema's output with every secret reference resolved to a
 * `Secret` and every path made absolute. Deriving it from the schema keeps the
 * two from drifting apart.
 */

/** Replaces every secret reference in T with a resolved Secret. */
export type Resolved<T> = T extends SecretRef
  ? Secret
  : T extends readonly (infer U)[]
    ? Resolved<U>[]
    : T extends object
      ? { [K in keyof T]: Resolved<T[K]> }
      : T;

type RawJob = Resolved<z.output<typeof jobSchema>>;

export type LocalTargetConfig = Extract<RawJob['target'], { kind: 'local' }>;
/** A cnpg target after loading: its values are parsed, from inline values or the values file. */
export type CnpgTargetConfig = Omit<Extract<RawJob['target'], { kind: 'cnpg' }>, 'values'> & { values: CnpgValues };
export type TargetConfig = LocalTargetConfig | CnpgTargetConfig;
export type SourceConfig = NonNullable<RawJob['source']>;

/** A job after loading: the source is always present (for cnpg jobs it may come from the values). */
export type JobConfig = Omit<RawJob, 'source' | 'target' | 'prepare'> & {
  source: SourceConfig;
  target: TargetConfig;
  prepare: PrepareStep[];
};

export type Config = Omit<Resolved<z.output<typeof configSchema>>, 'jobs'> & {
  /** The file this was loaded from, for messages. */
  path: string;
  jobs: JobConfig[];
};

export type VerifyConfig = JobConfig['verify'];
export type TestRole = JobConfig['roles'][number];
export type NeutraliseSettings = JobConfig['neutralise'];
export type MaskConfig = NonNullable<JobConfig['mask']>;
export type VerifiedDatabase = VerifyConfig['databases'][number];
export type NotificationTarget = Config['notifications'][string];

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
