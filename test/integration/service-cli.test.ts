import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FileRunStore } from '../../src/history/file-store.js';
import type { RunRecord } from '../../src/run/record.js';
import { freePort, LocalHarness } from '../support/local-harness.js';

/**
 * `db-refresher serve` as built and run by users: SIGTERM in the middle of a
 * real refresh stops at the next phase boundary, persists the run as paused,
 * exits 0; the next start resumes it (clone done: start and verify are safe to
 * redo) or marks it interrupted (stopped before teardown: nothing changed).
 */

const bin = path.resolve(import.meta.dirname, '../../dist/src/cli/bin.js');
const TOKEN = 'cli-test-token-0123456789abcdef';

interface Served {
  child: ChildProcess;
  base: string;
  lines: string[];
  exit: Promise<number | null>;
}

let harness: LocalHarness;
let configFile: string;
let stateDir: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  harness = await LocalHarness.start();
  // Ballast, so the clone takes long enough to be caught in the middle.
  await harness.source.sql("CREATE TABLE ballast AS SELECT g, repeat('x', 300) AS pad FROM generate_series(1, 400000) g", 'reporting');
  const targetPort = await freePort();
  configFile = path.join(harness.sandbox.root, 'serve.yaml');
  stateDir = path.join(harness.sandbox.root, 'state');
  writeFileSync(
    configFile,
    `stateDir: state
server:
  host: 127.0.0.1
  port: 0
  shutdownGraceSeconds: 60
  tokens: [{ name: ci, token: { env: API_TOKEN } }]
jobs:${harness.jobYaml({ name: 'qa', targetPort })}`,
  );
});

afterEach(() => {
  // A failed test must not leave a service behind.
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

afterAll(async () => {
  await harness?.destroy();
});

async function serve(): Promise<Served> {
  const child = spawn(process.execPath, [bin, 'serve', '--config', configFile], {
    env: { ...harness.env, API_TOKEN: TOKEN },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  const lines: string[] = [];
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${lines.join('\n')}`)), 30_000);
    let buffer = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const parts = buffer.split('\n');
      buffer = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        const parsed = JSON.parse(line) as { msg?: string; address?: string };
        if (parsed.msg === 'HTTP API listening' && parsed.address) {
          clearTimeout(timer);
          resolve(parsed.address);
        }
      }
    });
    void exit.then((code) => reject(new Error(`serve exited ${code}:\n${lines.join('\n')}`)));
  });
  return { child, base, lines, exit };
}

async function call(base: string, method: string, url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${base}${url}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, body: await res.json() };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const phaseRunning = (run: RunRecord) => run.phases.find((p) => p.status === 'running')?.name;

describe('serve: SIGTERM in the middle of a run', () => {
  it('during clone: finishes the clone, saves the run paused, exits 0; the next start resumes it from start', async () => {
    const first = await serve();
    await until('ready', async () => ((await call(first.base, 'GET', '/readyz')).status === 200 ? true : undefined));
    const started = await call(first.base, 'POST', '/api/v1/jobs/qa/runs');
    expect(started.status).toBe(202);
    const id = (started.body as { run: { id: string } }).run.id;
    await until('the clone phase', async () => {
      const run = (await call(first.base, 'GET', `/api/v1/runs/${id}`)).body as RunRecord;
      return phaseRunning(run) === 'clone' ? true : undefined;
    });
    first.child.kill('SIGTERM');
    // While it drains: no new runs, not ready, but still answering.
    const refused = await until('503', async () => {
      const r = await call(first.base, 'POST', '/api/v1/jobs/qa/runs');
      return r.status === 503 ? r : undefined;
    });
    expect(refused.body).toMatchObject({ error: 'shutting-down' });
    expect((await call(first.base, 'GET', '/readyz')).status).toBe(503);
    expect(await first.exit).toBe(0);

    const store = new FileRunStore(stateDir);
    const paused = await store.get(id);
    expect(paused?.status).toBe('running');
    expect(paused?.paused).toMatchObject({ nextPhase: 'start', reason: 'received SIGTERM' });
    // preflight, snapshot, teardown and clone done; start, the private window's phases and verify to go.
    expect(paused?.phases.map((p) => p.status)).toEqual([...Array(4).fill('succeeded'), ...Array(6).fill('pending')]);
    expect(first.lines.some((l) => l.includes('run paused between phases'))).toBe(true);

    const second = await serve();
    const resumed = await until('the resumed run', async () => {
      const run = (await call(second.base, 'GET', `/api/v1/runs/${id}`)).body as RunRecord;
      return run.status === 'running' || run.status === 'queued' ? undefined : run;
    });
    expect(resumed.status, JSON.stringify(resumed.error)).toBe('succeeded');
    expect(resumed.resumed).toEqual([expect.objectContaining({ fromPhase: 'start' })]);
    expect(resumed.paused).toBeUndefined();
    expect(resumed.verification?.ok).toBe(true);
    second.child.kill('SIGTERM');
    expect(await second.exit).toBe(0);
  });

  it('before teardown: nothing changed, so the next start marks it interrupted and says so', async () => {
    const first = await serve();
    await until('ready', async () => ((await call(first.base, 'GET', '/readyz')).status === 200 ? true : undefined));
    const started = await call(first.base, 'POST', '/api/v1/jobs/qa/runs');
    const id = (started.body as { run: { id: string } }).run.id;
    first.child.kill('SIGTERM');
    expect(await first.exit).toBe(0);
    const paused = await new FileRunStore(stateDir).get(id);
    expect(paused?.status).toBe('running');
    const next = paused?.paused?.nextPhase;
    expect(['preflight', 'snapshot', 'teardown']).toContain(next);

    const second = await serve();
    const closed = await until('the interrupted run', async () => {
      const run = (await call(second.base, 'GET', `/api/v1/runs/${id}`)).body as RunRecord;
      return run.status === 'interrupted' ? run : undefined;
    });
    expect(closed.error).toMatchObject({ phase: next, class: 'interrupted' });
    expect(closed.error?.message).toContain('nothing was changed on the target; run the job again');
    second.child.kill('SIGTERM');
    expect(await second.exit).toBe(0);
  });
});
