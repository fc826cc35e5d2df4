import { tables, totalTables } from '../../checks/compare.js';
import { formatBytes } from '../../config/byte-size.js';
import type { NotifyEvent } from '../../config/types.js';
import { formatDuration } from '../../duration.js';
import type { FailureClass } from '../../failures.js';
import { maskingSummary } from '../../mask/record.js';
import type { DatabaseFigures } from '../../run/facts.js';
import type { PhaseName, PhaseStatus, RunRecord, RunStatus, SkipReason, Trigger } from '../../run/record.js';
import { localParts } from '../../schedule/fire-times.js';

/**
 * The facts every notification format shares, gathered once from a run record
 * (or a skipped/upcoming scheduled run) and rendered by render/slack.ts,
 * render/teams.ts and render/generic.ts. Pure: records in, plain data and strings out.
 */

/** The events a target can subscribe to, plus `test` for `db-refresher notify-test`. */
export type MessageEvent = NotifyEvent | 'test';

export interface JobFacts {
  name: string;
  description?: string | undefined;
  schedule?: string | undefined;
  timezone: string;
}

export interface FiguresFacts {
  sizeBytes: number;
  tables: number;
}

export interface DatabaseFacts {
  name: string;
  /** Taken on the source just before teardown. */
  source?: FiguresFacts | undefined;
  /** Taken on the copy during verification. */
  copy?: FiguresFacts | undefined;
}

export interface MessageFacts {
  /** Unique per notification and stable across delivery attempts, for receivers to drop duplicates. */
  id: string;
  event: MessageEvent;
  occurredAt: string;
  /** One line for people: the headline of every format. */
  title: string;
  job: JobFacts;
  target: { kind: string; summary: string };
  trigger?: Trigger | undefined;
  /** The trigger in words: the schedule, or who asked and why. */
  triggerText?: string | undefined;
  run?:
    | {
        id: string;
        url?: string | undefined;
        status: RunStatus;
        dryRun: boolean;
        createdAt: string;
        finishedAt?: string | undefined;
        durationMs?: number | undefined;
        /** From the start of teardown to the end of the open phase: how long the copy was unavailable to its users. */
        downtimeMs?: number | undefined;
        /** The old copy was removed and no new copy is running (a failure after teardown began). */
        targetDown: boolean;
        phases: Array<{ name: PhaseName; status: PhaseStatus; durationMs?: number | undefined }>;
      }
    | undefined;
  /** Figures per database: source and copy after verification, the source only when the run stopped earlier. */
  verification?: { ok: boolean | undefined; databases: DatabaseFacts[] } | undefined;
  /** "masked N columns in M tables; coverage: ok / K findings", when the job masks. */
  masking?: string | undefined;
  error?: { phase: PhaseName; class: FailureClass; message: string; hint: string; details: string[] } | undefined;
  skipped?: { reason: SkipReason; scheduledFor?: string | undefined; detail?: string | undefined } | undefined;
  upcoming?: { at: string; leadMinutes: number } | undefined;
  /** For `test` messages: the notification target being tested. */
  testTarget?: string | undefined;
}

/** `https://x/` and `https://x` both give `https://x/api/v1/runs/<id>`. */
export function runUrl(publicUrl: string | undefined, runId: string): string | undefined {
  if (!publicUrl) return undefined;
  return `${publicUrl.replace(/\/+$/, '')}/api/v1/runs/${encodeURIComponent(runId)}`;
}

/** `30 min`, `2 h 5 min`: a lead time, rounded to minutes. */
export function formatMinutes(ms: number): string {
  const minutes = Math.max(0, Math.round(ms / 60_000));
  if (minutes < 60) return `${minutes} min`;
  const rest = minutes % 60;
  return `${Math.floor(minutes / 60)} h${rest ? ` ${rest} min` : ''}`;
}

/** `2025-01-05 03:00 Europe/Berlin`: built from parts, so it does not depend on a locale's layout. */
export function formatTime(iso: string, timeZone: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return iso;
  try {
    // localParts keeps one formatter per zone: skipped ticks come in bursts.
    const p = localParts(ms, timeZone);
    const two = (n: number) => String(n).padStart(2, '0');
    return `${p.year}-${two(p.month)}-${two(p.day)} ${two(p.hour)}:${two(p.minute)} ${timeZone}`;
  } catch {
    return iso;
  }
}

export function describeTrigger(trigger: Trigger, job: JobFacts): string {
  const why = trigger.reason ? `: ${trigger.reason}` : '';
  switch (trigger.kind) {
    case 'schedule': {
      const expression = trigger.schedule ?? job.schedule;
      const zone = trigger.timezone ?? job.timezone;
      const schedule = expression ? `schedule ${expression} (${zone})` : 'the schedule';
      return `${schedule}${trigger.scheduledFor ? `, run due ${formatTime(trigger.scheduledFor, zone)}` : ''}${why}`;
    }
    case 'catch-up':
      return `catch-up of a missed scheduled run${trigger.scheduledFor ? ` due ${formatTime(trigger.scheduledFor, job.timezone)}` : ''}${why}`;
    case 'cli':
      return `manually by ${trigger.by ?? 'an unknown user'} (command line)${why}`;
    case 'http':
      return `by ${trigger.by ?? 'an unknown caller'} through the HTTP API${why}`;
  }
}

const SKIP_REASONS: Readonly<Record<SkipReason, string>> = {
  overlap: 'the previous run was still going',
  suspended: 'the job is suspended',
  missed: 'db-refresher was not running at the scheduled time',
};

/** How long the copy was unavailable, and whether it still is. */
export function downtimeOf(run: RunRecord): { downtimeMs?: number; targetDown: boolean } {
  const teardown = run.phases.find((p) => p.name === 'teardown');
  // Users get the copy back when it opens (the end of the private window).
  const open = run.phases.find((p) => p.name === 'open');
  if (!teardown?.startedAt) return { targetDown: false };
  const from = Date.parse(teardown.startedAt);
  if (open?.status === 'succeeded' && open.finishedAt) return { downtimeMs: Date.parse(open.finishedAt) - from, targetDown: false };
  // Teardown began and no copy was opened: the target is down (still, or since the run ended).
  const until = run.finishedAt ? Date.parse(run.finishedAt) : undefined;
  return { ...(until !== undefined ? { downtimeMs: until - from } : {}), targetDown: run.status !== 'running' };
}

function figures(f: DatabaseFigures | undefined): FiguresFacts | undefined {
  return f ? { sizeBytes: f.sizeBytes, tables: totalTables(f) } : undefined;
}

export function databasesOf(run: RunRecord): MessageFacts['verification'] {
  if (run.verification) {
    return {
      ok: run.verification.ok,
      databases: run.verification.databases.map((d) => ({ name: d.database, source: figures(d.source), copy: figures(d.copy) })),
    };
  }
  if (run.snapshot) {
    return { ok: undefined, databases: run.snapshot.databases.map((d) => ({ name: d.database, source: figures(d) })) };
  }
  return undefined;
}

function runTitle(event: MessageEvent, run: RunRecord, job: string): string {
  const dry = run.dryRun ? ' (dry run)' : '';
  switch (event) {
    case 'queued':
      return `Refresh of ${job} queued: waiting for a free slot${dry}`;
    case 'started': {
      const resumed = run.resumed?.at(-1);
      if (resumed) return `Refresh of ${job} resumed at ${resumed.fromPhase} after the service restarted${dry}`;
      return `Refresh of ${job} started${dry}`;
    }
    case 'succeeded':
      return `${job} refreshed in ${formatDuration(run.durationMs, 'unknown')}${dry}`;
    default:
      if (run.status === 'cancelled') return `Refresh of ${job} cancelled by ${run.cancelled?.by ?? 'someone'}${dry}`;
      if (run.status === 'interrupted') return `Refresh of ${job} interrupted in ${run.error?.phase ?? 'an unknown phase'}${dry}`;
      return `Refresh of ${job} failed in ${run.error?.phase ?? 'an unknown phase'}: ${run.error?.class ?? 'unknown'}${dry}`;
  }
}

/** Facts for a run event: `queued` or `started` for a new run, `succeeded` or `failed` for a finished one. */
export function runFacts(input: {
  event: 'queued' | 'started' | 'succeeded' | 'failed';
  run: RunRecord;
  job: JobFacts;
  publicUrl?: string | undefined;
  now: Date;
}): MessageFacts {
  const { run, event, job } = input;
  const { downtimeMs, targetDown } = downtimeOf(run);
  // A resumed run announces itself again; a receiver that de-duplicates on the delivery id must not drop that.
  const resumes = event === 'started' ? (run.resumed?.length ?? 0) : 0;
  return {
    id: resumes > 0 ? `${run.id}.started.resumed-${resumes}` : `${run.id}.${event}`,
    event,
    occurredAt:
      (event === 'queued'
        ? run.createdAt
        : event === 'started'
          ? (run.resumed?.at(-1)?.at ?? run.startedAt ?? run.createdAt)
          : run.finishedAt) ?? input.now.toISOString(),
    title: runTitle(event, run, job.name),
    job,
    target: { kind: run.target.kind, summary: run.target.summary },
    trigger: run.trigger,
    triggerText: describeTrigger(run.trigger, job),
    run: {
      id: run.id,
      url: runUrl(input.publicUrl, run.id),
      status: run.status,
      dryRun: run.dryRun,
      createdAt: run.createdAt,
      finishedAt: run.finishedAt,
      durationMs: run.durationMs,
      downtimeMs,
      targetDown,
      phases: run.phases.map((p) => ({ name: p.name, status: p.status, durationMs: p.durationMs })),
    },
    verification: event === 'started' || event === 'queued' ? undefined : databasesOf(run),
    masking: event === 'started' || event === 'queued' ? undefined : maskingSummary(run.masking, run.verification?.coverage),
    error: run.error
      ? {
          phase: run.error.phase,
          class: run.error.class,
          message: run.error.message,
          hint: run.error.hint,
          details: [...(run.error.details ?? [])],
        }
      : undefined,
  };
}

export function skippedFacts(input: {
  job: JobFacts;
  target: { kind: string; summary: string };
  reason: SkipReason;
  scheduledFor?: string | undefined;
  detail?: string | undefined;
  now: Date;
}): MessageFacts {
  const { job, reason, scheduledFor } = input;
  const when = scheduledFor ? ` (due ${formatTime(scheduledFor, job.timezone)})` : '';
  const trigger: Trigger = { kind: 'schedule', by: 'scheduler', ...(scheduledFor ? { scheduledFor } : {}) };
  return {
    id: `${job.name}.skipped.${scheduledFor ?? input.now.toISOString()}`,
    event: 'skipped',
    occurredAt: input.now.toISOString(),
    title: `Scheduled refresh of ${job.name} skipped${when}: ${SKIP_REASONS[reason]}`,
    job,
    target: input.target,
    trigger,
    triggerText: describeTrigger(trigger, job),
    skipped: { reason, scheduledFor, detail: input.detail },
  };
}

export function upcomingFacts(input: {
  job: JobFacts;
  target: { kind: string; summary: string };
  at: string;
  leadMinutes: number;
  now: Date;
}): MessageFacts {
  const { job, at } = input;
  const inMs = Date.parse(at) - input.now.getTime();
  const trigger: Trigger = { kind: 'schedule', by: 'scheduler', scheduledFor: at };
  return {
    id: `${job.name}.upcoming.${at}`,
    event: 'upcoming',
    occurredAt: input.now.toISOString(),
    title: `${job.name} will be refreshed in ${formatMinutes(inMs)}, at ${formatTime(at, job.timezone)}`,
    job,
    target: input.target,
    trigger,
    triggerText: describeTrigger(trigger, job),
    upcoming: { at, leadMinutes: input.leadMinutes },
  };
}

/** A sample message for `db-refresher notify-test`: clearly a test, so no receiver mistakes it for a refresh. */
export function testFacts(input: {
  notificationTarget: string;
  job: JobFacts;
  target: { kind: string; summary: string };
  id: string;
  now: Date;
}): MessageFacts {
  const trigger: Trigger = { kind: 'cli', by: 'db-refresher notify-test', reason: 'test message' };
  return {
    id: input.id,
    event: 'test',
    occurredAt: input.now.toISOString(),
    title: `Test message from db-refresher to notification target ${input.notificationTarget}`,
    job: input.job,
    target: input.target,
    trigger,
    triggerText: describeTrigger(trigger, input.job),
    testTarget: input.notificationTarget,
  };
}

/** `app: 42 tables (source 42), 1.2 GiB (source 1.2 GiB)`. */
export function describeDatabase(db: DatabaseFacts): string {
  const { source, copy } = db;
  if (copy) {
    const tables = `${copy.tables} tables${source ? ` (source ${source.tables})` : ''}`;
    const size = `${formatBytes(copy.sizeBytes)}${source ? ` (source ${formatBytes(source.sizeBytes)})` : ''}`;
    return `${db.name}: ${tables}, ${size}`;
  }
  if (source) return `${db.name}: source has ${tables(source.tables)}, ${formatBytes(source.sizeBytes)}`;
  return `${db.name}: no figures`;
}

/** The outcome in a few words, for status bars. */
export function statusLine(facts: MessageFacts): string {
  const run = facts.run;
  switch (facts.event) {
    case 'queued':
      return `Queued: waiting for a free slot${run?.dryRun ? ' (dry run)' : ''}`;
    case 'started':
      return `Started${run?.dryRun ? ' (dry run)' : ''}`;
    case 'succeeded': {
      const parts = [`Succeeded in ${formatDuration(run?.durationMs, 'unknown')}`];
      if (run?.downtimeMs !== undefined) parts.push(`downtime ${formatDuration(run.downtimeMs, 'unknown')}`);
      const dbs = facts.verification?.databases.length;
      if (dbs) parts.push(`${dbs} ${dbs === 1 ? 'database' : 'databases'} verified`);
      return parts.join(' · ');
    }
    case 'failed': {
      const parts = [`${run?.status === 'interrupted' ? 'Interrupted' : 'Failed'} in ${facts.error?.phase ?? 'unknown phase'}`];
      if (facts.error) parts.push(facts.error.class);
      if (run?.targetDown) parts.push('target has no running copy');
      return parts.join(' · ');
    }
    case 'skipped':
      return `Skipped: ${facts.skipped?.reason ?? 'unknown reason'}`;
    case 'upcoming':
      return `Upcoming: ${facts.upcoming ? formatTime(facts.upcoming.at, facts.job.timezone) : ''}`;
    case 'test':
      return 'Test message: delivery works';
  }
}

/** One emoji per event, at the start of every format's headline. */
export const EVENT_ICONS: Readonly<Record<MessageEvent, string>> = {
  queued: '⏳',
  started: '🔄',
  succeeded: '✅',
  failed: '❌',
  skipped: '⏭️',
  upcoming: '⏰',
  test: '🔔',
};

export { TARGET_DOWN } from '../../run/target-down.js';

export interface Fact {
  label: string;
  value: string;
}

/** The labelled facts of a message, in the order people read them. Values are plain text (not yet escaped). */
export function factsList(facts: MessageFacts): Fact[] {
  const list: Fact[] = [];
  const { job, run } = facts;
  list.push({ label: 'Job', value: job.description ? `${job.name} (${job.description})` : job.name });
  list.push({ label: 'Target', value: facts.target.summary });
  if (facts.testTarget) list.push({ label: 'Notification target', value: facts.testTarget });
  if (facts.triggerText && facts.event !== 'test') list.push({ label: 'Trigger', value: facts.triggerText });
  // The trigger already says when a skipped or upcoming run is due.
  if (facts.skipped) list.push({ label: 'Reason', value: facts.skipped.reason });
  if (facts.upcoming) list.push({ label: 'Announced', value: `${formatMinutes(facts.upcoming.leadMinutes * 60_000)} ahead` });
  if (run) {
    if (facts.event === 'queued') list.push({ label: 'Queued', value: formatTime(run.createdAt, job.timezone) });
    else if (facts.event === 'started') list.push({ label: 'Started', value: formatTime(run.createdAt, job.timezone) });
    else list.push({ label: 'Duration', value: formatDuration(run.durationMs, 'unknown') });
    if (facts.event !== 'started' && run.downtimeMs !== undefined) {
      list.push({
        label: 'Downtime',
        value: `${formatDuration(run.downtimeMs, 'unknown')}${run.targetDown ? ' (target still down)' : ''}`,
      });
    }
  }
  if (facts.masking) list.push({ label: 'Masking', value: facts.masking });
  return list;
}

export function figuresHeading(facts: MessageFacts): string {
  return facts.verification?.ok === undefined ? 'Source figures (not verified)' : 'Verification against the source';
}
