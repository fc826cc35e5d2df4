import cron from 'node-cron';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { checkCronExpression, expandCronFields } from '../../src/schedule/cron-expression.js';
import {
  buildSchedule,
  dstNotes,
  fireTimesBetween,
  formatInZone,
  latestFireTime,
  nextFireTime,
  nextFireTimes,
  planCatchUp,
  scheduleWarnings,
} from '../../src/schedule/fire-times.js';

const iso = (dates: readonly Date[]) => dates.map((d) => d.toISOString());

describe('expandCronFields', () => {
  it('expands lists, ranges, steps, names and nicknames; 7 is Sunday; "N/step" runs to the end of the field', () => {
    expect(expandCronFields('*/15 9-17 * * mon-fri')).toEqual({
      second: [0],
      minute: [0, 15, 30, 45],
      hour: [9, 10, 11, 12, 13, 14, 15, 16, 17],
      dayOfMonth: Array.from({ length: 31 }, (_, i) => i + 1),
      month: Array.from({ length: 12 }, (_, i) => i + 1),
      dayOfWeek: [1, 2, 3, 4, 5],
    });
    expect(expandCronFields('@weekly').dayOfWeek).toEqual([0]);
    expect(expandCronFields('0 0 * * 7').dayOfWeek).toEqual([0]);
    expect(expandCronFields('0 0 * * 5-7').dayOfWeek).toEqual([0, 5, 6]);
    expect(expandCronFields('5/20 * * * *').minute).toEqual([5, 25, 45]);
    expect(expandCronFields('30 2 * jan,jul sun').month).toEqual([1, 7]);
    expect(expandCronFields('*/20 * * * * *').second).toEqual([0, 20, 40]);
  });

  it('rejects a day of month that no listed month has, as node-cron does', () => {
    for (const e of ['0 0 30 2 *', '0 0 31 4,6,9,11 *']) {
      const check = checkCronExpression(e);
      expect(check.ok, e).toBe(false);
      if (!check.ok) expect(check.reason).toContain('never occurs');
      expect(cron.validate(e)).toBe(false);
    }
    expect(checkCronExpression('0 0 29 2 *').ok).toBe(true);
    expect(checkCronExpression('0 0 31 1-3 *').ok).toBe(true);
  });
});

describe('next fire times agree with node-cron', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  // node-cron computes from the current time only, so the clock is set to each start instant.
  const EXPRESSIONS = [
    '0 3 * * *',
    '30 2 * * *',
    '*/15 9-17 * * mon-fri',
    '0 0 1,15 * *',
    '30 2 * jan,jul sun',
    '@weekly',
    '@hourly',
    '*/10 * * * * *',
    '0 0 * * 7',
    '5/20 * * * *',
    '0 2 1 * mon',
    '0 */7 * * *',
    '0 0 29 2 *',
  ];
  const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kolkata', 'America/Santiago'];
  // Around DST changes in these zones, and plain days.
  const STARTS = [
    '2026-03-29T00:10:00Z',
    '2026-10-25T00:30:00Z',
    '2026-03-08T06:00:00Z',
    '2026-11-01T05:00:00Z',
    '2026-10-04T14:00:00Z',
    '2026-04-05T02:00:00Z',
    '2026-01-31T23:59:59Z',
  ];

  it.each(EXPRESSIONS)(
    '%s, in six zones, from seven instants',
    (expression) => {
      vi.useFakeTimers({ toFake: ['Date'] });
      for (const zone of ZONES) {
        const schedule = buildSchedule(expression, zone);
        for (const start of STARTS) {
          vi.setSystemTime(new Date(start));
          const task = cron.createTask(schedule.nodeCronExpression, () => undefined, { timezone: zone });
          try {
            const theirs = iso(task.getNextRuns(10));
            expect(iso(nextFireTimes(schedule, new Date(start), 10)), `${expression} ${zone} from ${start}`).toEqual(theirs);
          } finally {
            void task.destroy();
          }
        }
      }
      // Hundreds of next-fire computations per case: seconds on a busy 2-core machine, far from the 5 s default there.
    },
    60_000,
  );

  it('gives node-cron an expression it accepts for every valid input', () => {
    for (const expression of EXPRESSIONS) expect(cron.validate(buildSchedule(expression, 'UTC').nodeCronExpression)).toBe(true);
  });
});

describe('DST', () => {
  it('a daily 02:30 in Europe/Berlin is skipped on the spring day and runs once, at the second 02:30, in autumn', () => {
    const s = buildSchedule('30 2 * * *', 'Europe/Berlin');
    expect(iso(nextFireTimes(s, new Date('2026-03-28T12:00:00Z'), 2))).toEqual(['2026-03-30T00:30:00.000Z', '2026-03-31T00:30:00.000Z']);
    // 02:30 CEST would be 00:30Z; the second 02:30 (CET) is 01:30Z.
    expect(iso(nextFireTimes(s, new Date('2026-10-24T12:00:00Z'), 2))).toEqual(['2026-10-25T01:30:00.000Z', '2026-10-26T01:30:00.000Z']);
  });

  it('warns about fire times in a gap or an overlap, with what happens to them', () => {
    const notes = dstNotes(
      buildSchedule('30 2 * * *', 'Europe/Berlin'),
      new Date('2026-01-01T00:00:00Z'),
      new Date('2027-01-01T00:00:00Z'),
    );
    expect(notes.map((n) => [n.kind, n.localTimes, n.count])).toEqual([
      ['gap', ['2026-03-29 02:30'], 1],
      ['overlap', ['2026-10-25 02:30'], 1],
    ]);
    expect(notes[0]?.message).toBe(
      '2026-03-29 02:30 (Europe/Berlin) does not exist: clocks go forward 1 h at 02:00 local time; this run is skipped',
    );
    expect(notes[1]?.message).toBe(
      '2026-10-25 02:30 (Europe/Berlin) happens twice: clocks go back 1 h at 03:00 local time; each runs once, at its second occurrence',
    );
  });

  it('counts every fire time inside a gap, and handles 30-minute shifts', () => {
    const [note] = dstNotes(
      buildSchedule('*/2 * * * * *', 'Europe/Berlin'),
      new Date('2026-03-01T00:00:00Z'),
      new Date('2026-04-01T00:00:00Z'),
    );
    expect(note?.count).toBe(1800);
    expect(note?.message).toContain('2026-03-29 02:00:00, 2026-03-29 02:00:02, 2026-03-29 02:00:04 and 1797 more');
    const [howe] = dstNotes(
      buildSchedule('15 2 * * *', 'Australia/Lord_Howe'),
      new Date('2026-09-01T00:00:00Z'),
      new Date('2026-11-01T00:00:00Z'),
    );
    expect(howe?.message).toContain('clocks go forward 30 min at 02:00 local time');
  });

  it('says nothing for schedules that miss the changes, or zones without DST', () => {
    const year = [new Date('2026-01-01T00:00:00Z'), new Date('2027-01-01T00:00:00Z')] as const;
    expect(dstNotes(buildSchedule('0 3 * * *', 'Europe/Berlin'), ...year)).toEqual([]);
    expect(dstNotes(buildSchedule('30 2 * * *', 'UTC'), ...year)).toEqual([]);
    expect(dstNotes(buildSchedule('30 2 * * *', 'Asia/Kolkata'), ...year)).toEqual([]);
  });

  it('formats a fire time in its zone, with the offset', () => {
    expect(formatInZone(new Date('2026-10-25T01:30:00Z'), 'Europe/Berlin')).toBe('2026-10-25 02:30 +01:00');
    expect(formatInZone(new Date('2026-10-25T00:30:00Z'), 'Europe/Berlin')).toBe('2026-10-25 02:30 +02:00');
    expect(formatInZone(new Date('2026-01-01T00:00:05Z'), 'America/St_Johns', true)).toBe('2025-12-31 20:30:05 -03:30');
  });
});

describe('scheduleWarnings', () => {
  const jan = new Date('2026-01-01T00:00:00Z');

  it('warns when both day fields are restricted (node-cron ANDs them, Kubernetes ORs them)', () => {
    const [warning] = scheduleWarnings(buildSchedule('0 3 1 * mon', 'UTC'), jan);
    expect(warning).toContain('restricts both day of month and day of week');
    expect(warning).toContain('BOTH');
    // The first Monday that is also the 1st of a month, not every Monday and every 1st.
    expect(iso(nextFireTimes(buildSchedule('0 3 1 * mon', 'UTC'), jan, 2))).toEqual([
      '2026-06-01T03:00:00.000Z',
      '2027-02-01T03:00:00.000Z',
    ]);
    expect(scheduleWarnings(buildSchedule('0 3 * * mon', 'UTC'), jan)).toEqual([]);
    expect(scheduleWarnings(buildSchedule('0 3 1 * *', 'UTC'), jan)).toEqual([]);
  });
});

describe('missed runs: planCatchUp', () => {
  const daily = buildSchedule('0 3 * * *', 'UTC');
  const last = new Date('2026-01-01T03:00:00Z');

  it('does nothing when no fire time passed', () => {
    expect(planCatchUp(daily, last, new Date('2026-01-02T02:59:59Z'), 3600)).toEqual({ action: 'none' });
  });

  it('runs the newest missed time once when it is within the deadline', () => {
    expect(planCatchUp(daily, last, new Date('2026-01-02T03:30:00Z'), 3600)).toEqual({
      action: 'run',
      scheduledFor: new Date('2026-01-02T03:00:00Z'),
      missed: { count: 1, atLeast: false },
    });
    const decision = planCatchUp(daily, last, new Date('2026-01-08T03:59:00Z'), 3600);
    expect(decision).toMatchObject({ action: 'run', scheduledFor: new Date('2026-01-08T03:00:00Z'), missed: { count: 7 } });
  });

  it('records it as missed when it is older than the deadline', () => {
    expect(planCatchUp(daily, last, new Date('2026-01-08T05:00:00Z'), 3600)).toEqual({
      action: 'missed',
      scheduledFor: new Date('2026-01-08T03:00:00Z'),
      missed: { count: 7, atLeast: false },
      ageSeconds: 7200,
    });
    // Deadline 0: only an exact start would run.
    expect(planCatchUp(daily, last, new Date('2026-01-02T03:00:01Z'), 0)).toMatchObject({ action: 'missed' });
  });

  it('stays bounded for a per-second schedule down for a week', () => {
    const started = performance.now();
    const decision = planCatchUp(buildSchedule('* * * * * *', 'UTC'), last, new Date('2026-01-08T03:00:00.400Z'), 10);
    expect(decision).toMatchObject({ action: 'run', scheduledFor: new Date('2026-01-08T03:00:00Z'), missed: { atLeast: true } });
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it('finds the newest fire time in a range by widening windows', () => {
    const monthly = buildSchedule('@monthly', 'Europe/Berlin');
    expect(latestFireTime(monthly, new Date('2025-01-01T00:00:00Z'), new Date('2026-05-17T10:00:00Z'))?.toISOString()).toBe(
      '2026-04-30T22:00:00.000Z',
    );
    expect(latestFireTime(monthly, new Date('2026-05-01T00:00:00Z'), new Date('2026-05-17T10:00:00Z'))).toBeUndefined();
  });

  it('lists fire times between two instants, bounded', () => {
    const hourly = buildSchedule('@hourly', 'UTC');
    const { times, more } = fireTimesBetween(hourly, new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T05:00:00Z'), 3);
    expect(iso(times)).toEqual(['2026-01-01T01:00:00.000Z', '2026-01-01T02:00:00.000Z', '2026-01-01T03:00:00.000Z']);
    expect(more).toBe(true);
    expect(nextFireTime(hourly, new Date('2026-01-01T00:59:59.999Z'))?.toISOString()).toBe('2026-01-01T01:00:00.000Z');
  });
});
