import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FileRunStore } from '../../src/history/file-store.js';
import { newRunId, newSkippedRun } from '../../src/run/record.js';
import { processStartTime } from '../../src/runner/process-identity.js';
import {
  type CliProcess,
  cloneProcesses,
  environOf,
  filesContaining,
  records,
  sourceReplication,
  startCli,
  throttledBinDir,
  waitFor,
  waitForPhase,
} from '../support/crash.js';
import { freePort, LocalHarness } from '../support/local-harness.js';
import { processesMatching } from '../support/processes.js';

/**
 * The local target and the runner under kill -9, SIGTERM and timeouts, driven
 * through the built CLI (issue #12): nothing is left holding the source, no
 * record stays `running`, no secret stays on disk or reaches a child process.
 */

const TOKEN = 'crash-test-token-0123456789abcdef';
const WEBHOOK = 'http://127.0.0.1:9/hooks/crash-test-webhook-secret-path';

let harness: LocalHarness;
let slowBin: string;
let stateDir: string;
const live: CliProcess[] = [];

beforeAll(async () => {
  harness = await LocalHarness.start();
  slowBin = throttledBinDir(harness, 1024);
  stateDir = path.join(harness.sandbox.root, 'state');
});

afterEach(() => {
  for (const p of live.splice(0)) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
});

afterAll(async () => {
  await harness?.destroy();
});

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...harness.env, API_TOKEN: TOKEN, WEBHOOK_URL: WEBHOOK, ...extra };
}

function writeConfig(name: string, jobs: string): string {
  const file = path.join(harness.sandbox.root, `${name}.yaml`);
  writeFileSync(
    file,
    `stateDir: state
server:
  host: 127.0.0.1
  port: 0
  tokens: [{ name: ci, token: { env: API_TOKEN } }]
notifications:
  hook: { kind: generic, url: { env: WEBHOOK_URL }, events: [failed] }
jobs:${jobs}`,
  );
  return file;
}

function run(config: string, job: string, extraEnv: NodeJS.ProcessEnv = {}): CliProcess {
  const p = startCli(['run', job, '--config', config, '-o', 'json'], env(extraEnv));
  live.push(p);
  return p;
}

async function serveOnce(config: string): Promise<string[]> {
  const child = spawn(process.execPath, [path.resolve(import.meta.dirname, '../../dist/src/cli/bin.js'), 'serve', '--config', config], {
    env: env(),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines: string[] = [];
  let buffer = '';
  const exit = new Promise<void>((resolve) => child.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${lines.join('\n')}`)), 30_000);
    child.stderr?.on('data', (d: Buffer) => {
      buffer += d.toString();
      const parts = buffer.split('\n');
      buffer = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        if (line.includes('db-refresher serve is ready')) {
          clearTimeout(timer);
          resolve();
        }
      }
    });
    void exit.then(() => reject(new Error(`serve exited:\n${lines.join('\n')}`)));
  });
  child.kill('SIGTERM');
  await exit;
  return lines;
}

describe('kill -9 during clone', () => {
  let killed: { id: string; at: number; cloneStarted: number };
  const job = 'killclone';

  it('leaves no pg_basebackup behind within 5 s, and nothing of it on the source', async () => {
    const targetPort = await freePort();
    const config = writeConfig(job, harness.jobYaml({ name: job, targetPort }));
    const cli = run(config, job, { PG_BINDIR: slowBin });
    const during = await waitForPhase(stateDir, job, 'clone');
    await waitFor('pg_basebackup', () => cloneProcesses(path.join(harness.sandbox.root, 'copies')).length > 0);
    await new Promise((r) => setTimeout(r, 250));
    cli.child.kill('SIGKILL');
    killed = { id: during.id, at: Date.now(), cloneStarted: Date.parse(during.phases.find((p) => p.name === 'clone')?.startedAt ?? '') };
    await cli.exit;
    await waitFor('no pg_basebackup left', () => cloneProcesses(harness.sandbox.root).length === 0, 5_000, 100);
    const deadline = killed.at + 5_000;
    let seen = await sourceReplication(harness);
    while ((seen.senders > 0 || seen.slots > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      seen = await sourceReplication(harness);
    }
    expect(seen).toEqual({ senders: 0, slots: 0 });
  });

  it('a service start leaves no credentials on disk, and records the run interrupted as of its death', async () => {
    // Long enough past the kill that a duration measured to "now" would show it.
    await new Promise((r) => setTimeout(r, Math.max(0, killed.at + 4_000 - Date.now())));
    await serveOnce(path.join(harness.sandbox.root, `${job}.yaml`));
    expect(filesContaining(harness.sandbox.root, harness.replicationPassword, [harness.source.dataDir])).toEqual([]);
    const record = records(stateDir, job).find((r) => r.id === killed.id);
    expect(record?.status).toBe('interrupted');
    const clone = record?.phases.find((p) => p.name === 'clone');
    expect(clone?.status).toBe('failed');
    // The heartbeat is written every second: the recorded duration ends within about that of the kill.
    expect(clone?.durationMs).toBeLessThan(killed.at - killed.cloneStarted + 2_500);
  });
});

describe('a CLI run that died is settled by whoever takes the lock next', () => {
  it('the next CLI run marks it interrupted, even behind 30 newer records', async () => {
    const job = 'settlecli';
    const targetPort = await freePort();
    const config = writeConfig(job, harness.jobYaml({ name: job, targetPort }));
    const cli = run(config, job, { PG_BINDIR: slowBin });
    const during = await waitForPhase(stateDir, job, 'clone');
    cli.child.kill('SIGKILL');
    await cli.exit;
    const store = new FileRunStore(stateDir);
    for (let i = 0; i < 30; i += 1) {
      const now = new Date(Date.now() + 1000 + i);
      await store.save(
        newSkippedRun({
          id: newRunId(now),
          job,
          trigger: { kind: 'schedule', by: 'scheduler' },
          now,
          reason: 'overlap',
          source: { host: '127.0.0.1', port: harness.source.port, user: 'replicator' },
          target: during.target,
        }),
      );
    }
    // A service start reads only the newest 25 records of a job; the lock still names the dead run.
    await serveOnce(config);
    expect((await store.get(during.id))?.status).toBe('interrupted');
    const next = run(config, job);
    expect(await next.exit, next.stderr()).toBe(0);
    expect(records(stateDir, job).filter((r) => r.status === 'running')).toEqual([]);
  });

  it('a CLI run alone settles the run a killed CLI left', async () => {
    const job = 'settlecli2';
    const targetPort = await freePort();
    const config = writeConfig(job, harness.jobYaml({ name: job, targetPort }));
    const cli = run(config, job, { PG_BINDIR: slowBin });
    const during = await waitForPhase(stateDir, job, 'clone');
    cli.child.kill('SIGKILL');
    await cli.exit;
    const next = run(config, job);
    expect(await next.exit, next.stderr()).toBe(0);
    const old = records(stateDir, job).find((r) => r.id === during.id);
    expect(old?.status).toBe('interrupted');
    expect(old?.error?.message).toMatch(/stopped during clone/);
    expect(cloneProcesses(harness.sandbox.root)).toEqual([]);
  });

  it('a lock whose pid now belongs to another process does not block the job', async () => {
    const job = 'reusedpid';
    const targetPort = await freePort();
    const config = writeConfig(job, harness.jobYaml({ name: job, targetPort, verify: '      databases: [{ name: app }]' }));
    const bystander = spawn('sleep', ['30']);
    try {
      const pid = bystander.pid as number;
      const started = await waitFor('start time', () => processStartTime(pid));
      const locks = path.join(stateDir, 'locks');
      mkdirSync(locks, { recursive: true });
      // Written by a run that died; its pid was since given to the bystander, which started later.
      writeFileSync(
        path.join(locks, `${job}.lock`),
        JSON.stringify({
          pid,
          startTime: String(Number(started) - 100),
          runId: '20260101T000000000Z-dead00',
          since: new Date().toISOString(),
        }),
      );
      const next = run(config, job);
      expect(await next.exit, next.stdout() + next.stderr()).toBe(0);
    } finally {
      bystander.kill('SIGKILL');
    }
  });
});

describe('timeouts and signals end a clone within seconds', () => {
  it('cloneTimeoutSeconds is enforced', async () => {
    const job = 'clonetimeout';
    const targetPort = await freePort();
    const config = writeConfig(job, harness.jobYaml({ name: job, targetPort, target: '      cloneTimeoutSeconds: 1' }));
    const cli = run(config, job, { PG_BINDIR: slowBin });
    const code = await cli.exit;
    expect(code).toBe(1);
    const record = JSON.parse(cli.stdout());
    expect(record.error).toMatchObject({ phase: 'clone', class: 'timeout' });
    // 1 s, then SIGTERM to the group and SIGKILL 5 s later at the latest: the phase ends within seconds, not when the copy would have.
    expect(record.phases.find((p: { name: string }) => p.name === 'clone').durationMs).toBeLessThan(9_000);
    expect(cloneProcesses(harness.sandbox.root)).toEqual([]);
  });

  it('SIGTERM stops a CLI run during clone; pg_basebackup never sees the secrets', async () => {
    const job = 'sigterm';
    const targetPort = await freePort();
    const config = writeConfig(job, harness.jobYaml({ name: job, targetPort }));
    const cli = run(config, job, { PG_BINDIR: slowBin });
    await waitForPhase(stateDir, job, 'clone');
    const basebackup = await waitFor('pg_basebackup', () =>
      processesMatching(`copies/${job}.db-refresher-staging/pgdata`).find((p) => p.cmdline.includes('/pg_basebackup ')),
    );
    const environ = environOf(basebackup.pid).join('\n');
    for (const secret of [harness.replicationPassword, harness.ownerPassword, TOKEN, WEBHOOK]) expect(environ).not.toContain(secret);
    const signalled = Date.now();
    cli.child.kill('SIGTERM');
    expect(await cli.exit).toBe(1);
    expect(Date.now() - signalled).toBeLessThan(10_000);
    expect(JSON.parse(cli.stdout()).error, cli.stdout()).toMatchObject({ class: 'interrupted' });
    expect(cloneProcesses(harness.sandbox.root)).toEqual([]);
  });

  it("the copy's postmaster gets none of the service's secrets", async () => {
    const job = 'environ';
    const targetPort = await freePort();
    const config = writeConfig(job, harness.jobYaml({ name: job, targetPort }));
    const cli = run(config, job);
    expect(await cli.exit, cli.stderr()).toBe(0);
    const dataDir = path.join(harness.sandbox.root, 'copies', job);
    const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const environ = environOf(pid).join('\n');
    for (const secret of [harness.replicationPassword, harness.ownerPassword, TOKEN, WEBHOOK]) expect(environ).not.toContain(secret);
    expect(environ).toMatch(/^PATH=/m);
  });
});

describe('kill -9 during teardown', () => {
  it('never leaves a half-deleted copy: the next run finishes the job by itself', async () => {
    const job = 'killteardown';
    const targetPort = await freePort();
    const config = writeConfig(job, harness.jobYaml({ name: job, targetPort }));
    const first = run(config, job);
    expect(await first.exit, first.stderr()).toBe(0);
    const dataDir = path.join(harness.sandbox.root, 'copies', job);
    const second = run(config, job);
    await waitForPhase(stateDir, job, 'teardown', new Set(records(stateDir, job).map((r) => r.id)));
    // Kill the moment removal begins: the first change to the directory's entries once the server is down.
    await waitFor('the server to stop', () => !existsSync(path.join(dataDir, 'postmaster.pid')), 30_000, 1);
    await waitFor(
      'removal to begin',
      () => !existsSync(path.join(dataDir, 'PG_VERSION')) || existsSync(path.join(dataDir, 'db-refresher-trash.json')),
      30_000,
      1,
    );
    second.child.kill('SIGKILL');
    await second.exit;
    const third = run(config, job);
    expect(await third.exit, third.stdout() + third.stderr()).toBe(0);
    const leftovers = readdirSync(path.dirname(dataDir)).filter((n) => n.startsWith(`${job}.`));
    expect(leftovers).toEqual([]);
  });
});
