import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../src/postgres/command.js';
import { processesMatching, waitFor } from '../support/processes.js';

/** Child processes never outlive their phase, whatever their descendants do, and never see the service's secrets. */

const dir = mkdtempSync(path.join(tmpdir(), 'dbr-child-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A unique sleep length, so the test finds its own processes and nobody else's. */
function marker(): string {
  return `${60 + Math.floor(Math.random() * 1000)}.${Math.floor(Math.random() * 1e6)}`;
}

/**
 * Waits (2 s at most) until no process's command line holds `needle`: a SIGKILLed process stays in
 * /proc, not yet a zombie, until the kernel has run its exit, which a loaded machine may delay.
 * Whatever was not killed (a sleep of a minute or more) is still there after 2 s and fails the test.
 */
async function gone(needle: string): Promise<void> {
  await waitFor(`no process running ${needle}`, () => processesMatching(needle).length === 0, 2_000).catch(() => undefined);
  expect(processesMatching(needle)).toEqual([]);
}

describe('runCommand', () => {
  it('ends a timed-out program and the descendant that keeps its output open, within seconds', async () => {
    const m = marker();
    const started = Date.now();
    // Like pg_basebackup's WAL receiver: a forked child that inherits stdout and outlives its parent's death.
    const result = await runCommand('/bin/sh', ['-c', `sleep ${m} & echo started; sleep ${m}`], { timeoutMs: 500 });
    expect(result.timedOut).toBe(true);
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(result.tail).toContain('started');
    await gone(`sleep ${m}`);
  });

  it('ends the whole group when the signal aborts', async () => {
    const m = marker();
    const abort = new AbortController();
    const started = Date.now();
    const run = runCommand('/bin/sh', ['-c', `sleep ${m} & sleep ${m}`], { signal: abort.signal });
    setTimeout(() => abort.abort(new Error('stop')), 300);
    await run;
    expect(Date.now() - started).toBeLessThan(8_000);
    await gone(`sleep ${m}`);
  });

  it('does not start a program when the signal has already aborted', async () => {
    const abort = new AbortController();
    abort.abort(new Error('shutting down'));
    const file = path.join(dir, 'should-not-exist');
    await expect(runCommand('/usr/bin/touch', [file], { signal: abort.signal })).rejects.toThrow(/not started: shutting down/);
    await new Promise((r) => setTimeout(r, 200));
    expect(existsSync(file)).toBe(false);
  });

  it('returns when the program exits, and ends what it left running in its group', async () => {
    const m = marker();
    const started = Date.now();
    const result = await runCommand('/bin/sh', ['-c', `sleep ${m} & echo done`]);
    expect(result.exitCode).toBe(0);
    expect(Date.now() - started).toBeLessThan(5_000);
    await gone(`sleep ${m}`);
  });

  it('waits for a timeout beyond what a timer can hold instead of firing at once', async () => {
    const result = await runCommand('/bin/sleep', ['0.3'], { timeoutMs: 2 ** 32 });
    expect(result).toMatchObject({ timedOut: false, exitCode: 0 });
  });

  it("passes a minimal environment by default, without the service's secrets", async () => {
    process.env.DBR_TEST_SECRET = 'very-secret-value';
    try {
      const result = await runCommand('/usr/bin/env', []);
      expect(result.tail.join('\n')).not.toContain('very-secret-value');
      expect(result.tail.some((l) => l.startsWith('PATH='))).toBe(true);
    } finally {
      delete process.env.DBR_TEST_SECRET;
    }
  });
});
