import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { records, runningPhase, startCli, waitFor } from '../support/crash.js';
import { freePort, LocalHarness } from '../support/local-harness.js';
import { api, killServes, serve } from '../support/serve.js';

/**
 * A state directory that is read-only from the start, or becomes read-only in
 * the middle of a run (issue #12). Read-only mounts need root (a bind mount
 * remounted ro); elsewhere these tests are skipped.
 */

const TOKEN = 'state-test-token-0123456789abcdef';

function canMount(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('mount', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function setReadOnly(dir: string, readOnly: boolean): void {
  execFileSync('mount', ['-o', `remount,${readOnly ? 'ro' : 'rw'},bind`, dir]);
}

let harness: LocalHarness;
let stateDir: string;
let config: string;
let mounted = false;

describe.runIf(canMount())('state directory faults', () => {
  beforeAll(async () => {
    harness = await LocalHarness.start();
    stateDir = path.join(harness.sandbox.root, 'state');
    mkdirSync(stateDir, { recursive: true });
    execFileSync('mount', ['--bind', stateDir, stateDir]);
    mounted = true;
    config = path.join(harness.sandbox.root, 'state.yaml');
    writeFileSync(
      config,
      `stateDir: state
server:
  host: 127.0.0.1
  port: 0
  tokens: [{ name: ci, token: { env: API_TOKEN } }]
jobs:${harness.jobYaml({ name: 'qa', targetPort: await freePort(), verify: '      databases: [{ name: app }]' })}`,
    );
  });

  afterAll(async () => {
    killServes();
    if (mounted) execFileSync('umount', ['-l', stateDir]);
    await harness?.destroy();
  });

  const env = () => ({ ...harness.env, API_TOKEN: TOKEN });

  it('run: a read-only state directory is a clear error, not a stack trace, and nothing is touched', async () => {
    setReadOnly(stateDir, true);
    try {
      const cli = startCli(['run', 'qa', '--config', config], env());
      expect(await cli.exit).toBe(2);
      expect(cli.stderr()).toContain('cannot write to the state directory');
      expect(cli.stderr()).toContain('read-only');
      expect(cli.stderr()).not.toMatch(/^\s+at /m);
    } finally {
      setReadOnly(stateDir, false);
    }
  });

  it('serve: /readyz is 503 and names the state directory while it is read-only', async () => {
    setReadOnly(stateDir, true);
    const service = await serve(config, env()).catch((error: unknown) => {
      setReadOnly(stateDir, false);
      throw error;
    });
    try {
      const ready = await api(service.base, TOKEN, 'GET', '/readyz');
      expect(ready.status).toBe(503);
      expect(JSON.stringify(ready.body)).toContain('cannot write to the state directory');
    } finally {
      setReadOnly(stateDir, false);
      await service.stop();
    }
  });

  it('becoming read-only after teardown stops the run with a clear error, and the next run settles it', async () => {
    const first = startCli(['run', 'qa', '--config', config, '-o', 'json'], env());
    expect(await first.exit, first.stderr()).toBe(0);
    const before = new Set(records(stateDir, 'qa').map((r) => r.id));
    const cli = startCli(['run', 'qa', '--config', config, '-o', 'json'], env());
    const run = await waitFor(
      'clone',
      () => {
        const r = records(stateDir, 'qa').find((x) => !before.has(x.id));
        return r && runningPhase(r) === 'clone' ? r : undefined;
      },
      60_000,
      5,
    );
    setReadOnly(stateDir, true);
    let code: number | null;
    try {
      code = await cli.exit;
    } finally {
      setReadOnly(stateDir, false);
    }
    expect(code).toBe(1);
    expect(cli.stderr()).toContain('its record could not be saved');
    expect(cli.stderr()).toContain('stays down until a refresh succeeds');
    expect(cli.stderr()).not.toMatch(/^\s+at /m);
    const next = startCli(['run', 'qa', '--config', config, '-o', 'json'], env());
    expect(await next.exit, next.stderr()).toBe(0);
    expect(records(stateDir, 'qa').find((r) => r.id === run.id)?.status).toBe('interrupted');
  });
});
