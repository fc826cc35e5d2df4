/**
 * kill -9 of a real `db-refresher run` (the built CLI) at each step of the local blue/green swap: after
 * the old copy stopped, after current → previous, after next → current, and after the new copy
 * started. The process is made to wait after the chosen step (DB_REFRESHER_TEST_PAUSE_AFTER_SWAP_STEP,
 * read by the swap itself), so the kill lands exactly between two steps, even between the two renames
 * that are microseconds apart. The next `db-refresher run` finishes the interrupted swap, deletes
 * nothing it should keep (the killed run's copy becomes the previous copy), refreshes, and serves.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { APP_OWNER } from '../../scripts/sample-data.js';
import { serverOsUser } from '../../src/postgres/os-user.js';
import type { RunRecord } from '../../src/run/record.js';
import { LocalSlots } from '../../src/targets/local/swap.js';
import { type CliProcess, records, startCli, waitFor } from '../support/crash.js';
import { freePort, LocalHarness } from '../support/local-harness.js';
import { startProber } from '../support/prober.js';

let h: LocalHarness;
let port: number;
let configFile: string;
let stateDir: string;
let dataDir: string;
const live: CliProcess[] = [];

const slots = () =>
  new LocalSlots({ job: 'qa', dataDir, host: '127.0.0.1', port, runAs: serverOsUser(), env: process.env, startTimeoutSeconds: 60 });

function run(extraEnv: NodeJS.ProcessEnv = {}): CliProcess {
  const p = startCli(['run', 'qa', '--config', configFile, '-o', 'json'], { ...h.env, ...extraEnv });
  live.push(p);
  return p;
}

async function runToEnd(): Promise<RunRecord> {
  const p = run();
  const code = await p.exit;
  const record = JSON.parse(p.stdout()) as RunRecord;
  expect(code, `${JSON.stringify(record.error)}\n${p.stderr().slice(-2000)}`).toBe(0);
  return record;
}

beforeAll(async () => {
  h = await LocalHarness.start();
  port = await freePort();
  configFile = path.join(h.sandbox.root, 'bg.yaml');
  stateDir = path.join(h.sandbox.root, 'state');
  dataDir = path.join(h.sandbox.root, 'copies', 'qa');
  writeFileSync(
    configFile,
    `stateDir: state\njobs:${h.jobYaml({ targetPort: port })}    strategy: { kind: blueGreen, drainSeconds: 0, keepPrevious: 1h }\n`,
  );
  const first = await runToEnd();
  expect(first.status).toBe('succeeded');
});

afterEach(() => {
  for (const p of live.splice(0)) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
});

afterAll(async () => {
  await h?.destroy();
});

type SlotState = ReturnType<LocalSlots['slot']>;
const runIdOf = (s: SlotState) => (s.kind === 'ours' ? s.runId : `(${s.kind})`);

/** What the disk must show right after each step, before any repair: outgoing O, incoming K. */
const AFTER: Record<string, (o: string, k: string) => { current: object; next: object; previous: object }> = {
  'stop-current': (o, k) => ({
    current: { kind: 'ours', runId: o, runningPort: undefined },
    next: { kind: 'ours', runId: k, runningPort: undefined, configuredPort: port },
    previous: { kind: 'missing' },
  }),
  'move-current-previous': (o, k) => ({
    current: { kind: 'missing' },
    next: { kind: 'ours', runId: k, runningPort: undefined },
    previous: { kind: 'ours', runId: o, runningPort: undefined },
  }),
  'move-next-current': (o, k) => ({
    current: { kind: 'ours', runId: k, runningPort: undefined },
    next: { kind: 'missing' },
    previous: { kind: 'ours', runId: o },
  }),
  'start-current': (o, k) => ({
    current: { kind: 'ours', runId: k, runningPort: port },
    next: { kind: 'missing' },
    previous: { kind: 'ours', runId: o },
  }),
};

describe('kill -9 of `db-refresher run` during the local blue/green swap', () => {
  for (const step of Object.keys(AFTER)) {
    it(`killed after "${step}": the next run finishes the swap, keeps the killed run's copy as previous, refreshes and serves`, {
      timeout: 300_000,
    }, async () => {
      const outgoing = runIdOf(slots().slot('current'));
      const before = new Set(records(stateDir, 'qa').map((r) => r.id));
      const cli = run({ DB_REFRESHER_TEST_PAUSE_AFTER_SWAP_STEP: step });
      await waitFor(
        `the swap to pause after ${step}`,
        () => cli.stderr().includes('swap paused for a crash test') || undefined,
        120_000,
        20,
      );
      cli.child.kill('SIGKILL');
      await cli.exit;
      const killed = records(stateDir, 'qa').find((r) => !before.has(r.id));
      expect(killed?.status).toBe('running');
      expect(killed?.phases.find((p) => p.name === 'swap')?.status).toBe('running');
      const incoming = killed?.id as string;

      // The state the kill left, exactly as the step made it; the journal says what the swap was doing.
      const expected = AFTER[step]?.(outgoing, incoming);
      expect({ current: slots().slot('current'), next: slots().slot('next'), previous: slots().slot('previous') }).toMatchObject(
        expected as object,
      );
      expect(slots().journal()).toMatchObject({ kind: 'swap', runId: incoming, incoming, outgoing });

      const next = await runToEnd();
      expect(next.status).toBe('succeeded');
      const clone = next.phases.find((p) => p.name === 'clone-beside')?.detail;
      expect(clone?.finishedInterruptedSwap, JSON.stringify(clone)).toEqual(expect.arrayContaining(['finish']));
      // The interrupted swap was finished (the killed run's copy became current), then this run swapped
      // its own copy in: the killed run's copy is the previous one now, and the older one made room.
      expect(slots().slot('current')).toMatchObject({ kind: 'ours', runId: next.id, runningPort: port, configuredPort: port });
      expect(slots().slot('previous')).toMatchObject({ kind: 'ours', runId: incoming, runningPort: undefined });
      expect(slots().slot('next')).toEqual({ kind: 'missing' });
      expect(slots().journal()).toBeUndefined();
      expect(records(stateDir, 'qa').find((r) => r.id === incoming)?.status).not.toBe('running');

      const probe = startProber({ host: '127.0.0.1', port, user: APP_OWNER, password: h.ownerPassword, database: 'app' });
      await probe.ready(10_000);
      expect((await probe.stop()).answered).toBe(true);
    });
  }
});
