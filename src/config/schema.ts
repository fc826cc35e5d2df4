import { z } from 'zod';
import { parseByteSize } from './byte-size.js';
import { durationSeconds, MAX_BYTE_SIZE, MAX_MIN_TABLES } from './limits.js';
import { quote } from './quote.js';
import { cnpgTargetSchema } from './schema-cnpg.js';
import { maskSchema } from './schema-mask.js';
import { notificationSchema } from './schema-notify.js';
import { safeCopyFields } from './schema-safe-copy.js';
import { jobServiceFields, serverSchema } from './schema-service.js';
import { strategyIssues, strategySchema } from './schema-strategy.js';
import { secretRef } from './secret-ref.js';

/**
 * The config file's schema. Every option carries its default and a one-line
 * description; `db-refresher schema` turns this into JSON Schema for editors.
 * Cross-field rules (duplicate names, target is the source, cron syntax) live
 * in validate.ts so their messages can name both places involved.
 */

export const dnsLabel = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, {
    error: (issue) =>
      `${quote(issue.input)} is not a DNS label (lowercase letters, digits and "-", starting and ending with a letter or digit)`,
  })
  .max(63, { error: 'must be at most 63 characters (a DNS label)' });

const byteSize = z
  .union([z.string(), z.number().max(MAX_BYTE_SIZE, { error: `must be at most ${MAX_BYTE_SIZE} bytes (1 PiB)` })])
  .refine((value) => parseByteSize(value) !== undefined, {
    error: (issue) => `${quote(issue.input)} is not a size; write e.g. 500MB, 10Gi or a number of bytes`,
  })
  .refine((value) => typeof value === 'number' || (parseByteSize(value) ?? 0) <= MAX_BYTE_SIZE, { error: 'must be at most 1 PiB' })
  .describe('A size: a number of bytes, a Kubernetes quantity (10Gi, 500M) or a PostgreSQL unit (500 MB)');

const port = z.number().int().min(1, { error: 'must be a port number 1-65535' }).max(65535, { error: 'must be a port number 1-65535' });

export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;

const sourceSchema = z
  .strictObject({
    host: z.string().min(1).describe('Host name or IP address of the source PostgreSQL server (a primary, not a standby)'),
    port: port.default(5432).describe('Port of the source server'),
    user: z.string().min(1).describe('Role used for the physical copy; it needs REPLICATION and LOGIN'),
    dbname: z.string().min(1).default('postgres').describe('Database used for SQL checks on the source'),
    sslmode: z.enum(SSL_MODES).default('prefer').describe('libpq sslmode for connections to the source'),
    password: secretRef.optional().describe('Password of `user` (password authentication)'),
    sslCert: secretRef.optional().describe('TLS client certificate (PEM) for certificate authentication'),
    sslKey: secretRef.optional().describe('TLS client private key (PEM) matching sslCert'),
    sslRootCert: secretRef.optional().describe('CA certificate (PEM) that signed the server certificate'),
    sql: z
      .strictObject({
        user: z.string().min(1).optional().describe('Role for SQL queries (sizes, table counts); default: `user`'),
        password: secretRef.optional().describe('Password for the SQL role; default: `password`'),
      })
      .optional()
      .describe('Separate credentials for SQL queries, when the replication role may not read the databases'),
  })
  // Downstream code always reads source.sql; fill it from the replication credentials.
  .transform((source) => ({ ...source, sql: { user: source.sql?.user ?? source.user, password: source.sql?.password ?? source.password } }))
  .describe('The live PostgreSQL server to copy');

const localTargetSchema = z
  .strictObject({
    kind: z.literal('local'),
    dataDir: z.string().min(1).describe('Data directory of the copy on this host; relative paths are relative to the config file'),
    port: port.describe('Port the copy listens on'),
    host: z.string().min(1).default('127.0.0.1').describe('Address the copy listens on and that verification connects to'),
    adopt: z
      .boolean()
      .default(false)
      .describe('Allow replacing an existing data directory that db-refresher did not create (it has no marker file)'),
    startTimeoutSeconds: durationSeconds(1, 300, 'How long the copy may take to accept connections'),
    cloneTimeoutSeconds: durationSeconds(1, 6 * 3600, 'How long pg_basebackup may run'),
  })
  .describe('A PostgreSQL data directory on this host, cloned with pg_basebackup and started with pg_ctl');

export const TARGET_KINDS = ['local', 'cnpg'] as const;

const targetSchema = z.discriminatedUnion('kind', [localTargetSchema, cnpgTargetSchema], {
  error: (issue) =>
    issue.code === 'invalid_union' && issue.input && typeof issue.input === 'object' && 'kind' in issue.input
      ? `target kind "${String((issue.input as { kind: unknown }).kind)}" is not supported; use one of: ${TARGET_KINDS.join(', ')}`
      : `target needs a kind (one of: ${TARGET_KINDS.join(', ')})`,
});

const qualifiedTable = z.string().regex(/^[^.\s]+\.[^.\s]+$/, {
  error: (issue) => `${quote(issue.input)} must be written schema.table, e.g. public.users`,
});

const verifiedDatabase = z
  .strictObject({
    name: z.string().min(1).describe('Database name'),
    minTables: z.number().int().min(0).max(MAX_MIN_TABLES).optional().describe('Fail unless the copy has at least this many user tables'),
    minSize: byteSize.optional().describe('Fail unless the copy is at least this large'),
    requiredTables: z.array(qualifiedTable).default([]).describe('Tables (schema.table) that must exist in the copy'),
  })
  .transform((db): typeof db & { minSizeBytes?: number | undefined } => ({
    ...db,
    minSizeBytes: db.minSize === undefined ? undefined : parseByteSize(db.minSize),
  }));

const verifySchema = z
  .strictObject({
    databases: z
      .array(verifiedDatabase)
      .default([])
      .describe('Databases to compare with the source; empty means every database on the source that accepts connections'),
    sizeTolerancePercent: z
      .number()
      .min(0)
      .max(100)
      .default(10)
      .describe('How far the copy size may differ from the source size, in percent'),
    owner: z
      .union([
        z.strictObject({
          user: z.string().min(1).describe('Role that owns the application database'),
          database: z.string().min(1).describe('Database the owner logs in to'),
          password: secretRef.describe("The owner's password on the copy"),
        }),
        z
          .literal('warn')
          .describe(
            "Check the target's own application owner (cnpg: the values' owner and its Secret), but only warn when the database keeps another owner",
          ),
      ])
      .optional()
      .describe('Check that the application owner can log in to the copy and owns the database'),
  })
  .describe('How the copy is verified');

export const jobSchema = z
  .strictObject({
    name: dnsLabel.describe('Job name, a DNS label; it names the run history and the lock'),
    description: z.string().optional().describe('Free text shown in plan output and notifications'),
    schedule: z.string().min(1).optional().describe('Cron expression (5 fields) or @weekly-style nickname; absent means manual only'),
    timezone: z.string().min(1).default('UTC').describe('IANA time zone the schedule is read in, e.g. Europe/Berlin'),
    suspend: z.boolean().default(false).describe('Stop scheduled runs; manual runs still work'),
    source: sourceSchema
      .optional()
      .describe('The live PostgreSQL server to copy; for cnpg jobs it defaults to the externalClusters entry the values name'),
    target: targetSchema,
    strategy: strategySchema,
    verify: verifySchema.prefault({}),
    mask: maskSchema.optional(),
    notify: z.array(z.string().min(1)).default([]).describe('Names of notification targets (see `notifications`)'),
    ...jobServiceFields,
    ...safeCopyFields,
  })
  .superRefine((job, ctx) => {
    if (job.source === undefined && job.target.kind === 'local') {
      ctx.addIssue({ code: 'custom', path: ['source'], message: 'is required' });
    }
    for (const issue of strategyIssues(job.strategy, job.target)) ctx.addIssue({ code: 'custom', ...issue });
  });

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

export const configSchema = z
  .strictObject({
    stateDir: z
      .string()
      .min(1)
      .default('state')
      .describe('Directory for run history and locks; relative paths are relative to the config file'),
    logLevel: z.enum(LOG_LEVELS).default('info').describe('Log level; --log-level overrides it'),
    publicUrl: z
      .url({ error: 'must be an absolute URL, e.g. https://db-refresher.example.com' })
      .optional()
      .describe('Base URL of the HTTP API as people reach it; notifications link to runs under it'),
    server: serverSchema.prefault({}),
    notifications: z.record(dnsLabel, notificationSchema).default({}).describe('Named notification targets that jobs refer to'),
    jobs: z.array(jobSchema).min(1, { error: 'at least one job is required' }).describe('Refresh jobs'),
  })
  .describe('db-refresher configuration');

export type RawConfig = z.output<typeof configSchema>;
export type RawJob = z.output<typeof jobSchema>;
