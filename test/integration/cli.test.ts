import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobLocks } from '../../src/runner/lock.js';
import { runCli } from '../support/cli.js';
import { freePort, LocalHarness } from '../support/local-harness.js';

/** The built CLI as users run it: exit codes, output formats, and no stack traces for user errors. */

const bin = path.resolve(import.meta.dirname, '../../dist/src/cli/bin.js');
const corpus = path.resolve(import.meta.dirname, '../fixtures/config-errors');

const cli = runCli;

function expectNoStackTrace(text: string): void {
  expect(text).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
}

let harness: LocalHarness;
let configFile: string;
let targetPort: number;

beforeAll(async () => {
  harness = await LocalHarness.start();
  targetPort = await freePort();
  configFile = path.join(harness.sandbox.root, 'db-refresher.yaml');
  writeFileSync(configFile, `stateDir: state\njobs:${harness.jobYaml({ targetPort })}`);
});

afterAll(async () => {
  await harness?.destroy();
});

describe('db-refresher CLI', () => {
  it('--help lists the commands and exits 0; every command has its own --help', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    for (const command of ['validate', 'plan', 'run', 'serve', 'schema']) expect(help.stdout).toContain(command);
    const runHelp = await cli(['run', '--help']);
    expect(runHelp.code).toBe(0);
    expect(runHelp.stdout).toContain('--dry-run');
  });

  it('exits 2 on usage errors: unknown command, unknown option, missing argument, bad -o', async () => {
    for (const args of [['frobnicate'], ['validate', '--bogus'], ['plan'], ['plan', 'qa', '-o', 'xml', '--config', configFile]]) {
      const result = await cli(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(/error/i);
      expectNoStackTrace(result.stderr);
    }
  });

  it('validate: exit 0 for a good file, 2 with every problem and its path for a bad one', async () => {
    const good = await cli(['validate', '--config', configFile], harness.env);
    expect(good.code).toBe(0);
    expect(good.stdout).toContain('valid, 1 job (qa)');

    const bad = await cli(['validate', '--config', path.join(corpus, 'many-problems.yaml')], { ...process.env, DBR_TEST_PASSWORD: 'x' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('jobs[0].schedule: "0 25 * * *" is not a valid cron expression (hour must be 0-23)');
    expect(bad.stderr).toContain('jobs[1].name: duplicate job name "qa"');
    expectNoStackTrace(bad.stderr);
  });

  it('reads the config path from DB_REFRESHER_CONFIG', async () => {
    const result = await cli(['validate'], { ...harness.env, DB_REFRESHER_CONFIG: configFile });
    expect(result.code).toBe(0);
  });

  it('a missing secret is a config error naming the job and field', async () => {
    const env = { ...harness.env };
    delete env.SOURCE_PASSWORD;
    const result = await cli(['validate', '--config', configFile], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('jobs[0].source.password (job "qa"): environment variable SOURCE_PASSWORD is not set');
  });

  it('plan prints the steps without touching anything, as text, JSON or YAML', async () => {
    const text = await cli(['plan', 'qa', '--config', configFile], harness.env);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('Plan for job "qa"');
    expect(text.stdout).toMatch(/3\. teardown\s+\[changes the target\]/);
    const json = await cli(['plan', 'qa', '-o', 'json', '--config', configFile], harness.env);
    const plan = JSON.parse(json.stdout) as { steps: Array<{ phase: string }> };
    expect(plan.steps.map((s) => s.phase)).toEqual([
      'preflight',
      'snapshot',
      'teardown',
      'clone',
      'start',
      'neutralise',
      'prepare',
      'mask',
      'open',
      'verify',
    ]);
    const yaml = await cli(['plan', 'qa', '-o', 'yaml', '--config', configFile], harness.env);
    expect(yaml.stdout).toContain('job: qa');
    for (const out of [text.stdout, json.stdout, yaml.stdout]) expect(out).not.toContain(harness.replicationPassword);
  });

  it('plan of an unknown job exits 2 and lists the jobs there are', async () => {
    const result = await cli(['plan', 'nope', '--config', configFile], harness.env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('no job named "nope"');
    expect(result.stderr).toContain('Jobs defined there: qa');
  });

  it('run exits 0 on success and prints the run record as JSON when stdout is not a terminal', async () => {
    const result = await cli(['run', 'qa', '--config', configFile, '--reason', 'cli test'], harness.env);
    expect(result.code, result.stderr).toBe(0);
    const run = JSON.parse(result.stdout) as { status: string; trigger: { kind: string; reason: string } };
    expect(run.status).toBe('succeeded');
    expect(run.trigger).toMatchObject({ kind: 'cli', reason: 'cli test' });
    // Not a terminal: logs are JSON lines on stderr.
    const lines = result.stderr.trim().split('\n');
    expect(lines.length).toBeGreaterThan(5);
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    expect(result.stderr).not.toContain(harness.replicationPassword);
  });

  it('run exits 1 when the refresh fails, with the classified reason in the record', async () => {
    const broken = path.join(harness.sandbox.root, 'broken.yaml');
    writeFileSync(broken, readFileSync(configFile, 'utf8').replace(`port: ${harness.source.port}`, `port: ${await freePort()}`));
    const result = await cli(['run', 'qa', '--config', broken, '-o', 'text'], harness.env);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('FAILED');
    expect(result.stdout).toContain('Failed in preflight: source-unreachable');
    expect(result.stdout).toContain('What to do: Check network connectivity');
    expectNoStackTrace(result.stdout + result.stderr);
  });

  it('run exits 1 with the holder named when the job is already running', async () => {
    const lock = new JobLocks(path.join(harness.sandbox.root, 'state')).acquire('qa', 'held-by-test', new Date());
    try {
      const result = await cli(['run', 'qa', '--config', configFile], harness.env);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('job "qa" is already running (run held-by-test');
      expectNoStackTrace(result.stderr);
    } finally {
      lock.release();
    }
  });

  it('run and rollback refuse beside elected replicas (exit 2), naming the verb that asks the leader; a dry run is allowed', async () => {
    const replicated = path.join(harness.sandbox.root, 'replicated.yaml');
    writeFileSync(
      replicated,
      `stateDir: state
server:
  history: { kind: kubernetes, namespace: default }
  leaderElection: { leaseName: db-refresher }
jobs:${harness.jobYaml({ targetPort })}`,
    );
    const run = await cli(['run', 'qa', '--config', replicated], harness.env);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain('elects a leader among several service replicas (server.leaderElection)');
    expect(run.stderr).toContain('db-refresher --server <URL> trigger qa --wait');
    expectNoStackTrace(run.stderr);
    const rollback = await cli(['rollback', 'qa', '--config', replicated], harness.env);
    expect(rollback.code, rollback.stderr).toBe(2);
    expect(rollback.stderr).toContain('POST /api/v1/jobs/qa/rollback');
    const dry = await cli(['run', 'qa', '--dry-run', '--config', replicated, '-o', 'json'], harness.env);
    expect(dry.stderr).not.toContain('elects a leader');
    expect(JSON.parse(dry.stdout)).toMatchObject({ job: 'qa', dryRun: true });
  });

  it('schema prints a JSON Schema that knows the job fields', async () => {
    const result = await cli(['schema']);
    expect(result.code).toBe(0);
    const schema = JSON.parse(result.stdout) as {
      $schema: string;
      properties: { jobs: { items: { properties: Record<string, unknown> } } };
    };
    expect(schema.$schema).toContain('json-schema.org');
    expect(Object.keys(schema.properties.jobs.items.properties)).toEqual(
      expect.arrayContaining(['name', 'schedule', 'timezone', 'source', 'target', 'verify', 'notify']),
    );
  });

  it('serve loads the config and exits 0 on SIGTERM', async () => {
    // A free port, and the file history store: the defaults (8080, a state dir) may be taken on a shared machine.
    const serveConfig = path.join(harness.sandbox.root, 'serve.yaml');
    writeFileSync(serveConfig, `server: { port: ${await freePort()}, host: 127.0.0.1 }\n${readFileSync(configFile, 'utf8')}`);
    const child = spawn(process.execPath, [bin, 'serve', '--config', serveConfig], { env: harness.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    await new Promise<void>((resolve, reject) => {
      const started = Date.now();
      const poll = setInterval(() => {
        if (stderr.includes('waiting for SIGTERM')) {
          clearInterval(poll);
          resolve();
        } else if (Date.now() - started > 30_000 || child.exitCode !== null) {
          clearInterval(poll);
          reject(new Error(`serve did not become ready: ${stderr.slice(-2000)}`));
        }
      }, 20);
    });
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
  });
});
