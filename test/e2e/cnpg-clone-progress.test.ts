/**
 * A CNPG clone's progress, read from the source's pg_stat_progress_basebackup
 * while the clone Job's pg_basebackup runs: the real service and its API, the
 * real CNPG target, the test API server, the simulated operator (whose clone is
 * the real pg_basebackup, slowed here with --max-rate so that it lasts several
 * seconds), and a real PostgreSQL source.
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/pg-sandbox.js';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { findPgBinDir } from '../../src/postgres/binaries.js';
import { type RunRecord, TERMINAL_RUN_STATUSES } from '../../src/run/record.js';
import { RefresherService } from '../../src/service/service.js';
import type { SimulatedOperator } from '../cnpg-sim/index.js';
import { type CnpgFixture, GUIDE_SOURCE_HOST, startCnpgFixture } from '../support/cnpg-fixture.js';
import type { CnpgHarness } from '../support/cnpg-harness.js';

const TOKEN = 'progress-writer-token-0123456789';
const WATCHER_PASSWORD = 'watcher-pw-0123456789';

let fixture: CnpgFixture;
let h: CnpgHarness;
let sim: SimulatedOperator;
let binRoot: string;

/**
 * The server binaries with a pg_basebackup that keeps to --max-rate: the
 * simulated clone Job runs `pg_basebackup -D … -v -w -d …` as CNPG does, and
 * the small test source then takes several seconds to copy.
 */
function slowServerBinDir(rate: string): string {
  const real = findPgBinDir(undefined, process.env, ['pg_basebackup', 'pg_ctl', 'postgres']);
  if (!real) throw new Error('no PostgreSQL binaries');
  binRoot = mkdtempSync(path.join(tmpdir(), 'cnpg-progress-bin-'));
  // The simulated Job runs pg_basebackup as the PostgreSQL OS user, who must reach the wrapper.
  chmodSync(binRoot, 0o755);
  const dir = path.join(binRoot, 'bin');
  mkdirSync(dir, { mode: 0o755 });
  for (const name of readdirSync(real.dir)) {
    if (name !== 'pg_basebackup') symlinkSync(path.join(real.dir, name), path.join(dir, name));
  }
  writeFileSync(path.join(dir, 'pg_basebackup'), `#!/bin/sh\nexec ${path.join(real.dir, 'pg_basebackup')} --max-rate=${rate} "$@"\n`, {
    mode: 0o755,
  });
  return dir;
}

beforeAll(async () => {
  fixture = await startCnpgFixture('cnpg-progress', { operator: { pgBinDir: slowServerBinDir('4M') } });
  ({ h, sim } = fixture);
  // A SQL role that may CHECKPOINT but not read other roles' statistics.
  await h.local.source.sql(`CREATE ROLE watcher LOGIN PASSWORD '${WATCHER_PASSWORD}'; GRANT pg_checkpoint TO watcher;`);
});

afterAll(async () => {
  await fixture?.stop();
  if (binRoot) rmSync(binRoot, { recursive: true, force: true });
});

async function serviceConfig(cluster: string, sqlUser: 'postgres' | 'watcher'): Promise<{ config: Config; env: NodeJS.ProcessEnv }> {
  const port = await sim.clusterPort(h.namespace, cluster);
  const env = { ...h.directEnv(), API_TOKEN: TOKEN, WATCHER_PASSWORD };
  const source = h
    .directSourceYaml()
    .replace(
      'sql: { user: postgres, password: { env: SUPERUSER_PASSWORD } }',
      `sql: { user: ${sqlUser}, password: { env: ${sqlUser === 'postgres' ? 'SUPERUSER_PASSWORD' : 'WATCHER_PASSWORD'} } }`,
    );
  const jobs = h
    .jobYaml({ name: 'qa', clusterName: cluster, connectPort: port, job: source })
    .replace(`host: 127.0.0.1, port: "${h.local.source.port}"`, `host: ${GUIDE_SOURCE_HOST}, port: "5432"`);
  const config = parseConfig(
    `stateDir: state-${cluster}\nserver:\n  tokens:\n    - { name: ci, token: { env: API_TOKEN } }\njobs:${jobs}`,
    {
      source: 'progress.yaml',
      baseDir: h.local.sandbox.root,
      env,
    },
  );
  return { config, env };
}

interface Sample {
  phase: string | undefined;
  progress: Record<string, unknown> | undefined;
}

/** Starts the service, triggers the job through the API, and reads the run's `live` field every 200 ms until the run ends. */
async function refreshThroughApi(
  cluster: string,
  sqlUser: 'postgres' | 'watcher',
): Promise<{ run: RunRecord; samples: Sample[]; logs: string[] }> {
  const { config, env } = await serviceConfig(cluster, sqlUser);
  const logs: string[] = [];
  const log = pino(
    { level: 'debug' },
    new Writable({
      write: (chunk, _e, cb) => {
        logs.push(String(chunk));
        cb();
      },
    }),
  );
  const service = await RefresherService.create({ config, env, log });
  try {
    await service.start();
    const base = await service.listen({ host: '127.0.0.1', port: await freePort() });
    const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    const started = await fetch(`${base}/api/v1/jobs/qa/runs`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ reason: 'progress test' }),
    });
    expect(started.status).toBe(202);
    const { run: summary } = (await started.json()) as { run: { id: string } };
    const samples: Sample[] = [];
    const deadline = Date.now() + 110_000;
    for (;;) {
      const res = await fetch(`${base}/api/v1/runs/${summary.id}`, { headers });
      const run = (await res.json()) as RunRecord & { live?: { phase?: string; progress?: Record<string, unknown> } };
      if (TERMINAL_RUN_STATUSES.has(run.status)) return { run, samples, logs };
      if (run.live) samples.push({ phase: run.live.phase, progress: run.live.progress });
      if (Date.now() > deadline) throw new Error(`the run did not end: ${JSON.stringify(run.phases)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    await service.stop('test over');
  }
}

/** Sessions still reading the view on the source (the poller's, if one were left behind). */
async function progressReaders(): Promise<number> {
  const rows = await h.local.source.sql<{ n: string }>(
    "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE '%pg_stat_progress_basebackup p%' AND pid <> pg_backend_pid()",
  );
  return Number(rows[0]?.n);
}

describe('the progress of a CNPG clone', () => {
  it("shows the clone's percent, bytes and ETA in the API's live field while pg_basebackup runs, then stops reading", async () => {
    const { run, samples, logs } = await refreshThroughApi('progress-db', 'postgres');
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    const percents = samples
      .filter((s) => s.phase === 'start' && typeof s.progress?.percent === 'number')
      .map((s) => s.progress?.percent as number);
    // Several distinct values under way, in order; the copy of a 4 MB/s clone lasts several seconds.
    const under = [...new Set(percents.filter((p) => p > 0 && p < 100))];
    expect(under.length, `percents seen: ${percents.join(', ')}`).toBeGreaterThanOrEqual(2);
    expect(percents).toEqual([...percents].sort((a, b) => a - b));
    const moving = samples.find((s) => typeof s.progress?.percent === 'number' && (s.progress.percent as number) < 100);
    expect(moving?.progress).toMatchObject({
      backupPhase: expect.any(String),
      copiedBytes: expect.any(Number),
      totalBytes: expect.any(Number),
    });
    expect(samples.some((s) => typeof s.progress?.etaMs === 'number')).toBe(true);
    expect(logs.join('')).not.toContain("the clone's progress is not shown");
    // The poller ended with the phase: no session of it is left on the source.
    expect(await progressReaders()).toBe(0);
  });

  it('a SQL role without pg_read_all_stats: no progress, one debug line naming the grant, and the refresh succeeds', async () => {
    const { run, samples, logs } = await refreshThroughApi('progress-db-2', 'watcher');
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(samples.filter((s) => s.progress?.percent !== undefined)).toEqual([]);
    const line = logs.find((l) => l.includes("the clone's progress is not shown"));
    expect(line).toBeDefined();
    expect(JSON.parse(line as string)).toMatchObject({
      level: 20,
      reason: expect.stringContaining('GRANT pg_read_all_stats TO "watcher"'),
    });
    expect(await progressReaders()).toBe(0);
  });
});
