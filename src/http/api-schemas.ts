import { z } from 'zod';
import { RUN_STATUSES } from '../run/record.js';

/**
 * The shapes the API answers with, as zod schemas: /openapi.json is generated
 * from them (with the request schemas the routes validate with), the job list
 * is serialized through them, and the contract test validates real responses
 * against the generated document. Objects are open (extra fields are allowed):
 * within /api/v1 fields are only added, never removed or retyped.
 */

const timestamp = z.string().describe('ISO 8601 timestamp (UTC)');
const runId = z
  .string()
  .regex(/^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{6}$/)
  .describe('run id: creation time and a random suffix');
const runStatus = z.enum(RUN_STATUSES);

export const ErrorResponse = z
  .looseObject({
    error: z.string().describe('machine-readable code, e.g. job-not-found'),
    message: z.string().describe('what is wrong and what to do'),
  })
  .meta({ id: 'Error' });

export const Progress = z
  .looseObject({ at: timestamp })
  .describe(
    'the latest progress the target reported: {percent, copiedBytes, totalBytes} while a local copy clones (pg_basebackup --progress); while a CloudNativePG copy starts, the Cluster {phase} when it changes and, while its clone Job copies, {backupPhase, percent, copiedBytes, totalBytes, etaMs} from pg_stat_progress_basebackup on the source',
  )
  .meta({ id: 'Progress' });

const Trigger = z
  .looseObject({
    kind: z.enum(['cli', 'http', 'schedule', 'catch-up']),
    by: z.string().optional(),
    reason: z.string().optional(),
    scheduledFor: timestamp.optional(),
    schedule: z.string().optional(),
    timezone: z.string().optional(),
  })
  .meta({ id: 'Trigger' });

const Cancelled = z.looseObject({ by: z.string(), at: timestamp, reason: z.string().optional() }).meta({ id: 'Cancellation' });

export const RunSummary = z
  .looseObject({
    id: runId,
    job: z.string(),
    status: runStatus,
    dryRun: z.boolean(),
    trigger: Trigger,
    createdAt: timestamp,
    startedAt: timestamp.optional(),
    finishedAt: timestamp.optional(),
    durationMs: z.number().optional(),
    phase: z.string().optional().describe('the phase under way, or the last one reached'),
    error: z.looseObject({ phase: z.string(), class: z.string(), message: z.string() }).optional(),
    skip: z.looseObject({ reason: z.enum(['overlap', 'suspended', 'missed']), detail: z.string().optional() }).optional(),
    paused: z.looseObject({ at: timestamp, reason: z.string(), nextPhase: z.string() }).optional(),
    snapshotTakenAt: timestamp.optional(),
    downtimeMs: z.number().optional(),
    cancelled: Cancelled.optional(),
  })
  .meta({ id: 'RunSummary' });

const Check = z.looseObject({
  name: z.string(),
  ok: z.boolean(),
  message: z.string(),
  failureClass: z.string().optional(),
  severity: z.enum(['error', 'warning']).optional(),
});

const Figures = z.looseObject({
  database: z.string(),
  sizeBytes: z.number(),
  owner: z.string(),
  tablesBySchema: z.record(z.string(), z.number()),
  presentTables: z.array(z.string()).optional(),
});

const LiveRun = z.looseObject({ phase: z.string().optional(), progress: Progress.optional() }).meta({ id: 'LiveRun' });

export const RunRecordResponse = z
  .looseObject({
    schemaVersion: z.literal(1),
    id: runId,
    job: z.string(),
    trigger: Trigger,
    dryRun: z.boolean(),
    status: runStatus,
    createdAt: timestamp,
    startedAt: timestamp.optional(),
    finishedAt: timestamp.optional(),
    durationMs: z.number().optional(),
    source: z.looseObject({ host: z.string(), port: z.number(), user: z.string() }),
    target: z.looseObject({ kind: z.string(), summary: z.string(), details: z.record(z.string(), z.unknown()) }),
    phases: z.array(
      z.looseObject({
        name: z.string(),
        status: z.enum(['pending', 'running', 'succeeded', 'failed', 'skipped']),
        startedAt: timestamp.optional(),
        finishedAt: timestamp.optional(),
        durationMs: z.number().optional(),
        detail: z.record(z.string(), z.unknown()).optional(),
        reason: z.string().optional(),
      }),
    ),
    preflight: z.array(Check).optional(),
    snapshot: z.looseObject({ takenAt: timestamp, databases: z.array(Figures) }).optional(),
    verification: z
      .looseObject({
        ok: z.boolean(),
        databases: z.array(
          z.looseObject({ database: z.string(), source: Figures.optional(), copy: Figures.optional(), checks: z.array(Check) }),
        ),
        checks: z.array(Check),
      })
      .optional(),
    error: z
      .looseObject({ phase: z.string(), class: z.string(), message: z.string(), hint: z.string(), details: z.array(z.string()).optional() })
      .optional(),
    skip: z.looseObject({ reason: z.string(), detail: z.string().optional() }).optional(),
    paused: z.looseObject({ at: timestamp, reason: z.string(), nextPhase: z.string() }).optional(),
    resumed: z.array(z.looseObject({ at: timestamp, fromPhase: z.string() })).optional(),
    cancelled: Cancelled.optional(),
    compacted: z.boolean().optional(),
    live: LiveRun.optional().describe('while the run holds its job: the phase under way and the latest progress'),
    links: z.looseObject({ self: z.string(), job: z.string() }),
  })
  .meta({ id: 'RunRecord' });

export const JobListItemSchema = z
  .looseObject({
    name: z.string(),
    schedule: z.string().nullable(),
    timezone: z.string(),
    suspended: z.boolean().describe('suspended now: set through the API, else the config'),
    targetKind: z.string(),
    nextRunAt: timestamp.nullable(),
    current: z
      .looseObject({
        id: z.string(),
        status: runStatus,
        phase: z.string().nullable(),
        phaseStartedAt: timestamp.nullable(),
        progress: Progress.nullable(),
      })
      .nullable(),
    lastRun: z
      .looseObject({
        id: z.string(),
        status: runStatus,
        dryRun: z.boolean(),
        finishedAt: timestamp.nullable(),
        durationMs: z.number().nullable(),
        downtimeMs: z.number().nullable(),
        errorClass: z.string().nullable(),
      })
      .nullable(),
    dataTakenAt: timestamp.nullable().describe('source snapshot time of the last successful refresh: how old the copy is'),
  })
  .meta({ id: 'JobListItem' });

export const JobListResponse = z.looseObject({
  jobs: z.array(JobListItemSchema),
  total: z.number().int(),
  nextCursor: z.string().nullable(),
});

const Suspension = z
  .looseObject({ suspended: z.boolean(), by: z.string(), at: timestamp, reason: z.string().optional() })
  .meta({ id: 'Suspension' });

const CurrentRun = z
  .looseObject({
    id: z.string(),
    status: runStatus,
    phase: z.string().optional(),
    phaseStartedAt: timestamp.optional(),
    progress: Progress.optional(),
  })
  .meta({ id: 'CurrentRun' });

export const JobDetailResponse = z
  .looseObject({
    name: z.string(),
    description: z.string().nullable(),
    schedule: z.string().nullable(),
    timezone: z.string(),
    suspended: z.boolean(),
    suspension: Suspension.nullable(),
    allowManualWhenSuspended: z.boolean(),
    startingDeadlineSeconds: z.number(),
    source: z.looseObject({ host: z.string(), port: z.number() }),
    target: z.looseObject({ kind: z.string(), summary: z.string() }),
    nextRuns: z.array(timestamp),
    warnings: z.array(z.string()),
    current: CurrentRun.nullable(),
    lastRun: RunSummary.nullable(),
    lastSuccess: RunSummary.nullable(),
    links: z.looseObject({ runs: z.string() }),
  })
  .meta({ id: 'JobDetail' });

export const RunListResponse = z.looseObject({ runs: z.array(RunSummary), nextCursor: z.string().nullable() });

export const RunAccepted = z.looseObject({ run: RunSummary, links: z.looseObject({ self: z.string() }) });

export const CancelAccepted = z.looseObject({
  run: RunSummary,
  message: z.string().describe('what happens next, e.g. that the copy is down after teardown in recreate mode'),
  links: z.looseObject({ self: z.string() }),
});

export const SuspensionResponse = z.looseObject({ job: z.string(), suspended: z.boolean(), suspension: Suspension });

export const WhoAmIResponse = z.looseObject({
  name: z.string().describe("the token's name from server.tokens"),
  readOnly: z.boolean(),
  actions: z
    .looseObject({
      trigger: z.boolean().optional(),
      cancel: z.boolean().optional(),
      suspend: z.boolean().optional(),
      rollback: z.string().optional().describe('the rollback route, once blue/green exists'),
    })
    .describe('what this token may do; empty for a read-only token'),
});

export const HealthResponse = z.looseObject({ status: z.literal('ok') });
export const ReadyResponse = z.looseObject({
  status: z.enum(['ready', 'not-ready']),
  checks: z.record(z.string(), z.looseObject({ ok: z.boolean(), message: z.string().optional() })),
});

/** JSON Schema of a response, for fastify's serializer (no $schema/$defs wrapper problems: ids are inlined). */
export function serializerSchema(schema: z.ZodType): Record<string, unknown> {
  const json = z.toJSONSchema(schema, { target: 'draft-2020-12', reused: 'inline', io: 'output', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  delete json.$schema;
  return json;
}
