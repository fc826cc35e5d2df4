import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { RunRecord } from '../../src/run/record.js';
import { CLI_BIN } from './cli.js';
import type { LocalHarness } from './local-harness.js';
import { environOf, processesMatching, waitFor } from './processes.js';

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
