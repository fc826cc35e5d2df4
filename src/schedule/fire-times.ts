import { type CronFields, expandCronFields, expandCronNickname, restrictsBothDayFields } from './cron-expression.js';

/**
 * When a schedule fires, as pure functions of the expression, the time zone
 * and a given instant (no clock is read here). The algorithm is node-cron
 * 4.6's own (walk the zone's local calendar day by day, convert each candidate
 * local time to an instant, keep it only if it reads back as a matching local
 * time), so what `db-refresher schedule` prints is what the scheduler does;
 * test/unit/schedule.test.ts checks the two against each other.
 *
 * Consequences worth knowing, both in the zone's local time:
 * - a time inside a DST gap (02:30 when clocks jump 02:00 → 03:00) does not
 *   fire that day;
 * - a time inside a DST overlap (02:30 when clocks go back 03:00 → 02:00)
 *   fires once, at its second occurrence.
 * Day of month and day of week are ANDed, as node-cron does; Kubernetes
 * CronJob and Vixie cron OR them when both are restricted.
 */

export interface Schedule {
  /** As configured, e.g. "@weekly" or "0 3 * * 1-5". */
  expression: string;
  timezone: string;
  fields: CronFields;
  /** The same schedule as six plain value lists, the form handed to node-cron, so both parse nothing differently. */
  nodeCronExpression: string;
  /** Whether the expression has a seconds field (6 fields). */
  hasSeconds: boolean;
  /** Both day fields restricted: node-cron ANDs them, Kubernetes ORs them. */
  andsDayFields: boolean;
}

export function buildSchedule(expression: string, timezone: string): Schedule {
  const fields = expandCronFields(expression);
  const raw = expandCronNickname(expression).split(/\s+/);
  const list = (values: number[], all: number) => (values.length === all ? '*' : values.join(','));
  const nodeCronExpression = [
    fields.second.join(','),
    list(fields.minute, 60),
    list(fields.hour, 24),
    list(fields.dayOfMonth, 31),
    list(fields.month, 12),
    list(fields.dayOfWeek, 7),
  ].join(' ');
  return {
    expression,
    timezone,
    fields,
    nodeCronExpression,
    hasSeconds: raw.length === 6,
    andsDayFields: restrictsBothDayFields(raw),
  };
}

interface LocalParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  weekday: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
const WEEKDAYS: Readonly<Record<string, number>> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

function formatter(timezone: string): Intl.DateTimeFormat {
  let f = formatters.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      weekday: 'short',
      hour12: false,
    });
    formatters.set(timezone, f);
  }
  return f;
}

/** The wall-clock reading of an instant in a zone. */
export function localParts(ms: number, timezone: string): LocalParts {
  const out: Record<string, string> = {};
  for (const part of formatter(timezone).formatToParts(new Date(ms))) if (part.type !== 'literal') out[part.type] = part.value;
  return {
    year: Number(out.year),
    month: Number(out.month),
    day: Number(out.day),
    hour: out.hour === '24' ? 0 : Number(out.hour),
    minute: Number(out.minute),
    second: Number(out.second),
    weekday: WEEKDAYS[out.weekday ?? ''] ?? 0,
  };
}

/** UTC offset of the zone at an instant, in whole minutes (as node-cron reads it). */
export function offsetMinutes(ms: number, timezone: string): number {
  const wholeSecond = Math.floor(ms / 1000) * 1000;
  const p = localParts(wholeSecond, timezone);
  return Math.round((Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - wholeSecond) / 60_000);
}

function readsBackTo(ms: number, p: Omit<LocalParts, 'weekday'>, timezone: string): boolean {
  const q = localParts(ms, timezone);
  return q.year === p.year && q.month === p.month && q.day === p.day && q.hour === p.hour && q.minute === p.minute && q.second === p.second;
}

/** The instant a local wall-clock time stands for; in a gap or an overlap, node-cron's choice. */
function localToInstant(p: Omit<LocalParts, 'weekday'>, timezone: string): number {
  const guess = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  const first = offsetMinutes(guess, timezone);
  const candidate1 = guess - first * 60_000;
  const second = offsetMinutes(candidate1, timezone);
  if (second === first) return candidate1;
  const candidate2 = guess - second * 60_000;
  if (readsBackTo(candidate1, p, timezone)) return candidate1;
  if (readsBackTo(candidate2, p, timezone)) return candidate2;
  return Math.max(candidate1, candidate2);
}

function matches(s: Schedule, ms: number): boolean {
  const p = localParts(ms, s.timezone);
  const f = s.fields;
  return (
    f.second.includes(p.second) &&
    f.minute.includes(p.minute) &&
    f.hour.includes(p.hour) &&
    f.dayOfMonth.includes(p.day) &&
    f.month.includes(p.month) &&
    f.dayOfWeek.includes(p.weekday)
  );
}

const MAX_DAYS = 366 * 100;

/** The first fire time strictly after `after` (whole seconds), or undefined if there is none within 100 years. */
export function nextFireTime(s: Schedule, after: Date): Date | undefined {
  const baseMs = Math.floor(after.getTime() / 1000) * 1000;
  const base = localParts(baseMs, s.timezone);
  const f = s.fields;
  let { year, month, day } = base;
  for (let i = 0; i < MAX_DAYS; i += 1) {
    const weekday = new Date(Date.UTC(year, month - 1, day)).getUTCDay();
    if (f.month.includes(month) && f.dayOfMonth.includes(day) && f.dayOfWeek.includes(weekday)) {
      for (const hour of f.hour) {
        if (i === 0 && hour < base.hour) continue;
        for (const minute of f.minute) {
          for (const second of f.second) {
            if (i === 0 && hour * 3600 + minute * 60 + second <= base.hour * 3600 + base.minute * 60 + base.second) continue;
            const ms = localToInstant({ year, month, day, hour, minute, second }, s.timezone);
            if (ms > baseMs && matches(s, ms)) return new Date(ms);
          }
        }
      }
    }
    const next = new Date(Date.UTC(year, month - 1, day + 1));
    year = next.getUTCFullYear();
    month = next.getUTCMonth() + 1;
    day = next.getUTCDate();
  }
  return undefined;
}

/** The next `count` fire times after `after`. */
export function nextFireTimes(s: Schedule, after: Date, count: number): Date[] {
  const out: Date[] = [];
  let from = after;
  while (out.length < count) {
    const next = nextFireTime(s, from);
    if (!next) break;
    out.push(next);
    from = next;
  }
  return out;
}

/** Fire times in (after, until], oldest first, at most `limit` of them; `more` says whether some were left out. */
export function fireTimesBetween(s: Schedule, after: Date, until: Date, limit: number): { times: Date[]; more: boolean } {
  const times: Date[] = [];
  let from = after;
  for (;;) {
    const next = nextFireTime(s, from);
    if (!next || next.getTime() > until.getTime()) return { times, more: false };
    if (times.length === limit) return { times, more: true };
    times.push(next);
    from = next;
  }
}

/**
 * What to do at startup about fire times that passed while the service was
 * down: `lastHandled` is the newest fire time the service acted on (ran,
 * skipped or recorded as missed). Like a Kubernetes CronJob with
 * startingDeadlineSeconds, only the newest missed time may still run, and only
 * if it is at most `deadlineSeconds` old; otherwise it is recorded as missed.
 */
export type CatchUpDecision =
  | { action: 'none' }
  | { action: 'run'; scheduledFor: Date; missed: MissedCount }
  | { action: 'missed'; scheduledFor: Date; missed: MissedCount; ageSeconds: number };

/** How many fire times passed unhandled; counting stops at a bound, so `atLeast` says whether there were more. */
export interface MissedCount {
  count: number;
  atLeast: boolean;
}

const COUNT_LIMIT = 10_000;

export function planCatchUp(s: Schedule, lastHandled: Date, now: Date, deadlineSeconds: number): CatchUpDecision {
  const first = nextFireTime(s, lastHandled);
  if (!first || first.getTime() > now.getTime()) return { action: 'none' };
  const latest = latestFireTime(s, lastHandled, now) ?? first;
  const { times, more } = fireTimesBetween(s, lastHandled, now, COUNT_LIMIT);
  const missed = { count: times.length, atLeast: more };
  const ageSeconds = (now.getTime() - latest.getTime()) / 1000;
  if (ageSeconds <= deadlineSeconds) return { action: 'run', scheduledFor: latest, missed };
  return { action: 'missed', scheduledFor: latest, missed, ageSeconds: Math.round(ageSeconds) };
}

/** The newest fire time in (after, until], searching back from `until` in windows that grow fourfold, so the work stays small. */
export function latestFireTime(s: Schedule, after: Date, until: Date): Date | undefined {
  const span = until.getTime() - after.getTime();
  for (let windowMs = 60_000; ; windowMs *= 4) {
    const from = new Date(until.getTime() - Math.min(windowMs, span));
    let last: Date | undefined;
    for (let next = nextFireTime(s, from); next && next.getTime() <= until.getTime(); next = nextFireTime(s, next)) last = next;
    if (last || windowMs >= span) return last;
  }
}

/** One change of a zone's UTC offset. */
export interface Transition {
  at: Date;
  offsetBeforeMinutes: number;
  offsetAfterMinutes: number;
}

const transitionCache = new Map<string, Transition[]>();

/** The zone's offset changes in [from, until), found by sampling every 6 hours and bisecting to the second. */
export function zoneTransitions(timezone: string, from: Date, until: Date): Transition[] {
  const key = `${timezone}|${from.getTime()}|${until.getTime()}`;
  const cached = transitionCache.get(key);
  if (cached) return cached;
  const STEP = 6 * 3600_000;
  const found: Transition[] = [];
  let t = from.getTime();
  let before = offsetMinutes(t, timezone);
  while (t < until.getTime()) {
    const next = Math.min(t + STEP, until.getTime());
    const after = offsetMinutes(next, timezone);
    if (after !== before) {
      let low = t;
      let high = next;
      while (high - low > 1000) {
        const mid = Math.floor((low + high) / 2000) * 1000;
        if (offsetMinutes(mid, timezone) === before) low = mid;
        else high = mid;
      }
      found.push({ at: new Date(high), offsetBeforeMinutes: before, offsetAfterMinutes: after });
    }
    t = next;
    before = after;
  }
  if (transitionCache.size > 1000) transitionCache.clear();
  transitionCache.set(key, found);
  return found;
}

export interface DstNote {
  kind: 'gap' | 'overlap';
  transition: Transition;
  /** The first few local wall-clock times the schedule names inside the gap or overlap, e.g. "2026-03-29 02:30". */
  localTimes: string[];
  /** How many there are in all. */
  count: number;
  message: string;
}

const pad = (n: number) => String(n).padStart(2, '0');
const wallClock = (ms: number, withSeconds: boolean) => {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}${withSeconds ? `:${pad(d.getUTCSeconds())}` : ''}`;
};

/**
 * Fire times that fall into a DST gap or overlap of the job's zone between
 * `from` and `until`. Local wall-clock times are handled as "naive" UTC
 * milliseconds here: 02:30 local is Date.UTC(..., 2, 30).
 */
export function dstNotes(s: Schedule, from: Date, until: Date): DstNote[] {
  const notes: DstNote[] = [];
  const stepMs = s.hasSeconds ? 1000 : 60_000;
  for (const transition of zoneTransitions(s.timezone, from, until)) {
    const { offsetBeforeMinutes: a, offsetAfterMinutes: b } = transition;
    const at = transition.at.getTime();
    const kind = b > a ? 'gap' : 'overlap';
    // Gap: wall times [at+a, at+b) never happen. Overlap: [at+b, at+a) happen twice.
    const start = at + Math.min(a, b) * 60_000;
    const end = at + Math.max(a, b) * 60_000;
    const localTimes: string[] = [];
    let matched = 0;
    for (let wall = start; wall < end; wall += stepMs) {
      const d = new Date(wall);
      const f = s.fields;
      if (
        f.second.includes(d.getUTCSeconds()) &&
        f.minute.includes(d.getUTCMinutes()) &&
        f.hour.includes(d.getUTCHours()) &&
        f.dayOfMonth.includes(d.getUTCDate()) &&
        f.month.includes(d.getUTCMonth() + 1) &&
        f.dayOfWeek.includes(d.getUTCDay())
      ) {
        matched += 1;
        if (localTimes.length < 3) localTimes.push(wallClock(wall, s.hasSeconds));
      }
    }
    if (matched === 0) continue;
    const shift = Math.abs(b - a);
    const jump = `clocks go ${kind === 'gap' ? 'forward' : 'back'} ${shift % 60 === 0 ? `${shift / 60} h` : `${shift} min`} at ${wallClock(kind === 'gap' ? start : end, false).slice(11)} local time`;
    const times = matched > localTimes.length ? `${localTimes.join(', ')} and ${matched - localTimes.length} more` : localTimes.join(', ');
    const message =
      kind === 'gap'
        ? `${times} (${s.timezone}) ${matched === 1 ? 'does' : 'do'} not exist: ${jump}; ${matched === 1 ? 'this run is' : 'these runs are'} skipped`
        : `${times} (${s.timezone}) ${matched === 1 ? 'happens' : 'happen'} twice: ${jump}; each runs once, at its second occurrence`;
    notes.push({ kind, transition, localTimes, count: matched, message });
  }
  return notes;
}

/** Warnings about a schedule that a person should read: AND of the day fields, DST gaps and overlaps within the next year. */
export function scheduleWarnings(s: Schedule, now: Date): string[] {
  const warnings: string[] = [];
  if (s.andsDayFields) {
    warnings.push(
      `"${s.expression}" restricts both day of month and day of week: db-refresher (node-cron) runs only on days matching BOTH, while Kubernetes CronJob and Vixie cron run on days matching EITHER`,
    );
  }
  const yearLater = new Date(now.getTime() + 366 * 86_400_000);
  for (const note of dstNotes(s, now, yearLater)) warnings.push(note.message);
  return warnings;
}

/** "2026-03-30 03:00 +02:00" (with seconds for 6-field schedules): a fire time as read in its zone. */
export function formatInZone(at: Date, timezone: string, withSeconds = false): string {
  const p = localParts(at.getTime(), timezone);
  const offset = offsetMinutes(at.getTime(), timezone);
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  return `${p.year}-${pad(p.month)}-${pad(p.day)} ${pad(p.hour)}:${pad(p.minute)}${withSeconds ? `:${pad(p.second)}` : ''} ${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}
