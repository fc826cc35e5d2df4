/**
 * The local blue/green swap on real PostgreSQL: a current copy serving on the job's port, a new copy
 * beside it on a spare port, then the swap (stop, two renames, start) while a prober queries through
 * the job's port every 10 ms. And a kill -9 of the process doing the swap after each of its steps:
 * the next run of the swap finishes it, with the right copy current and the other kept as previous.
 */
import { spawn } from 'node:child_process';
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

  it('a kill -9 of the swapping process after any step is repaired by the next run of the swap', async () => {
    const stepCount = 7; // every step before `finish`
    for (let killAfter = 1; killAfter <= stepCount; killAfter++) {
      const incoming = await cloneBeside();
      const outgoing = await beginSwap(incoming);
      const seen = await runChildAndKill(killAfter);
      // The process died after `seen` steps (the kill lands right after the step's line, or during the next step).
      expect(seen, `kill after ${killAfter}`).toBeGreaterThanOrEqual(Math.min(killAfter, stepCount));
      const repaired = await slots().run({ log, signal: new AbortController().signal, drainSeconds: 0, now: () => new Date() });
      expect(slots().slot('current'), `kill after ${killAfter}; repair: ${repaired.steps.map((s) => s.step).join(', ')}`).toMatchObject({
        kind: 'ours',
        runId: incoming,
        runningPort: port,
      });
      expect(slots().slot('previous')).toMatchObject({ kind: 'ours', runId: outgoing });
      expect(slots().slot('next')).toEqual({ kind: 'missing' });
      expect(slots().journal()).toBeUndefined();
      expect(existsSync(`${dataDir}.db-refresher-trash`)).toBe(false);
      const probe = startProber(owner());
      await probe.ready(10_000);
      await probe.stop();
    }
  }, 600_000);

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

/** Runs the swap in a child process and SIGKILLs it right after its `killAfter`-th step; returns the steps it reported. */
function runChildAndKill(killAfter: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.resolve(import.meta.dirname, '../support/swap-child.ts'),
        JSON.stringify({ job: 'qa', dataDir, host: '127.0.0.1', port, drainSeconds: 0 }),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let steps = 0;
    let buffer = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout.on('data', (d: Buffer) => {
      buffer += d.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        if (line.includes('"swap step done"')) steps++;
        if (steps >= killAfter) child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL' && code !== 0) reject(new Error(`swap child exited ${code}: ${stderr}`));
      else resolve(steps);
    });
  });
}
