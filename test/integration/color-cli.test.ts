import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, runCli } from '../support/cli.js';
import { freePort } from '../support/local-harness.js';
import { killServes, type Served, serve } from '../support/serve.js';

/**
 * NO_COLOR and FORCE_COLOR in the built CLI's text output: the status table
 * from a running service and the progress line of a local run. A terminal is
 * a real pseudo-terminal from util-linux `script`, so the CLI sees isTTY as
 * it does for a person.
 */

const exec = promisify(execFile);
const TOKEN = 'color-test-token-0123456789abcdef';
/** A colour (SGR) sequence; the progress line's cursor controls (\r\x1b[2K) are not colour. */
const SGR = /\x1b\[\d+(;\d+)*m/;

let dir: string;
let configFile: string;
let served: Served;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'dbr-color-'));
  const closed = await freePort();
  configFile = path.join(dir, 'color.yaml');
  // The source port is closed: a dry run fails in preflight, which is all the progress line needs.
  writeFileSync(
    configFile,
    `stateDir: state
server:
  host: 127.0.0.1
  port: 0
  tokens: [{ name: ci, token: { env: API_TOKEN } }]
jobs:
  - name: qa
    source: { host: 127.0.0.1, port: ${closed}, user: replicator }
    target: { kind: local, dataDir: data-qa, port: ${closed + 1} }
`,
  );
  served = await serve(configFile, { ...process.env, API_TOKEN: TOKEN });
});

afterAll(async () => {
  await served?.stop();
  killServes();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the CLI with stdin, stdout and stderr on a pseudo-terminal; returns what the terminal showed. */
async function onTerminal(args: string[], env: Record<string, string | undefined>): Promise<string> {
  const command = [process.execPath, CLI_BIN, ...args].map((a) => `'${a}'`).join(' ');
  const base: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm-256color' };
  delete base.NO_COLOR;
  delete base.FORCE_COLOR;
  const { stdout } = await exec('script', ['-qefc', command, '/dev/null'], { env: { ...base, ...env }, timeout: 60_000 }).catch(
    (error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }),
  );
  return stdout;
}

function piped(args: string[], env: Record<string, string | undefined>) {
  const base: NodeJS.ProcessEnv = { ...process.env };
  delete base.NO_COLOR;
  delete base.FORCE_COLOR;
  return runCli(args, { ...base, ...env });
}

describe('colour in text output', () => {
  const status = () => ['--server', served.base, 'status', '-o', 'text'];

  it('status table: coloured on a terminal, plain with NO_COLOR', async () => {
    const coloured = await onTerminal(status(), { DB_REFRESHER_TOKEN: TOKEN });
    expect(coloured).toContain('\x1b[1mJOB');
    expect(coloured).toMatch(/qa\s+never ran/);
    const plain = await onTerminal(status(), { DB_REFRESHER_TOKEN: TOKEN, NO_COLOR: '1' });
    expect(plain).toMatch(/JOB\s+STATUS\s+DATA AGE/);
    expect(plain).toMatch(/qa\s+never ran/);
    expect(plain).not.toMatch(SGR);
  });

  it('status table: plain into a pipe, coloured there with FORCE_COLOR (which wins over NO_COLOR); FORCE_COLOR=0 turns it off', async () => {
    const pipe = await piped(status(), { DB_REFRESHER_TOKEN: TOKEN });
    expect(pipe.code).toBe(0);
    expect(pipe.stdout).toMatch(/^JOB\s+STATUS/);
    expect(pipe.stdout).not.toMatch(SGR);
    const forced = await piped(status(), { DB_REFRESHER_TOKEN: TOKEN, FORCE_COLOR: '1', NO_COLOR: '1' });
    expect(forced.stdout).toContain('\x1b[1mJOB');
    const off = await onTerminal(status(), { DB_REFRESHER_TOKEN: TOKEN, FORCE_COLOR: '0' });
    expect(off).toMatch(/JOB\s+STATUS/);
    expect(off).not.toMatch(SGR);
  });

  it('progress line and run record of a local run: red ✗ on a terminal, no colour with NO_COLOR', async () => {
    const args = ['--config', configFile, 'run', 'qa', '--dry-run'];
    const coloured = await onTerminal(args, { API_TOKEN: TOKEN });
    expect(coloured).toContain('\x1b[31m✗\x1b[39m preflight');
    expect(coloured).toMatch(/FAILED|\x1b\[31mFAILED/);
    const plain = await onTerminal(args, { API_TOKEN: TOKEN, NO_COLOR: '1' });
    expect(plain).toMatch(/✗ preflight/);
    expect(plain).toContain('FAILED');
    expect(plain).not.toMatch(SGR);
  });

  it('run record into a pipe: FORCE_COLOR colours it, by default it is plain', async () => {
    const args = ['--config', configFile, 'run', 'qa', '--dry-run', '-o', 'text'];
    const pipe = await piped(args, { API_TOKEN: TOKEN });
    expect(pipe.code).toBe(1);
    expect(pipe.stdout).toContain(': FAILED in');
    expect(pipe.stdout).not.toMatch(SGR);
    const forced = await piped(args, { API_TOKEN: TOKEN, FORCE_COLOR: '1' });
    expect(forced.stdout).toContain(': \x1b[31mFAILED\x1b[39m in');
  });
});
