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
  const days = expandField(fields[fields.length - 3] as string, DAY_OF_MONTH);
  const months = expandField(fields[fields.length - 2] as string, MONTH);
  if (!months.some((month) => days.some((day) => day <= (MAX_DAYS_IN_MONTH[month] ?? 31)))) {
    return { ok: false, reason: `day of month ${days.join(',')} never occurs in month ${months.join(',')}` };
  }
  return { ok: true, fields };
}

const MAX_DAYS_IN_MONTH: Readonly<Record<number, number>> = {
  1: 31,
  2: 29,
  3: 31,
  4: 30,
  5: 31,
  6: 30,
  7: 31,
  8: 31,
  9: 30,
  10: 31,
  11: 30,
  12: 31,
};

/** The values one valid field stands for, ascending. "N/step" means N to the field's end in steps, as in Vixie cron and Kubernetes. */
function expandField(field: string, spec: FieldSpec): number[] {
  const values = new Set<number>();
  // Day of week: "*" is 0-6, and 7 (another Sunday) becomes 0.
  const top = spec === DAY_OF_WEEK ? 6 : spec.max;
  for (const part of field.split(',')) {
    const [range = '*', stepText] = part.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    let low = spec.min;
    let high = top;
    if (range !== '*') {
      const [first = '', last] = range.split('-');
      low = parseValue(first, spec) as number;
      high = last !== undefined ? (parseValue(last, spec) as number) : stepText !== undefined ? spec.max : low;
    }
    for (let value = low; value <= high; value += step) values.add(spec === DAY_OF_WEEK && value === 7 ? 0 : value);
  }
  return [...values].sort((a, b) => a - b);
}

/** The six fields of a valid expression as sorted value lists; a 5-field expression gets second 0. */
export interface CronFields {
  second: number[];
  minute: number[];
  hour: number[];
  dayOfMonth: number[];
  month: number[];
  dayOfWeek: number[];
}

/** Expands a valid expression (see checkCronExpression) into its value lists; throws on an invalid one. */
export function expandCronFields(expression: string): CronFields {
  const check = checkCronExpression(expression);
  if (!check.ok) throw new Error(`"${expression}" is not a valid cron expression (${check.reason})`);
  const f = check.fields.length === 5 ? ['0', ...check.fields] : check.fields;
  const specs = [SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK];
  const [second, minute, hour, dayOfMonth, month, dayOfWeek] = specs.map((spec, i) => expandField(f[i] as string, spec)) as [
    number[],
    number[],
    number[],
    number[],
    number[],
    number[],
  ];
  return { second, minute, hour, dayOfMonth, month, dayOfWeek };
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
