import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, startCli, throttledBinDir, waitForPhase } from '../support/crash.js';
import { freePort, LocalHarness } from '../support/local-harness.js';
import { killServes, type Served, serve } from '../support/serve.js';

/**
 * `db-refresher serve` and `db-refresher run` on one state directory, as two
 * real processes (issue #14): the service shows the CLI's run while it runs
 * and after it ends (job state, history, the data-age metric), and the job's
 * lock keeps the two from refreshing the same job at once, both ways.
 */

const TOKEN = 'serve-cli-token-0123456789abcdef';
let harness: LocalHarness;
let slowBin: string;
const live: CliProcess[] = [];

beforeAll(async () => {
  harness = await LocalHarness.start();
  // Slow enough that each process can look at the other's run while it clones.
  slowBin = throttledBinDir(harness, 8192);
});

afterEach(() => {
  for (const p of live.splice(0)) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  killServes();
});

afterAll(async () => {
  await harness?.destroy();
});

function env(): NodeJS.ProcessEnv {
  return { ...harness.env, API_TOKEN: TOKEN, PG_BINDIR: slowBin };
}

async function get(served: Served, url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${served.base}${url}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function post(served: Served, url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${served.base}${url}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Polls `probe` every 100 ms for up to `ms`; async, unlike support/processes' waitFor. */
async function eventually<T>(what: string, probe: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('a service and a CLI run on one state directory', () => {
  it("the service shows the CLI's run while it runs and once it ended, and each respects the other's lock", async () => {
    const job = 'shared';
    const config = path.join(harness.sandbox.root, 'shared.yaml');
    const stateDir = path.join(harness.sandbox.root, 'state');
    writeFileSync(
      config,
      `stateDir: state
server:
  host: 127.0.0.1
  port: 0
  tokens: [{ name: ci, token: { env: API_TOKEN } }]
jobs:${harness.jobYaml({ name: job, targetPort: await freePort() })}`,
    );
    const served = await serve(config, env());
    expect((await get(served, `/api/v1/jobs/${job}`)).body).toMatchObject({ current: null, lastRun: null, lastSuccess: null });

    // 1. The CLI runs; the service sees it as the job's current run and refuses to start another.
    const cli = startCli(['run', job, '--config', config, '-o', 'json'], env());
    live.push(cli);
    const during = await waitForPhase(stateDir, job, 'clone');
    const shown = await eventually('the CLI run as current', async () => {
      const body = (await get(served, `/api/v1/jobs/${job}`)).body;
      return (body.current as { id?: string } | null)?.id === during.id ? body : undefined;
    });
    expect(shown.current).toMatchObject({ id: during.id, status: 'running' });
    const busy = await post(served, `/api/v1/jobs/${job}/runs`);
    expect(busy.status).toBe(409);
    expect(busy.body).toMatchObject({ error: 'job-busy' });
    expect(String(busy.body.message)).toContain(during.id);

    expect(await cli.exit, cli.stderr()).toBe(0);
    const finished = JSON.parse(cli.stdout()) as { id: string; status: string };
    expect(finished).toMatchObject({ id: during.id, status: 'succeeded' });

    // 2. Once it ended: last run and last success, the run list, and the data-age metric, without a restart.
    const after = await eventually('the CLI run as last run', async () => {
      const body = (await get(served, `/api/v1/jobs/${job}`)).body;
      return (body.lastRun as { id?: string } | null)?.id === during.id ? body : undefined;
    });
    expect(after).toMatchObject({ current: null, lastRun: { id: during.id, status: 'succeeded' }, lastSuccess: { id: during.id } });
    const runs = (await get(served, `/api/v1/jobs/${job}/runs`)).body.runs as Array<{ id: string }>;
    expect(runs.map((r) => r.id)).toContain(during.id);
    const metrics = await (await fetch(`${served.base}/metrics`)).text();
    const lastSuccess = /^db_refresher_last_success_timestamp_seconds\{job="shared"\} (\S+)$/m.exec(metrics)?.[1];
    expect(Number(lastSuccess)).toBeGreaterThan(Date.parse(during.createdAt) / 1000 - 60);
    expect(metrics).toMatch(/^db_refresher_runs_total\{job="shared",result="succeeded"\} 1$/m);

    // 3. The service runs; a CLI run of the same job is refused while it does.
    const started = await post(served, `/api/v1/jobs/${job}/runs`);
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const serviceRun = (started.body.run as { id: string }).id;
    await waitForPhase(stateDir, job, 'clone', new Set([during.id]));
    const refused = startCli(['run', job, '--config', config, '-o', 'json'], env());
    live.push(refused);
    expect(await refused.exit).toBe(1);
    expect(refused.stdout() + refused.stderr()).toContain(`job "${job}" is already running (run ${serviceRun}`);
    const done = await eventually(
      'the service run to finish',
      async () => {
        const body = (await get(served, `/api/v1/runs/${serviceRun}`)).body;
        return body.status === 'succeeded' || body.status === 'failed' ? body : undefined;
      },
      120_000,
    );
    expect(done.status).toBe('succeeded');
    // Counted once: the service's own run comes through its events, not again through the lock's release.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await (await fetch(`${served.base}/metrics`)).text()).toMatch(/^db_refresher_runs_total\{job="shared",result="succeeded"\} 2$/m);
    await served.stop();
  });
});
