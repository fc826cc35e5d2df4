/**
 * The local blue/green swap on real PostgreSQL: a current copy serving on the job's port, a new copy
 * beside it on a spare port, then the swap (stop, two renames, start) while a prober queries through
 * the job's port every 10 ms; and a slot holding a directory db-refresher did not make stops the swap.
 * A kill -9 of a real `db-refresher run` at each step of the swap is in local-blue-green-crash.test.ts.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_OWNER } from '../../scripts/sample-data.js';
import type { Config, JobConfig, LocalTargetConfig } from '../../src/config/types.js';
import type { PhaseContext } from '../../src/ports.js';
import { serverOsUser } from '../../src/postgres/os-user.js';
import type { RunRecord } from '../../src/run/record.js';
import { LocalTarget } from '../../src/targets/local/index.js';
import { LocalSlots } from '../../src/targets/local/swap.js';
import { dataDirOf, freePort, LocalHarness } from '../support/local-harness.js';
import { startProber } from '../support/prober.js';

const log = pino({ level: 'silent' });
let h: LocalHarness;
let config: Config;
let port: number;
let dataDir: string;
let counter = 0;

function slots(): LocalSlots {
  return new LocalSlots({ job: 'qa', dataDir, host: '127.0.0.1', port, runAs: serverOsUser(), env: process.env, startTimeoutSeconds: 60 });
}

/** Clones the source into the next slot on a spare port and starts it there, as the clone-beside phases do. */
async function cloneBeside(): Promise<string> {
  const runId = `20261202T10${String(counter++).padStart(4, '0')}000Z-aaaaaa`;
  const job = config.jobs[0] as JobConfig & { target: LocalTargetConfig };
  const spare = await freePort();
  const target = new LocalTarget({
    job: { ...job, target: { ...job.target, dataDir: slots().paths.next, port: spare } },
    jobPath: 'jobs[0]',
  });
  const ctx = {
    runId,
    run: { id: runId } as RunRecord,
    log,
    signal: new AbortController().signal,
    progress: () => undefined,
  } as PhaseContext;
  await target.clone(ctx);
  await target.start(ctx);
  return runId;
}

async function beginSwap(incoming: string): Promise<string> {
  const current = slots().slot('current');
  if (current.kind !== 'ours') throw new Error(`current is ${current.kind}`);
  await slots().writeJournal({
    kind: 'swap',
    job: 'qa',
    runId: incoming,
    incoming,
    outgoing: current.runId,
    startedAt: new Date().toISOString(),
  });
  return current.runId;
}

const owner = () => ({ host: '127.0.0.1', port, user: APP_OWNER, password: h.ownerPassword, database: 'app' });

beforeAll(async () => {
  h = await LocalHarness.start();
  port = await freePort();
  config = h.config(`${h.jobYaml({ targetPort: port })}    strategy: { kind: blueGreen, drainSeconds: 0 }\n`);
  dataDir = dataDirOf(config);
  const first = await h.run(config);
  expect(first.status, JSON.stringify(first.error)).toBe('succeeded');
});

afterAll(async () => {
  await h?.destroy();
});

describe('local blue/green swap', () => {
  it('swaps the new copy in behind the job port with one stop and one start; clients see a short gap', async () => {
    const incoming = await cloneBeside();
    const outgoing = await beginSwap(incoming);
    const prober = startProber(owner());
    await prober.ready();
    const outcome = await slots().run({ log, signal: new AbortController().signal, drainSeconds: 0, now: () => new Date() });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const probe = await prober.stop();
    expect(slots().slot('current')).toMatchObject({ kind: 'ours', runId: incoming, runningPort: port, configuredPort: port });
    expect(slots().slot('previous')).toMatchObject({ kind: 'ours', runId: outgoing, runningPort: undefined });
    expect(slots().slot('next')).toEqual({ kind: 'missing' });
    expect(slots().journal()).toBeUndefined();
    expect(slots().retired()?.byRun).toBe(incoming);
    expect(outcome.steps.map((s) => s.step)).toEqual([
      'stop next',
      `retarget next to port ${port}`,
      'stop current',
      'move current → previous',
      'move next → current',
      'start current',
      'mark previous retired',
      'finish',
    ]);
    console.log(`swap: downtime ${outcome.downtimeMs} ms, prober longest gap ${probe.longestGapMs} ms over ${probe.queries} queries`);
    expect(probe.answered).toBe(true);
    expect(probe.longestGapMs).toBeLessThan(5000);
    expect(outcome.downtimeMs).toBeDefined();
  });

  it('refuses to move anything when a slot holds a directory it did not make', async () => {
    const incoming = await cloneBeside();
    await beginSwap(incoming);
    const { mkdirSync, writeFileSync, rmSync } = await import('node:fs');
    const previous = slots().paths.previous;
    rmSync(previous, { recursive: true, force: true });
    mkdirSync(previous);
    writeFileSync(path.join(previous, 'PG_VERSION'), '15\n');
    await expect(slots().run({ log, signal: new AbortController().signal, drainSeconds: 0, now: () => new Date() })).rejects.toThrow(
      /did not make .*nothing was moved/,
    );
    expect(slots().slot('current')).toMatchObject({ kind: 'ours', runningPort: port });
    expect(existsSync(path.join(previous, 'PG_VERSION'))).toBe(true);
    rmSync(previous, { recursive: true, force: true });
    await slots().run({ log, signal: new AbortController().signal, drainSeconds: 0, now: () => new Date() });
    expect(slots().slot('current')).toMatchObject({ kind: 'ours', runId: incoming, runningPort: port });
  });
});
