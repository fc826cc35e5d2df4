import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Receiver } from '../fixtures/notify/receiver.js';
import { runCli } from '../support/cli.js';
import { freePort } from '../support/local-harness.js';

/**
 * Who hears about a run from the built CLI, with two real webhook receivers
 * on 127.0.0.1: `run --no-notify` tells no one; a dry run tells only the
 * target that opts in with `notifyDryRuns: true`. The source port is closed,
 * so every run fails quickly in preflight (started, then failed).
 */

let dir: string;
let closed: number;
const receivers: Receiver[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'dbr-notify-dry-'));
  closed = await freePort();
  writeFileSync(
    path.join(dir, 'db-refresher.yaml'),
    `stateDir: state
notifications:
  ci: { kind: generic, url: { env: CI_URL }, events: [started, succeeded, failed], notifyDryRuns: true }
  chat: { kind: slack, url: { env: CHAT_URL }, events: [started, succeeded, failed] }
jobs:
  - name: qa
    notify: [ci, chat]
    source: { host: 127.0.0.1, port: ${closed}, user: replicator }
    target: { kind: local, dataDir: data-qa, port: ${closed + 1} }
`,
  );
});

afterEach(async () => {
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function twoReceivers() {
  const ci = await Receiver.start();
  const chat = await Receiver.start();
  receivers.push(ci, chat);
  const env = { ...process.env, CI_URL: ci.url('/ci'), CHAT_URL: chat.url('/chat') };
  return { ci, chat, env };
}

const run = (extra: string[], env: NodeJS.ProcessEnv) =>
  runCli(['--config', path.join(dir, 'db-refresher.yaml'), 'run', 'qa', '-o', 'json', ...extra], env);

const events = (r: Receiver) => r.requests.map((q) => q.headers['x-db-refresher-event']);

describe('who is notified of a CLI run', () => {
  it('a normal run notifies every target the job names (the receivers work)', async () => {
    const { ci, chat, env } = await twoReceivers();
    const result = await run([], env);
    expect(result.code, result.stderr).toBe(1);
    expect(events(ci)).toEqual(['started', 'failed']);
    expect(chat.requests).toHaveLength(2);
  });

  it('run --no-notify tells no one', async () => {
    const { ci, chat, env } = await twoReceivers();
    const result = await run(['--no-notify'], env);
    expect(result.code, result.stderr).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ job: 'qa', status: 'failed' });
    // The CLI has exited: anything it was going to send has been sent.
    expect(ci.requests).toEqual([]);
    expect(chat.requests).toEqual([]);
  });

  it('a dry run notifies only the target with notifyDryRuns: true, marked as a dry run', async () => {
    const { ci, chat, env } = await twoReceivers();
    const result = await run(['--dry-run'], env);
    expect(result.code, result.stderr).toBe(1);
    expect(events(ci)).toEqual(['started', 'failed']);
    expect(JSON.parse(ci.requests[1]?.body ?? '{}')).toMatchObject({ event: 'failed', run: { dryRun: true } });
    expect(chat.requests).toEqual([]);
  });

  it('a dry run with --no-notify tells no one, not even the target that opts in', async () => {
    const { ci, chat, env } = await twoReceivers();
    const result = await run(['--dry-run', '--no-notify'], env);
    expect(result.code, result.stderr).toBe(1);
    expect(ci.requests).toEqual([]);
    expect(chat.requests).toEqual([]);
  });
});
