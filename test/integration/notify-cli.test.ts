import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { genericEnvelopeSchema } from '../../src/notify/render/generic.js';
import { Receiver, type Reply } from '../fixtures/notify/receiver.js';
import { type CliResult, runCli } from '../support/cli.js';

/** `db-refresher notify-test <target>`, the built CLI as users run it, against webhooks on 127.0.0.1. */

const bin = path.resolve(import.meta.dirname, '../../dist/src/cli/bin.js');
let dir: string;
const receivers: Receiver[] = [];

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return runCli(args, { ...process.env, ...env });
}

const CONFIG = `
notifications:
  hooks: { kind: generic, url: { env: HOOK_URL }, secret: { env: HOOK_SECRET } }
  chat: { kind: slack, url: { env: CHAT_URL } }
jobs:
  - name: qa
    notify: [hooks, chat]
    source: { host: prod-db.internal.example.com, user: streaming_replica }
    target: { kind: local, dataDir: copies/qa, port: 5433 }
`;

async function receiver(script: Reply[] = []): Promise<Receiver> {
  const r = await Receiver.start(script);
  receivers.push(r);
  return r;
}

beforeAll(() => {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`npm run -s build\` first`);
  dir = mkdtempSync(path.join(tmpdir(), 'dbr-notify-cli-'));
  writeFileSync(path.join(dir, 'db-refresher.yaml'), CONFIG);
});

afterEach(async () => {
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('db-refresher notify-test', () => {
  const config = () => ['--config', path.join(dir, 'db-refresher.yaml')];
  const secret = 'cli-signing-secret-0123';

  it('exits 0 when the test message is delivered; the receiver can verify it', async () => {
    const hooks = await receiver();
    const result = await cli(['notify-test', 'hooks', ...config()], {
      HOOK_URL: hooks.url('/in/hookT0ken0123456789'),
      HOOK_SECRET: secret,
      CHAT_URL: 'https://chat.example.com/x',
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('delivered a test message to "hooks" (generic): HTTP 200, 1 attempt\n');
    const request = hooks.requests[0];
    if (!request) throw new Error('no request');
    expect(request.headers['x-db-refresher-event']).toBe('test');
    const expected = createHmac('sha256', secret).update(`${request.headers['x-timestamp']}.${request.body}`).digest('hex');
    expect(request.headers['x-signature']).toBe(`sha256=${expected}`);
    expect(genericEnvelopeSchema.parse(JSON.parse(request.body))).toMatchObject({ event: 'test', job: { name: 'qa' }, run: null });
  });

  it('exits 1 and says why when the webhook refuses the message, without showing its URL', async () => {
    const chat = await receiver([{ status: 403, body: 'invalid_token' }]);
    const chatUrl = chat.url('/services/T01/B02/chatT0ken0123456789');
    const result = await cli(['notify-test', 'chat', ...config()], {
      HOOK_URL: 'https://x.example',
      HOOK_SECRET: secret,
      CHAT_URL: chatUrl,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      'error: could not deliver a test message to "chat" (slack): HTTP 403 Forbidden: invalid_token (not retried)',
    );
    expect(`${result.stdout}${result.stderr}`).not.toContain('chatT0ken0123456789');
    expect(chat.requests).toHaveLength(1);
  });

  it('exits 1 when nothing listens, within --timeout, without showing the URL or the secret', async () => {
    const gone = await Receiver.start();
    const url = gone.url('/in/goneT0ken0123456789');
    await gone.close();
    const started = Date.now();
    const result = await cli(['notify-test', 'hooks', '--timeout', '2', ...config()], {
      HOOK_URL: url,
      HOOK_SECRET: secret,
      CHAT_URL: 'https://chat.example.com/x',
    });
    expect(result.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(8000);
    expect(result.stderr).toContain('ECONNREFUSED');
    for (const hidden of ['goneT0ken0123456789', url, secret]) expect(`${result.stdout}${result.stderr}`).not.toContain(hidden);
  });

  it('exits 2 for a target that is not in the config, naming those that are', async () => {
    const result = await cli(['notify-test', 'nope', ...config()], {
      HOOK_URL: 'https://x.example',
      HOOK_SECRET: secret,
      CHAT_URL: 'https://y.example',
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('no notification target named "nope"');
    expect(result.stderr).toContain('hooks, chat');
    expect(result.stderr).not.toMatch(/^\s+at /m);
  });
});
