import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN } from '../support/cli.js';
import { freePort, LocalHarness } from '../support/local-harness.js';

/**
 * A finished `db-refresher run` exits as soon as it has written its record: nothing (a timer, a
 * pool, a socket) may keep the event loop alive. The bounds here are loose on purpose: the
 * benchmark (bench/refresh-vs-script.ts) holds the real figure.
 */

let harness: LocalHarness;
let configFile: string;

beforeAll(async () => {
  harness = await LocalHarness.start();
  configFile = path.join(harness.sandbox.root, 'exit.yaml');
  // sslmode prefer (the default) against a server without TLS: every connection first tries TLS and
  // falls back, which is where a stray timer used to hold the process for a second.
  writeFileSync(configFile, `stateDir: state\njobs:${harness.jobYaml({ targetPort: await freePort() })}`);
});

afterAll(async () => {
  await harness?.destroy();
});

/** Runs node with args; resolves with the output and the time from the first stdout byte matching `marker` to exit. */
function timeToExit(
  args: string[],
  marker: RegExp,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number | undefined }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let markedAt: number | undefined;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (markedAt === undefined && marker.test(stdout)) markedAt = performance.now();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('exit', (code) => {
      const ms = markedAt === undefined ? undefined : performance.now() - markedAt;
      child.on('close', () => resolve({ code, stdout, stderr, ms }));
    });
  });
}

describe('process exit', () => {
  it('`run` exits within 1 s of printing its record on a small source', async () => {
    const result = await timeToExit([CLI_BIN, 'run', 'qa', '--config', configFile, '-o', 'json'], /"status"/, harness.env);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ job: 'qa', status: 'succeeded' });
    expect(result.ms).toBeDefined();
    expect(result.ms).toBeLessThan(1000);
  });

  it('a connection that falls back from TLS leaves no timer behind (the cause of the 1 s wait)', async () => {
    const sqlModule = pathToFileURL(path.resolve(import.meta.dirname, '../../dist/src/postgres/sql.js')).href;
    const { source } = harness;
    // The child prints "done" when its session has ended; then nothing may hold it up.
    const script = `
      const { PgConnector } = await import(${JSON.stringify(sqlModule)});
      const password = { reveal: () => ${JSON.stringify(source.superuserPassword)} };
      const endpoint = { host: '127.0.0.1', port: ${source.port}, user: 'postgres', sslmode: 'prefer', password };
      await new PgConnector().withSession(endpoint, 'postgres', (s) => s.query('SELECT 1'));
      process.stdout.write('done\\n');`;
    const result = await timeToExit(['--input-type=module', '-e', script], /done/, process.env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.ms).toBeDefined();
    // A pending 1 s timer made this about 1,000 ms; with nothing pending it is a few.
    expect(result.ms).toBeLessThan(400);
  });
});
