import { z } from 'zod';
import { NOTIFY_EVENTS } from '../../config/schema-notify.js';
import { FAILURE_CLASSES } from '../../failures.js';
import { PHASES, RUN_STATUSES } from '../../run/record.js';
import type { MessageFacts } from './message.js';

/**
 * The generic webhook envelope: one JSON object per notification, for other
 * systems. The zod schema below is the contract: renderGeneric() output is
 * checked against it in tests, and src/notify/generic-envelope.schema.json is
 * generated from it (genericEnvelopeJsonSchema) and kept equal by a test.
 *
 * Stability: within schemaVersion 1, fields are only ever added, never
 * removed, renamed or retyped; receivers must ignore fields they do not know.
 * Every documented field is always present; a fact that does not apply is
 * null rather than absent.
 */

export const GENERIC_SCHEMA_VERSION = 1;
export const GENERIC_SCHEMA_ID = 'https://db-refresher.dev/schemas/generic-envelope.v1.json';

const timestamp = z.iso.datetime().describe('RFC 3339 time in UTC, e.g. 2025-01-05T02:00:00.000Z');
const count = z.number().int().nonnegative();
const milliseconds = count.describe('Milliseconds');

const figures = z
  .object({
    sizeBytes: count.describe('Size of the database in bytes (pg_database_size)'),
    tables: count.describe('User tables (ordinary and partitioned), all schemas'),
  })
  .describe('Figures of one database');

const trigger = z
  .object({
    kind: z.enum(['cli', 'http', 'schedule', 'catch-up']).describe('What started the run'),
    by: z.string().nullable().describe('Who asked: a user name, an API token name, or "scheduler"'),
    reason: z.string().nullable().describe('Why, when given'),
    scheduledFor: timestamp.nullable().describe('For scheduled and catch-up runs: the fire time the run belongs to'),
    text: z.string().describe('The trigger in words, e.g. "schedule 0 3 * * 0 (Europe/Berlin), run due …"'),
  })
  .describe('What started (or would have started) the run');

export const genericEnvelopeSchema = z
  .object({
    schemaVersion: z.literal(GENERIC_SCHEMA_VERSION).describe('Version of this envelope; changes only for incompatible changes'),
    id: z.string().min(1).describe('Unique id of this notification, the same on every delivery attempt: use it to drop duplicates'),
    event: z
      .enum([...NOTIFY_EVENTS, 'test'])
      .describe(
        'queued (waiting for a free slot), started, succeeded, failed (including interrupted runs), skipped (a scheduled run did not happen), upcoming (a scheduled run is near), test (db-refresher notify-test)',
      ),
    occurredAt: timestamp.describe('When the event happened'),
    summary: z.string().describe('One line for people, e.g. "qa refreshed in 4 min 12 s"'),
    job: z
      .object({
        name: z.string().describe('Job name'),
        description: z.string().nullable(),
        schedule: z.string().nullable().describe('Cron expression, null for manual-only jobs'),
        timezone: z.string().describe('IANA time zone the schedule is read in'),
      })
      .describe('The refresh job'),
    target: z
      .object({
        kind: z.string().describe('Target kind, e.g. local'),
        summary: z.string().describe('Where the copy lives, in words: a data directory, or a cluster and namespace'),
      })
      .describe('The copy that the job refreshes'),
    trigger: trigger.nullable(),
    run: z
      .object({
        id: z.string().describe('Run id'),
        url: z.url().nullable().describe('The run record in the HTTP API (<publicUrl>/api/v1/runs/<id>), when publicUrl is configured'),
        status: z
          .enum(RUN_STATUSES)
          .describe('Run status when the event happened: queued for queued, running for started, succeeded, failed or interrupted after'),
        dryRun: z.boolean(),
        createdAt: timestamp,
        finishedAt: timestamp.nullable(),
        durationMs: milliseconds.nullable().describe('Whole run, null while running'),
        downtimeMs: milliseconds
          .nullable()
          .describe(
            'How long the copy was unavailable: from the start of teardown to the end of the open phase (when users may connect again) (or to the end of a run that failed after teardown began); null when teardown did not start',
          ),
        targetDown: z.boolean().describe('True when the old copy was removed and no new copy is running'),
        phases: z.array(
          z.object({
            name: z.enum(PHASES),
            status: z.enum(['pending', 'running', 'succeeded', 'failed', 'skipped']),
            durationMs: milliseconds.nullable(),
          }),
        ),
      })
      .nullable()
      .describe('The run; null for skipped, upcoming and test events'),
    verification: z
      .object({
        ok: z
          .boolean()
          .nullable()
          .describe('Verification outcome; null when the run stopped before verifying (figures are the source only)'),
        databases: z.array(
          z.object({
            name: z.string(),
            source: figures.nullable().describe('Taken on the source just before teardown'),
            copy: figures.nullable().describe('Taken on the copy during verification'),
          }),
        ),
      })
      .nullable()
      .describe('Size and table counts per database, copy against source; null when none were taken'),
    masking: z
      .string()
      .optional()
      .describe(
        'When the job masks: "masked N columns in M tables; coverage: ok" or "…; coverage: K findings" (the record has the details)',
      ),
    error: z
      .object({
        phase: z.enum(PHASES).describe('The phase that failed'),
        class: z.enum(FAILURE_CLASSES).describe('Classified reason, e.g. wal-senders-exhausted'),
        message: z.string().describe('What went wrong'),
        hint: z.string().describe('What to do about it'),
        details: z.array(z.string()).describe('The log lines or checks behind the classification'),
      })
      .nullable()
      .describe('Why the run failed; null unless event is failed'),
    skipped: z
      .object({
        reason: z.enum(['overlap', 'suspended', 'missed']),
        scheduledFor: timestamp.nullable(),
        detail: z.string().nullable(),
      })
      .nullable()
      .describe('For skipped events'),
    upcoming: z
      .object({
        at: timestamp.describe('When the scheduled run is due'),
        leadMinutes: count.describe('How far ahead this target is told (its upcomingLeadMinutes)'),
      })
      .nullable()
      .describe('For upcoming events'),
  })
  .meta({ title: 'db-refresher generic webhook envelope', $id: GENERIC_SCHEMA_ID });

export type GenericEnvelope = z.output<typeof genericEnvelopeSchema>;

/** The JSON Schema published in src/notify/generic-envelope.schema.json. Unknown fields are allowed (additive changes). */
export function genericEnvelopeJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(genericEnvelopeSchema, { io: 'input' }) as Record<string, unknown>;
}

const orNull = <T>(value: T | undefined): T | null => (value === undefined ? null : value);

export function renderGeneric(facts: MessageFacts): GenericEnvelope {
  const { run, trigger } = facts;
  return {
    schemaVersion: GENERIC_SCHEMA_VERSION,
    id: facts.id,
    event: facts.event,
    occurredAt: facts.occurredAt,
    summary: facts.title,
    job: {
      name: facts.job.name,
      description: orNull(facts.job.description),
      schedule: orNull(facts.job.schedule),
      timezone: facts.job.timezone,
    },
    target: { kind: facts.target.kind, summary: facts.target.summary },
    trigger: trigger
      ? {
          kind: trigger.kind,
          by: orNull(trigger.by),
          reason: orNull(trigger.reason),
          scheduledFor: orNull(trigger.scheduledFor),
          text: facts.triggerText ?? trigger.kind,
        }
      : null,
    run: run
      ? {
          id: run.id,
          url: orNull(run.url),
          status: run.status,
          dryRun: run.dryRun,
          createdAt: run.createdAt,
          finishedAt: orNull(run.finishedAt),
          durationMs: orNull(run.durationMs),
          downtimeMs: orNull(run.downtimeMs),
          targetDown: run.targetDown,
          phases: run.phases.map((p) => ({ name: p.name, status: p.status, durationMs: orNull(p.durationMs) })),
        }
      : null,
    verification: facts.verification
      ? {
          ok: orNull(facts.verification.ok),
          databases: facts.verification.databases.map((d) => ({ name: d.name, source: orNull(d.source), copy: orNull(d.copy) })),
        }
      : null,
    ...(facts.masking ? { masking: facts.masking } : {}),
    error: facts.error ? { ...facts.error, details: [...facts.error.details] } : null,
    skipped: facts.skipped
      ? { reason: facts.skipped.reason, scheduledFor: orNull(facts.skipped.scheduledFor), detail: orNull(facts.skipped.detail) }
      : null,
    upcoming: facts.upcoming ? { ...facts.upcoming } : null,
  };
}
