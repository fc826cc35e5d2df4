import cron from 'node-cron';
import { describe, expect, it } from 'vitest';
import { checkCronExpression, expandCronNickname, restrictsBothDayFields } from '../../src/schedule/cron-expression.js';

describe('checkCronExpression', () => {
  it.each([
    ['61 * * * *', 'minute must be 0-59'],
    ['0 24 * * *', 'hour must be 0-23'],
    ['0 0 0 * *', 'day of month must be 1-31'],
    ['0 0 * 13 *', 'month must be 1-12'],
    ['0 0 * * 8', 'day of week must be 0-7'],
    ['*/0 * * * *', 'step "0" must be a positive whole number'],
    ['5-1 * * * *', 'goes backwards'],
    ['0 0 * * mon-funday', 'day of week "funday" is not a number'],
    ['0 0 * *', 'expected 5 fields'],
    ['@fortnightly', 'unknown nickname'],
    ['1,,2 * * * *', 'empty list item'],
  ])('%s is rejected: %s', (expression, reason) => {
    const result = checkCronExpression(expression);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toContain(reason);
  });

  it.each(['0 3 * * 0', '*/15 9-17 * * mon-fri', '0 0 1,15 * *', '30 2 * jan,jul sun', '@weekly', '@DAILY', '*/10 * * * * *', '0 0 * * 7'])(
    '%s is accepted, and node-cron agrees',
    (expression) => {
      expect(checkCronExpression(expression).ok).toBe(true);
      expect(cron.validate(expandCronNickname(expression))).toBe(true);
    },
  );

  it('spots expressions where node-cron (AND) and Kubernetes (OR) disagree', () => {
    const fields = (e: string) => {
      const r = checkCronExpression(e);
      if (!r.ok) throw new Error(r.reason);
      return r.fields;
    };
    expect(restrictsBothDayFields(fields('0 0 1 * mon'))).toBe(true);
    expect(restrictsBothDayFields(fields('0 0 * * mon'))).toBe(false);
    expect(restrictsBothDayFields(fields('0 0 0 1 * mon'))).toBe(true);
  });
});
