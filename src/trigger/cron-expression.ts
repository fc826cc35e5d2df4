/**
 * Cron expression syntax, checked with messages a person can act on. node-cron
 * only answers valid/invalid; this says which field is wrong and why.
 *
 * Accepted: 5 fields (minute hour day-of-month month day-of-week), 6 fields with
 * a leading seconds field (node-cron's extension, handy for tests), and the
 * nicknames @yearly @annually @monthly @weekly @daily @midnight @hourly.
 */

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const SECOND: FieldSpec = { name: 'second', min: 0, max: 59 };
const MINUTE: FieldSpec = { name: 'minute', min: 0, max: 59 };
const HOUR: FieldSpec = { name: 'hour', min: 0, max: 23 };
const DAY_OF_MONTH: FieldSpec = { name: 'day of month', min: 1, max: 31 };
const MONTH: FieldSpec = {
  name: 'month',
  min: 1,
  max: 12,
  names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'],
};
// 0 and 7 are both Sunday, as in Vixie cron and Kubernetes.
const DAY_OF_WEEK: FieldSpec = { name: 'day of week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] };

export const CRON_NICKNAMES: Readonly<Record<string, string>> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

/** Expands a nickname to its 5-field form; other expressions are returned trimmed. */
export function expandCronNickname(expression: string): string {
  const trimmed = expression.trim();
  return CRON_NICKNAMES[trimmed.toLowerCase()] ?? trimmed;
}

export type CronCheck = { ok: true; fields: string[] } | { ok: false; reason: string };

function parseValue(token: string, spec: FieldSpec): number | string {
  if (/^\d+$/.test(token)) {
    const value = Number(token);
    if (value < spec.min || value > spec.max) return `${spec.name} must be ${spec.min}-${spec.max}`;
    return value;
  }
  const index = spec.names?.indexOf(token.toLowerCase()) ?? -1;
  if (index >= 0) return spec.min + index;
  const named = spec.names ? ` or a name (${spec.names[0]}-${spec.names[spec.names.length - 1]})` : '';
  return `${spec.name} "${token}" is not a number${named}`;
}

function checkField(field: string, spec: FieldSpec): string | undefined {
  for (const part of field.split(',')) {
    if (part === '') return `${spec.name} has an empty list item`;
    const [range, step, extra] = part.split('/');
    if (extra !== undefined) return `${spec.name} "${part}" has more than one "/"`;
    if (step !== undefined && !/^[1-9]\d*$/.test(step)) return `${spec.name} step "${step}" must be a positive whole number`;
    if (range === '*') continue;
    const bounds = (range ?? '').split('-');
    if (bounds.length > 2) return `${spec.name} range "${range}" has more than one "-"`;
    const values: number[] = [];
    for (const bound of bounds) {
      const value = parseValue(bound, spec);
      if (typeof value === 'string') return value;
      values.push(value);
    }
    const [low, high] = values;
    if (high !== undefined && low !== undefined && low > high) {
      return `${spec.name} range "${range}" goes backwards (${low} > ${high})`;
    }
  }
  return undefined;
}

export function checkCronExpression(expression: string): CronCheck {
  const expanded = expandCronNickname(expression);
  if (expanded.startsWith('@')) {
    return { ok: false, reason: `unknown nickname; use one of ${Object.keys(CRON_NICKNAMES).join(', ')}` };
  }
  const fields = expanded.split(/\s+/).filter((f) => f !== '');
  const specs =
    fields.length === 5
      ? [MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK]
      : fields.length === 6
        ? [SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK]
        : undefined;
  if (!specs) {
    return { ok: false, reason: `expected 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}` };
  }
  for (const [i, field] of fields.entries()) {
    const spec = specs[i] as FieldSpec;
    const problem = checkField(field, spec);
    if (problem) return { ok: false, reason: problem };
  }
  return { ok: true, fields };
}

/**
 * True when both day fields are restricted. node-cron then fires only on days
 * matching both (AND); Kubernetes CronJob and Vixie cron fire on either (OR).
 */
export function restrictsBothDayFields(fields: readonly string[]): boolean {
  const dayOfMonth = fields[fields.length - 3];
  const dayOfWeek = fields[fields.length - 1];
  return dayOfMonth !== '*' && dayOfWeek !== '*';
}
