import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { RunRecord } from '../../src/run/record.js';
import { CLI_BIN } from './cli.js';
import type { LocalHarness } from './local-harness.js';
import { environOf, processesMatching, waitFor } from './processes.js';
import { api, type Served, serve } from './serve.js';

/**
 * Drives the built CLI from outside, the way a user or an init system does:
 * runs it, watches its run records on disk, and kills it (SIGKILL, SIGTERM)
 * at a chosen phase.
 */

export interface CliProcess {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
}

export function startCli(args: string[], env: NodeJS.ProcessEnv): CliProcess {
  const child = spawn(process.execPath, [CLI_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exit };
}

/** Every run record of a job, newest first, read straight from the file store. */
export function records(stateDir: string, job: string): RunRecord[] {
  const dir = path.join(stateDir, 'runs', job);
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  const out: RunRecord[] = [];
  for (const name of names.sort().reverse()) {
    try {
      out.push(JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as RunRecord);
    } catch {
      // Being renamed into place right now.
    }
  }
  return out;
}

export function runningPhase(run: RunRecord | undefined): string | undefined {
  return run?.phases.find((p) => p.status === 'running')?.name;
}

/** Waits until the newest record of `job` (not in `except`) has `phase` running; returns that record. */
export function waitForPhase(stateDir: string, job: string, phase: string, except: Set<string> = new Set(), timeoutMs = 60_000) {
  return waitFor(
    `phase ${phase}`,
    () => {
      const run = records(stateDir, job).find((r) => !except.has(r.id));
      return run && runningPhase(run) === phase ? run : undefined;
    },
    timeoutMs,
    5,
  );
}

/**
 * Starts `db-refresher run <job>`, waits until its newest record has `phase`
 * running, waits `delayMs` more, and kills it -9. Returns the killed run's
 * record as it was left on disk. `started` gets the CLI process (to kill it in
 * a test's clean-up should anything fail first).
 */
export async function killRunDuring(input: {
  stateDir: string;
  job: string;
  config: string;
  env: NodeJS.ProcessEnv;
  phase: string;
  delayMs?: number;
  /** Once the phase is under way, kill only when this holds (polled every 2 ms, up to 30 s). */
  until?: () => boolean | Promise<boolean>;
  started?: (cli: CliProcess) => void;
}): Promise<RunRecord> {
  const { stateDir, job, phase } = input;
  const before = new Set(records(stateDir, job).map((r) => r.id));
  const cli = startCli(['run', job, '--config', input.config, '-o', 'json'], input.env);
  input.started?.(cli);
  const run = await waitFor(
    `${phase} to start`,
    () => {
      const newest = records(stateDir, job).find((r) => !before.has(r.id));
      if (cli.child.exitCode !== null) throw new Error(`the run ended before ${phase}: ${cli.stdout()} ${cli.stderr()}`);
      return newest && runningPhase(newest) === phase ? newest : undefined;
    },
    60_000,
    2,
  );
  if (input.delayMs) await new Promise((r) => setTimeout(r, input.delayMs));
  const deadline = Date.now() + 30_000;
  while (input.until && !(await input.until())) {
    if (Date.now() > deadline || cli.child.exitCode !== null) throw new Error(`the moment to kill in ${phase} never came`);
    await new Promise((r) => setTimeout(r, 2));
  }
  cli.child.kill('SIGKILL');
  await cli.exit;
  return records(stateDir, job).find((r) => r.id === run.id) as RunRecord;
}

/**
 * What follows a kill with nobody doing anything by hand: a service starts
 * (its start-up recovery resumes or settles the killed run), then a refresh
 * runs through its API. Returns both runs as settled, and stops the service.
 */
export async function recoverThenRefresh(input: {
  stateDir: string;
  job: string;
  config: string;
  env: NodeJS.ProcessEnv;
  token: string;
  killed: RunRecord;
  started?: (service: Served) => void;
  /** Runs once the killed run has settled, before the refresh. */
  afterRecovery?: (settled: RunRecord) => Promise<void>;
}): Promise<{ settled: RunRecord; second: RunRecord; serviceExit: number | null }> {
  const { stateDir, job } = input;
  const service = await serve(input.config, input.env);
  input.started?.(service);
  const settledOf = (id: string, what: string) =>
    waitFor(
      what,
      () => {
        const r = records(stateDir, job).find((x) => x.id === id);
        return r && r.status !== 'running' && r.status !== 'queued' ? r : undefined;
      },
      60_000,
      20,
    );
  // Start-up recovery is done: the killed run is settled, or resumed and on its way to settled.
  const settled = await settledOf(input.killed.id, 'the killed run to settle');
  await input.afterRecovery?.(settled);
  // A resumed run's record is saved settled a moment before it lets go of the job: a 409 naming that
  // run then means "a moment later", as it would for any client.
  let started = await api(service.base, input.token, 'POST', `/api/v1/jobs/${job}/runs`);
  for (const until = Date.now() + 15_000; started.status === 409 && Date.now() < until; ) {
    if ((started.body as { runId?: string }).runId !== input.killed.id) break;
    await new Promise((r) => setTimeout(r, 200));
    started = await api(service.base, input.token, 'POST', `/api/v1/jobs/${job}/runs`);
  }
  if (started.status !== 202) throw new Error(`the second refresh was not accepted: ${started.status} ${JSON.stringify(started.body)}`);
  const second = await settledOf((started.body as { run: { id: string } }).run.id, 'the second refresh');
  return { settled, second, serviceExit: await service.stop() };
}

/**
 * A PG_BINDIR whose pg_basebackup is the real one, throttled with --max-rate,
 * so a clone of a small source lasts long enough to be interrupted.
 */
export function throttledBinDir(harness: LocalHarness, rateKb: number): string {
  const dir = path.join(harness.sandbox.root, `slow-bin-${rateKb}`);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const real = harness.source.binDir.dir;
  writeFileSync(path.join(dir, 'pg_basebackup'), `#!/bin/sh\nexec ${real}/pg_basebackup --max-rate=${rateKb}k "$@"\n`, { mode: 0o755 });
  for (const program of ['pg_ctl', 'postgres', 'initdb']) {
    try {
      symlinkSync(path.join(real, program), path.join(dir, program));
    } catch {
      // Already there.
    }
  }
  return dir;
}

/** pg_basebackup processes (and their watchdogs) copying into a staging directory under `root`. */
export function cloneProcesses(root: string) {
  return processesMatching(root).filter((p) => /pg_basebackup|db-refresher-child/.test(p.cmdline));
}

/** What the source shows of db-refresher's clones: walsenders and replication slots. */
export async function sourceReplication(harness: LocalHarness): Promise<{ senders: number; slots: number }> {
  const [senders] = await harness.source.sql<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name LIKE 'db-refresher%' OR application_name = 'pg_basebackup'",
  );
  const [slots] = await harness.source.sql<{ n: number }>('SELECT count(*)::int AS n FROM pg_replication_slots');
  return { senders: senders?.n ?? 0, slots: slots?.n ?? 0 };
}

/** Files under `root` whose content contains `needle` (skips unreadable files and the source cluster). */
export function filesContaining(root: string, needle: string, skip: string[] = []): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (skip.some((s) => full === s || full.startsWith(`${s}/`))) continue;
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) {
        try {
          if (readFileSync(full).includes(needle)) found.push(full);
        } catch {
          // Gone or unreadable.
        }
      }
    }
  };
  walk(root);
  return found;
}

export { environOf, processesMatching, waitFor };
