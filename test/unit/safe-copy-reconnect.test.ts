import { describe, expect, it } from 'vitest';
import { PhaseFailure } from '../../src/errors.js';
import { isReconnectable, whileRestarting } from '../../src/safe-copy/reconnect.js';

describe('reconnecting to a copy that restarts', () => {
  it('retries network errors and connection SQLSTATEs, never query errors or phase failures', () => {
    expect(isReconnectable(new Error('Client network socket disconnected before secure TLS connection was established'))).toBe(true);
    expect(isReconnectable(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isReconnectable(Object.assign(new Error('the database system is starting up'), { code: '57P03' }))).toBe(true);
    expect(isReconnectable(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }))).toBe(true);
    expect(isReconnectable(Object.assign(new Error('connection failure'), { code: '08006' }))).toBe(true);
    expect(isReconnectable(Object.assign(new Error('relation "cron.job" does not exist'), { code: '42P01' }))).toBe(false);
    expect(isReconnectable(Object.assign(new Error('password authentication failed'), { code: '28P01' }))).toBe(false);
    expect(isReconnectable(new PhaseFailure('timeout', 'gave up'))).toBe(false);
  });

  it('runs the work again until it reaches the copy, and gives up at the deadline with the last error', async () => {
    let calls = 0;
    const signal = new AbortController().signal;
    const value = await whileRestarting(
      async () => {
        calls += 1;
        if (calls < 3) throw Object.assign(new Error('the database system is shutting down'), { code: '57P03' });
        return 'facts';
      },
      { signal, timeoutMs: 5_000, pauseMs: 1 },
    );
    expect(value).toBe('facts');
    expect(calls).toBe(3);

    let tries = 0;
    await expect(
      whileRestarting(
        async () => {
          tries += 1;
          throw new Error('connect ECONNREFUSED');
        },
        { signal, timeoutMs: 30, pauseMs: 5 },
      ),
    ).rejects.toThrow('ECONNREFUSED');
    expect(tries).toBeGreaterThan(1);

    let wrong = 0;
    await expect(
      whileRestarting(
        async () => {
          wrong += 1;
          throw Object.assign(new Error('syntax error'), { code: '42601' });
        },
        { signal, timeoutMs: 5_000, pauseMs: 1 },
      ),
    ).rejects.toThrow('syntax error');
    expect(wrong).toBe(1);
  });
});
