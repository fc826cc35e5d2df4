import type { TableMaskPlan } from './plan.js';
import { strategyName } from './strategies.js';

/**
 * What to do about a table whose masking failed: the hint of the run's
 * failure. Pure: the error and the table's plan in, text out.
 *
 * A unique violation gets its own hint. The plan refuses strategies that give
 * equal values for different inputs on a unique column, so a violation means
 * two values the user thinks of as different met in one fake, which nearly
 * always is the phone fake taking two spellings of one number.
 */

const UNIQUE_VIOLATION = '23505';
const STAYS_CLOSED =
  'The copy stays closed to everyone but db-refresher; fix the cause and run the job again (the next run makes a fresh copy).';

/** The PostgreSQL error behind a failure, through any wrapping Errors' `cause`. */
function databaseError(error: unknown): { code?: string; constraint?: string } | undefined {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (typeof (e as { code?: unknown }).code === 'string') return e as { code?: string; constraint?: string };
  }
  return undefined;
}

export function maskingFailureHint(error: unknown, plan: Pick<TableMaskPlan, 'table' | 'columns'>): string {
  const cause = databaseError(error);
  if (cause?.code !== UNIQUE_VIOLATION) return STAYS_CLOSED;
  const index = cause.constraint ? `unique index "${cause.constraint}"` : 'a unique index';
  const hint = [`Two rows of ${plan.table} got the same masked value in ${index}.`];
  const phones = plan.columns.filter((c) => strategyName(c.strategy) === 'phone').map((c) => c.column);
  if (phones.length > 0) {
    hint.push(
      `phone keeps only the digits and a leading +, so one number written two ways (555-123-4567 and (555) 123 4567) gives one fake, and numbers of fewer than 4 or more than 18 digits get hashed digits, which can collide (masked with phone: ${phones.join(', ')}).`,
    );
  }
  hint.push(
    'Remove the duplicates from the source, mask the column with hash (distinct for any two inputs), or drop the constraint in a prepare step.',
  );
  hint.push(STAYS_CLOSED);
  return hint.join(' ');
}
