import type { z } from 'zod';
import { quote } from './quote.js';

/**
 * Plain-English messages for the types, values, ranges and formats zod checks,
 * in place of its defaults ("Too small: expected number to be >=1"). Passed per parse, so
 * a message a schema sets itself still wins, and nothing global changes.
 */

type RawIssue = z.core.$ZodRawIssue;

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the text ${quote(value)}`;
  return `${typeof value} ${String(value)}`;
}

function got(input: unknown): string {
  return typeof input === 'string' ? quote(input) : String(input);
}

function numberRange(issue: RawIssue & { code: 'too_small' | 'too_big' }): string {
  const small = issue.code === 'too_small';
  const bound = Number(small ? issue.minimum : issue.maximum);
  if (!issue.inclusive) return `must be ${small ? 'more' : 'less'} than ${bound}, got ${got(issue.input)}`;
  return `must be ${small ? 'at least' : 'at most'} ${bound}, got ${got(issue.input)}`;
}

function lengthRange(issue: RawIssue & { code: 'too_small' | 'too_big' }, unit: 'character' | 'item'): string {
  const small = issue.code === 'too_small';
  const bound = Number(small ? issue.minimum : issue.maximum);
  if (small && bound === 1) return unit === 'character' ? 'must not be empty' : 'must list at least one item';
  const length = typeof issue.input === 'string' || Array.isArray(issue.input) ? `, got ${issue.input.length}` : '';
  return `must have ${small ? 'at least' : 'at most'} ${bound} ${unit}${bound === 1 ? '' : 's'}${length}`;
}

export function configIssueMessage(issue: RawIssue): string | undefined {
  switch (issue.code) {
    case 'too_small':
    case 'too_big':
      switch (issue.origin) {
        case 'number':
        case 'int':
        case 'bigint':
          return numberRange(issue);
        case 'string':
          return lengthRange(issue, 'character');
        case 'array':
        case 'set':
          return lengthRange(issue, 'item');
        default:
          return undefined;
      }
    case 'invalid_type':
      if (issue.input === undefined) return 'is required';
      if (issue.expected === 'int' && typeof issue.input === 'number') return `must be a whole number, got ${issue.input}`;
      return `must be ${issue.expected === 'object' ? 'a mapping' : issue.expected === 'array' ? 'a list' : `a ${issue.expected}`}, got ${describeType(issue.input)}`;
    case 'invalid_key':
      // A record key that fails its own schema (e.g. a table not written schema.table): say why, not just "Invalid key".
      return (issue as { issues?: Array<{ message?: string }> }).issues?.[0]?.message;
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${typeof issue.input === 'string' ? quote(issue.input) : describeType(issue.input)}`;
    default:
      return undefined;
  }
}
