import { z } from 'zod';

/**
 * Upper bounds for numbers in the config. Durations end up in Node timers, which
 * hold at most 2^31-1 ms (about 24.8 days): a larger value fires after 1 ms, so a
 * too-large timeout would end a clone at once. pg_ctl -t and every other consumer
 * of these seconds fit in that bound too. Each bound is in the schema (and so in
 * `db-refresher schema`) and in the README's config reference.
 */

export const MAX_TIMER_MS = 2 ** 31 - 1;
/** 2147483 s: 24 days, 20 h, 31 min. */
export const MAX_DURATION_SECONDS = Math.floor(MAX_TIMER_MS / 1000);

const tooLong = `must be at most ${MAX_DURATION_SECONDS} seconds (about 24 days; Node timers cannot wait longer)`;

/** A whole number of seconds from `min` to MAX_DURATION_SECONDS. */
export function durationSeconds(min: 0 | 1, fallback: number, description: string) {
  return z
    .number()
    .int()
    .min(min)
    .max(MAX_DURATION_SECONDS, { error: tooLong })
    .default(fallback)
    .describe(`${description} (seconds, ${min}-${MAX_DURATION_SECONDS})`);
}

/** Counts that have no natural limit still get one, so a typo (an extra digit or five) is caught. */
export const MAX_CONCURRENT_RUNS = 1000;
export const MAX_MIN_TABLES = 10_000_000;
/** Sizes (verify.databases[].minSize): 1 PiB. */
export const MAX_BYTE_SIZE = 1024 ** 5;
