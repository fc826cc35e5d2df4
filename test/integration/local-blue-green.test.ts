/**
 * strategy: blueGreen through the real runner on real PostgreSQL: the current copy serves while the
 * new one is cloned beside it and verified; the swap costs clients one stop and one start (a prober
 * queries through the job's port every 10 ms); a failure before the swap leaves the current copy as it
 * was; a rollback is a run of its own and brings the previous copy back.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_OWNER } from '../../scripts/sample-data.js';
import type { Config } from '../../src/config/types.js';
import { serverOsUser } from '../../src/postgres/os-user.js';
import { LocalSlots } from '../../src/targets/local/swap.js';
import { dataDirOf, freePort, LocalHarness } from '../support/local-harness.js';
import { startProber } from '../support/prober.js';

let h: LocalHarness;
let port: number;
let config: Config;
let dataDir: string;

const slots = () =>
  new LocalSlots({ job: 'qa', dataDir, host: '127.0.0.1', port, runAs: serverOsUser(), env: process.env, startTimeoutSeconds: 60 });
const owner = () => ({ host: '127.0.0.1', port, user: APP_OWNER, password: h.ownerPassword, database: 'app' });
const statuses = (run: { phases: Array<{ name: string; status: string }> }) =>
  Object.fromEntries(run.phases.map((p) => [p.name, p.status]));

beforeAll(async () => {
  h = await LocalHarness.start();
  port = await freePort();
  config = h.config(`${h.jobYaml({ targetPort: port })}    strategy: { kind: blueGreen, drainSeconds: 1, keepPrevious: 1h }\n`);
  dataDir = dataDirOf(config);
});

afterAll(async () => {
  await h?.destroy();
});

describe('strategy blueGreen, local', () => {
  it('the first run has no copy to keep: it clones beside, verifies, and swaps into place', async () => {
    const run = await h.run(config);
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(statuses(run)).toEqual({
      preflight: 'succeeded',
      snapshot: 'succeeded',
      'clone-beside': 'succeeded',
      start: 'succeeded',
      // The new copy goes through the private window on its spare slot before it is verified.
      neutralise: 'succeeded',
      prepare: 'succeeded',
      mask: 'succeeded',
      open: 'succeeded',
      verify: 'succeeded',
      swap: 'succeeded',
      'cleanup-previous': 'succeeded',
    });
    expect(slots().slot('current')).toMatchObject({ kind: 'ours', runId: run.id, runningPort: port });
    expect(slots().slot('previous')).toEqual({ kind: 'missing' });
  });

  it('a refresh keeps the current copy serving until the swap; clients see a gap under 5 s', async () => {
    const before = slots().slot('current');
    const prober = startProber(owner());
    await prober.ready();
    const run = await h.run(config);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const probe = await prober.stop();
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    const swap = run.phases.find((p) => p.name === 'swap');
    console.log(`blue/green refresh: swap downtime ${swap?.detail?.downtimeMs} ms, prober longest gap ${probe.longestGapMs} ms`);
    expect(probe.longestGapMs).toBeLessThan(5000);
    // The old copy checkpoints while it still serves, so its shutdown (the start of the gap) has little to write.
    const steps = (swap?.detail?.steps ?? []) as string[];
    const at = (name: string) => steps.findIndex((s) => s.startsWith(`${name} (`));
    expect(at('checkpoint current')).toBeGreaterThan(-1);
    expect(at('checkpoint current')).toBeLessThan(at('stop current'));
    expect(slots().slot('current')).toMatchObject({ kind: 'ours', runId: run.id, runningPort: port });
    expect(slots().slot('previous')).toMatchObject({ kind: 'ours', runId: before.kind === 'ours' ? before.runId : 'none' });
    expect(run.phases.find((p) => p.name === 'cleanup-previous')?.detail).toMatchObject({ previousKeptUntil: expect.any(String) });
    // The verification ran against the new copy on its spare port, before the swap.
    const clone = run.phases.find((p) => p.name === 'clone-beside')?.detail;
    expect(clone?.sparePort).not.toBe(port);
  });

  it('rollback is a run of its own that brings the previous copy back, and a second one rolls forward', async () => {
    const current = slots().slot('current');
    const previous = slots().slot('previous');
    const run = await h.run(config, 'qa', { operation: 'rollback', reason: 'bad data in the new copy' });
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(run.operation).toBe('rollback');
    expect(run.trigger).toMatchObject({ kind: 'cli', reason: 'bad data in the new copy' });
    expect(statuses(run)).toEqual({ rollback: 'succeeded' });
    expect(slots().slot('current')).toMatchObject({
      kind: 'ours',
      runId: previous.kind === 'ours' ? previous.runId : '',
      runningPort: port,
    });
    expect(slots().slot('previous')).toMatchObject({ kind: 'ours', runId: current.kind === 'ours' ? current.runId : '' });
    const again = await h.run(config, 'qa', { operation: 'rollback' });
    expect(again.status).toBe('succeeded');
    expect(slots().slot('current')).toMatchObject({ runId: current.kind === 'ours' ? current.runId : '' });
  });

  it('a failure before the swap leaves the current copy untouched, says so, and removes the half-made copy', async () => {
    const current = slots().slot('current');
    const failing = h.config(
      `${h.jobYaml({ targetPort: port, verify: '      databases: [{ name: app, minTables: 100000 }]' })}    strategy: { kind: blueGreen, drainSeconds: 1 }\n`,
    );
    const prober = startProber(owner());
    await prober.ready();
    const run = await h.run(failing);
    const probe = await prober.stop();
    expect(run.status).toBe('failed');
    expect(run.error?.phase).toBe('verify');
    expect(run.error?.message).toContain('the current copy was not changed');
    expect(slots().slot('current')).toEqual(current);
    expect(slots().slot('next')).toEqual({ kind: 'missing' });
    expect(probe.failures).toBe(0);
  });

  it('keepPrevious 0 removes the previous copy right after the swap; a rollback then says there is none', async () => {
    const now = h.config(`${h.jobYaml({ targetPort: port })}    strategy: { kind: blueGreen, drainSeconds: 0, keepPrevious: 0 }\n`);
    const run = await h.run(now);
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(slots().slot('previous')).toEqual({ kind: 'missing' });
    expect(existsSync(`${dataDir}.db-refresher-previous`)).toBe(false);
    const rollback = await h.run(now, 'qa', { operation: 'rollback' });
    expect(rollback.status).toBe('failed');
    expect(rollback.error?.message).toContain('no previous copy is kept');
    expect(slots().slot('current')).toMatchObject({ runId: run.id, runningPort: port });
  });
});
