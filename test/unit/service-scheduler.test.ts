import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { JobConfig } from '../../src/config/types.js';
import { upcomingLeadMinutes } from '../../src/notify/index.js';
import { silentLogger } from '../../src/observe/logger.js';
import type { MissedCount } from '../../src/schedule/fire-times.js';
import { Scheduler, type SchedulerActions, type Timers } from '../../src/schedule/scheduler.js';
import { ConcurrencyGate } from '../../src/service/gate.js';

/** The scheduler with a fake clock, fake timers and hand-driven ticks: no node-cron, no waiting. */

class FakeClock {
  constructor(public ms: number) {}
  now = () => new Date(this.ms);
}

class FakeTimers implements Timers {
  readonly pending = new Map<number, { at: number; fn: () => void }>();
  #id = 0;
  constructor(private readonly clock: FakeClock) {}
  set(fn: () => void, ms: number): unknown {
    this.#id += 1;
    this.pending.set(this.#id, { at: this.clock.ms + ms, fn });
    return this.#id;
  }
  clear(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  /** Moves the clock forward, firing due timers in order. */
  advanceTo(ms: number): void {
    for (;;) {
      const due = [...this.pending].filter(([, t]) => t.at <= ms).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.pending.delete(due[0]);
      this.clock.ms = Math.max(this.clock.ms, due[1].at);
      due[1].fn();
    }
    this.clock.ms = ms;
  }
}

function config(jobs: string, notifications = '') {
  return parseConfig(`${notifications}\njobs:${jobs}`, { source: 't.yaml', baseDir: '/tmp', env: { U: 'https://hooks.example.com/x' } });
}

const job = (name: string, extra: string, port: number) => `
  - name: ${name}
${extra}
    source: { host: db.example.com, user: r }
    target: { kind: local, dataDir: /tmp/${name}, port: ${port} }`;

function harness(jobs: readonly JobConfig[], start: string, leadMinutes: (job: JobConfig) => number[] = () => []) {
  const clock = new FakeClock(Date.parse(start));
  const timers = new FakeTimers(clock);
  const events: string[] = [];
  const ticks = new Map<string, { onTick(d: Date): void; onMissed(d: Date): void }>();
  const actions: SchedulerActions = {
    fire: (j, at, late) => events.push(`fire ${j.name} ${at.toISOString()}${late ? ' late' : ''}`),
    missed: (j, newest, count: MissedCount) => events.push(`missed ${j.name} ${newest.toISOString()} x${count.count}`),
    upcoming: (j, at, lead) => events.push(`upcoming ${j.name} ${at.toISOString()} ${lead}min at ${clock.now().toISOString()}`),
  };
  const scheduler = new Scheduler({
    jobs,
    clock,
    log: silentLogger(),
    actions,
    leadMinutes,
    timers,
    startTicker: (input) => {
      ticks.set(input.name.replace('db-refresher:', ''), input.handlers);
      return { stop: async () => undefined };
    },
  });
  return { clock, timers, events, ticks, scheduler };
}

describe('Scheduler', () => {
  it('starts one ticker per scheduled job, passes ticks on, and marks late ones', () => {
    const c = config(job('a', '    schedule: "0 3 * * *"', 5501) + job('manual', '', 5502));
    const h = harness(c.jobs, '2026-05-01T02:00:00Z');
    h.scheduler.start();
    expect([...h.ticks.keys()]).toEqual(['a']);
    h.clock.ms = Date.parse('2026-05-01T03:00:00.020Z');
    h.ticks.get('a')?.onTick(new Date('2026-05-01T03:00:00Z'));
    h.clock.ms = Date.parse('2026-05-01T03:10:00Z');
    h.ticks.get('a')?.onTick(new Date('2026-05-01T03:00:00Z'));
    expect(h.events).toEqual(['fire a 2026-05-01T03:00:00.000Z', 'fire a 2026-05-01T03:00:00.000Z late']);
  });

  it('collects the slots node-cron reports missed into one notice per job', async () => {
    const c = config(job('a', '    schedule: "* * * * * *"', 5501));
    const h = harness(c.jobs, '2026-05-01T02:00:00Z');
    h.scheduler.start();
    const handlers = h.ticks.get('a');
    for (const s of [1, 2, 3]) handlers?.onMissed(new Date(`2026-05-01T02:00:0${s}Z`));
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.events).toEqual(['missed a 2026-05-01T02:00:03.000Z x3']);
  });

  it('announces each upcoming run once, at the longest lead time, and re-arms for the next', () => {
    const c = config(job('a', '    schedule: "0 3 * * *"', 5501));
    const h = harness(c.jobs, '2026-05-01T01:00:00Z', () => [30, 90]);
    h.scheduler.start();
    // 90 minutes before 03:00 is 01:30; the notifier tells the 30-minute targets later itself.
    h.timers.advanceTo(Date.parse('2026-05-02T02:45:00Z'));
    expect(h.events).toEqual([
      'upcoming a 2026-05-01T03:00:00.000Z 90min at 2026-05-01T01:30:00.000Z',
      'upcoming a 2026-05-02T03:00:00.000Z 90min at 2026-05-02T01:30:00.000Z',
    ]);
  });

  it('does not announce a run already closer than the lead time, nor runs of suspended jobs', () => {
    const c = config(job('a', '    schedule: "0 3 * * *"', 5501) + job('s', '    schedule: "0 3 * * *"\n    suspend: true', 5502));
    const h = harness(c.jobs, '2026-05-01T02:45:00Z', () => [30]);
    h.scheduler.start();
    h.timers.advanceTo(Date.parse('2026-05-01T12:00:00Z'));
    expect(h.events).toEqual([]);
    h.timers.advanceTo(Date.parse('2026-05-02T02:30:00Z'));
    expect(h.events).toEqual(['upcoming a 2026-05-02T03:00:00.000Z 30min at 2026-05-02T02:30:00.000Z']);
    // The suspended job still has a ticker (shared with a, same schedule), so its ticks are recorded as skipped.
    expect([...h.ticks.keys()]).toEqual(['a+1']);
    h.ticks.get('a+1')?.onTick(new Date('2026-05-02T03:00:00Z'));
    expect(h.events.slice(1)).toEqual(['fire a 2026-05-02T03:00:00.000Z', 'fire s 2026-05-02T03:00:00.000Z']);
  });

  it('re-arms waits longer than setTimeout allows', () => {
    const c = config(job('y', '    schedule: "@yearly"', 5501));
    const h = harness(c.jobs, '2026-01-01T01:00:00Z', () => [60]);
    h.scheduler.start();
    const [first] = [...h.timers.pending.values()];
    expect((first?.at ?? 0) - h.clock.ms).toBe(2 ** 31 - 1);
    h.timers.advanceTo(Date.parse('2027-01-01T00:00:00Z'));
    expect(h.events).toEqual(['upcoming y 2027-01-01T00:00:00.000Z 60min at 2026-12-31T23:00:00.000Z']);
  });

  it('stop() clears timers and ignores later ticks', async () => {
    const c = config(job('a', '    schedule: "0 3 * * *"', 5501));
    const h = harness(c.jobs, '2026-05-01T01:00:00Z', () => [30]);
    h.scheduler.start();
    expect(h.timers.pending.size).toBe(1);
    await h.scheduler.stop();
    expect(h.timers.pending.size).toBe(0);
    h.ticks.get('a')?.onTick(new Date('2026-05-01T03:00:00Z'));
    expect(h.events).toEqual([]);
  });

  it('caches the next run until it passes, and gives none for suspended or manual jobs', () => {
    const c = config(
      job('a', '    schedule: "*/5 * * * *"', 5501) + job('s', '    schedule: "@daily"\n    suspend: true', 5502) + job('m', '', 5503),
    );
    const h = harness(c.jobs, '2026-05-01T01:02:00Z');
    const [a, s, m] = c.jobs as [JobConfig, JobConfig, JobConfig];
    expect(h.scheduler.nextRun(a)?.toISOString()).toBe('2026-05-01T01:05:00.000Z');
    h.clock.ms = Date.parse('2026-05-01T01:05:00Z');
    expect(h.scheduler.nextRun(a)?.toISOString()).toBe('2026-05-01T01:10:00.000Z');
    expect(h.scheduler.nextRun(s)).toBeUndefined();
    expect(h.scheduler.nextRun(m)).toBeUndefined();
    expect(h.scheduler.nextRuns(a, 3).map((d) => d.toISOString())).toEqual([
      '2026-05-01T01:10:00.000Z',
      '2026-05-01T01:15:00.000Z',
      '2026-05-01T01:20:00.000Z',
    ]);
  });

  it('takes lead times from the notification targets that want upcoming notices', () => {
    const c = config(
      `${job('a', '    schedule: "@daily"\n    notify: [team, ops, quiet]', 5501)}`,
      `notifications:
  team: { kind: slack, url: { env: U }, events: [upcoming], upcomingLeadMinutes: 15 }
  ops: { kind: generic, url: { env: U }, events: [failed, upcoming] }
  quiet: { kind: slack, url: { env: U }, events: [failed], upcomingLeadMinutes: 5 }`,
    );
    expect(upcomingLeadMinutes(c, (c.jobs[0] as JobConfig).name).sort((x, y) => x - y)).toEqual([15, 30]);
  });
});

describe('ConcurrencyGate', () => {
  const jobOn = (host: string, port = 5432) => ({ source: { host, port } }) as JobConfig;

  it('limits runs globally and per source, and queues the rest first come, first served', async () => {
    const gate = new ConcurrencyGate({ global: 2, perSource: 1 });
    const a1 = gate.tryAcquire(jobOn('a'));
    expect(a1).toBeDefined();
    expect(gate.tryAcquire(jobOn('A'))).toBeUndefined(); // same source, other spelling
    const b1 = gate.tryAcquire(jobOn('b'));
    expect(b1).toBeDefined();
    expect(gate.tryAcquire(jobOn('c'))).toBeUndefined(); // global limit
    expect(gate.running).toBe(2);

    const order: string[] = [];
    const signal = new AbortController().signal;
    const waitA = gate.acquire(jobOn('a'), signal).then((r) => {
      order.push('a2');
      return r;
    });
    const waitC = gate.acquire(jobOn('c'), signal).then((r) => {
      order.push('c');
      return r;
    });
    expect(gate.queued).toBe(2);
    b1?.();
    // a is still busy on its source: c, queued later, goes first.
    await waitC;
    expect(order).toEqual(['c']);
    a1?.();
    await waitA;
    expect(order).toEqual(['c', 'a2']);
    expect(gate.running).toBe(2);
  });

  it('does not let a new arrival overtake a waiter for the same source, and drops aborted waiters', async () => {
    const gate = new ConcurrencyGate({ global: 5, perSource: 1 });
    const first = gate.tryAcquire(jobOn('a'));
    const abort = new AbortController();
    const waiting = gate.acquire(jobOn('a'), abort.signal);
    first?.();
    const second = await waiting;
    expect(gate.tryAcquire(jobOn('a'))).toBeUndefined();
    const abort2 = new AbortController();
    const gaveUp = gate.acquire(jobOn('a'), abort2.signal);
    abort2.abort(new Error('shutting down'));
    await expect(gaveUp).rejects.toThrow('shutting down');
    expect(gate.queued).toBe(0);
    second();
    second(); // releasing twice is harmless
    expect(gate.running).toBe(0);
  });
});
