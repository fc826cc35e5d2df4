import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FileRunStore } from '../../src/history/file-store.js';
import { newRunId, newSkippedRun, type RunRecord } from '../../src/run/record.js';
import { records, startCli } from '../support/crash.js';
import { freePort, LocalHarness } from '../support/local-harness.js';
import { api, killServes, serve } from '../support/serve.js';

/**
 * What start-up recovery and history retention do with records that real runs
 * left (issue #12): runs made through the built CLI against a real source,
 * then the record rewritten the way a crash or a shutdown leaves it, and
 * `db-refresher serve` started as users start it.
 */

const TOKEN = 'history-test-token-0123456789abcdef';
let harness: LocalHarness;

beforeAll(async () => {
  harness = await LocalHarness.start();
});

afterEach(() => {
  killServes();
});

afterAll(async () => {
  await harness?.destroy();
});

function env(): NodeJS.ProcessEnv {
  return { ...harness.env, API_TOKEN: TOKEN };
}

function writeConfig(name: string, jobYaml: string, history = ''): { file: string; stateDir: string } {
  const file = path.join(harness.sandbox.root, `${name}.yaml`);
  writeFileSync(
    file,
    `stateDir: state-${name}
server:
  host: 127.0.0.1
  port: 0
  tokens: [{ name: ci, token: { env: API_TOKEN } }]
${history}
jobs:${jobYaml}`,
  );
  return { file, stateDir: path.join(harness.sandbox.root, `state-${name}`) };
}

async function cliRun(config: string, job: string, extra: string[] = []): Promise<RunRecord> {
  const cli = startCli(['run', job, '--config', config, '-o', 'json', ...extra], env());
  const code = await cli.exit;
  expect(code, cli.stdout() + cli.stderr()).toBe(0);
  return JSON.parse(cli.stdout()) as RunRecord;
}

/** A finished record as a process that died while `phase` ran leaves it: running, nothing after it done. */
function crashedIn(run: RunRecord, phase: string, id = run.id): RunRecord {
  const at = run.phases.findIndex((p) => p.name === phase);
  const { finishedAt: _f, durationMs: _d, verification: _v, error: _e, ...rest } = run;
  return {
    ...rest,
    id,
    status: 'running',
    phases: run.phases.map((p, i) =>
      i < at
        ? p
        : i === at
          ? { name: p.name, status: 'running', startedAt: p.startedAt ?? run.createdAt }
          : { name: p.name, status: 'pending' },
    ),
  };
}

/** A finished record as a service stopped by SIGTERM leaves it: between two phases, `paused` before `phase`. */
function pausedBefore(run: RunRecord, phase: string): RunRecord {
  const at = run.phases.findIndex((p) => p.name === phase);
  const { finishedAt: _f, durationMs: _d, verification: _v, ...rest } = run;
  return {
    ...rest,
    status: 'running',
    phases: run.phases.map((p, i) => (i < at ? p : { name: p.name, status: 'pending' })),
    paused: { at: new Date().toISOString(), reason: 'SIGTERM', nextPhase: run.phases[at]?.name ?? 'verify' },
  };
}

async function skippedAfter(store: FileRunStore, like: RunRecord, count: number): Promise<void> {
  for (let i = 0; i < count; i += 1) {
    const now = new Date(Date.now() + 1_000 + i);
    await store.save(
      newSkippedRun({
        id: newRunId(now),
        job: like.job,
        trigger: { kind: 'schedule', by: 'scheduler' },
        now,
        reason: 'overlap',
        source: like.source,
        target: like.target,
      }),
    );
  }
}

describe('start-up recovery', () => {
  it('settles a run left running with no lock, behind 30 newer records: interrupted in its phase, saying what to do', async () => {
    const job = 'buried';
    const { file, stateDir } = writeConfig(job, harness.jobYaml({ name: job, targetPort: await freePort() }));
    const done = await cliRun(file, job);
    const store = new FileRunStore(stateDir);
    // Died in clone (no lock file names it: the lock went with a lost node's emptyDir, say), then 30 skipped ticks.
    const buried = crashedIn(done, 'clone', newRunId(new Date(Date.parse(done.createdAt) - 60_000)));
    await store.save(buried);
    await skippedAfter(store, done, 30);
    expect(readdirSync(path.join(stateDir, 'locks')).filter((n) => n.endsWith('.lock'))).toEqual([]);

    const served = await serve(file, env());
    // The last success is older than the 25 newest records too: still the job's last success, and the data age starts there.
    const state = (await api(served.base, TOKEN, 'GET', `/api/v1/jobs/${job}`)).body as { lastSuccess: { id: string } | null };
    expect(state.lastSuccess?.id).toBe(done.id);
    const metrics = await (await fetch(`${served.base}/metrics`)).text();
    expect(metrics).toContain(`db_refresher_last_success_timestamp_seconds{job="${job}"} ${Date.parse(done.finishedAt ?? '') / 1000}`);
    await served.stop();
    const settled = await store.get(buried.id);
    expect(settled?.status).toBe('interrupted');
    expect(settled?.error).toMatchObject({ phase: 'clone', class: 'interrupted' });
    expect(settled?.error?.message).toBe(
      'the service stopped while clone was running, which cannot be resumed safely: the target may be incomplete; run the job again',
    );
    expect(records(stateDir, job).filter((r) => r.status === 'running')).toEqual([]);
  });

  it('refuses to resume a run whose copy a newer run replaced: interrupted, naming the phase, the newer run and what to do', async () => {
    const job = 'replaced';
    const { file, stateDir } = writeConfig(job, harness.jobYaml({ name: job, targetPort: await freePort() }));
    const older = await cliRun(file, job);
    const newer = await cliRun(file, job);
    // The older run, as a service stopped by SIGTERM before its verify left it; the newer run made the copy since.
    const store = new FileRunStore(stateDir);
    await store.save(pausedBefore(older, 'verify'));

    const served = await serve(file, env());
    await served.stop();
    const refused = await store.get(older.id);
    expect(refused?.status).toBe('interrupted');
    expect(refused?.resumed).toBeUndefined();
    expect(refused?.error).toMatchObject({ phase: 'verify', class: 'interrupted' });
    const message = refused?.error?.message ?? '';
    expect(message).toContain(`run ${older.id} cannot be resumed`);
    expect(message).toContain(`holds the copy made by run ${newer.id}`);
    expect(message).toContain(
      `Nothing to do for this run: the copy there is run ${newer.id}'s (its record says how it went); run the job again for a fresh copy`,
    );
    expect(served.lines.join('\n')).toContain('could not resume the run');
    // The newer copy was neither touched nor verified again.
    expect((await store.get(newer.id))?.status).toBe('succeeded');
  });
});

describe('history retention (server.history.keepRuns)', () => {
  it('keeps the newest successful refresh and an unfinished run, however many newer records there are', async () => {
    const job = 'pruned';
    const { file, stateDir } = writeConfig(
      job,
      harness.jobYaml({ name: job, targetPort: await freePort() }),
      '  history: { kind: file, keepRuns: 3 }',
    );
    const success = await cliRun(file, job);
    const store = new FileRunStore(stateDir);
    const unfinished = crashedIn(success, 'clone', newRunId(new Date(Date.parse(success.createdAt) - 60_000)));
    await store.save(unfinished);
    // Dry runs (they change nothing, so they are no success) pile up in front, through the CLI that prunes.
    const dryRuns: RunRecord[] = [];
    for (let i = 0; i < 5; i += 1) dryRuns.push(await cliRun(file, job, ['--dry-run']));

    const left = records(stateDir, job).map((r) => r.id);
    expect(left).toEqual([
      ...dryRuns
        .slice(-3)
        .map((r) => r.id)
        .reverse(),
      success.id,
      unfinished.id,
    ]);
  });
});
