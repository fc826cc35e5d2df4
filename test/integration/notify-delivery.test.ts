import { createHmac } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/pg-sandbox.js';
import { parseConfig } from '../../src/config/load.js';
import { Secret } from '../../src/config/secret.js';
import { createNotifier } from '../../src/notify/index.js';
import { type DeliveryResult, Outbox, type OutboxOptions } from '../../src/notify/outbox.js';
import { genericEnvelopeSchema } from '../../src/notify/render/generic.js';
import { capturingLogger, Receiver, type Reply } from '../fixtures/notify/receiver.js';
import { interruptedInClone, started, succeeded } from '../fixtures/notify/samples.js';

/** Delivery over real HTTP to receivers on 127.0.0.1: signing, retries, rate limits, flush, secrets. */

const receivers: Receiver[] = [];

async function receiver(script: Reply[] = [], fallback?: Reply): Promise<Receiver> {
  const r = await Receiver.start(script, fallback);
  receivers.push(r);
  return r;
}

afterEach(async () => {
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

/** A port nothing listens on: free a moment ago, and nobody took it since. */
const refusedPort = freePort;

function outbox(urls: Record<string, string>, options: Partial<OutboxOptions> = {}) {
  const { log, lines } = capturingLogger();
  const destinations = Object.entries(urls).map(([name, url]) => ({ name, url: new Secret(url, `env:${name.toUpperCase()}_URL`) }));
  return { outbox: new Outbox(destinations, log, { jitter: 0, ...options }), lines };
}

const message = (n: number) => ({ id: `m${n}`, event: 'succeeded', job: 'qa', body: JSON.stringify({ n }) });

function config(notifications: string, notify: string[], env: NodeJS.ProcessEnv) {
  return parseConfig(
    `publicUrl: https://db-refresher.example.com
notifications:
${notifications}
jobs:
  - name: qa
    description: Weekly copy of production for the QA team
    schedule: "0 3 * * 0"
    timezone: Europe/Berlin
    notify: [${notify.join(', ')}]
    source: { host: prod-db.internal.example.com, user: streaming_replica }
    target: { kind: local, dataDir: /var/lib/db-refresher/qa, port: 5433 }
  - name: quiet
    source: { host: prod-db.internal.example.com, user: streaming_replica }
    target: { kind: local, dataDir: /var/lib/db-refresher/quiet, port: 5434 }
`,
    { source: 'test.yaml', baseDir: '/etc/db-refresher', env },
  );
}

describe('formats on the wire', () => {
  it('generic: a signed envelope that a receiver verifies with HMAC-SHA256 and that matches the schema', async () => {
    const r = await receiver();
    const secret = 'whsec-test-0123456789';
    const { log } = capturingLogger();
    const notifier = createNotifier(
      config(`  hooks: { kind: generic, url: { env: HOOK_URL }, secret: { env: HOOK_SECRET } }`, ['hooks'], {
        HOOK_URL: r.url('/receive'),
        HOOK_SECRET: secret,
      }),
      log,
    );
    const before = Math.floor(Date.now() / 1000);
    notifier.runEvent({ type: 'run-finished', run: succeeded() });
    await r.waitFor(1);
    await notifier.flush(2000);

    const request = r.requests[0];
    if (!request) throw new Error('no request');
    expect(request.method).toBe('POST');
    expect(request.path).toBe('/receive');
    expect(request.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(request.headers['x-db-refresher-event']).toBe('succeeded');
    expect(request.headers['x-db-refresher-delivery']).toBe('20250105T020000000Z-a1b2c3.succeeded');
    // The receiver's side: recompute over the raw body and the timestamp header.
    const timestamp = String(request.headers['x-timestamp']);
    expect(Number(timestamp)).toBeGreaterThanOrEqual(before);
    expect(Number(timestamp)).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
    const expected = createHmac('sha256', secret).update(`${timestamp}.${request.body}`).digest('hex');
    expect(request.headers['x-signature']).toBe(`sha256=${expected}`);

    const envelope = genericEnvelopeSchema.parse(JSON.parse(request.body));
    expect(envelope).toMatchObject({
      event: 'succeeded',
      job: { name: 'qa' },
      run: { id: '20250105T020000000Z-a1b2c3', status: 'succeeded', url: expect.stringContaining('/api/v1/runs/') },
    });
    expect(notifier.stats().destinations.hooks).toMatchObject({ delivered: 1, failed: 0, attempts: 1 });
  });

  it('slack: text, blocks and one coloured attachment; no signature headers', async () => {
    const r = await receiver();
    const { log } = capturingLogger();
    const notifier = createNotifier(config(`  chat: { kind: slack, url: { env: CHAT_URL } }`, ['chat'], { CHAT_URL: r.url() }), log);
    notifier.runEvent({ type: 'run-finished', run: interruptedInClone() });
    await r.waitFor(1);
    await notifier.flush(2000);
    const body = r.json<{ text: string; blocks: unknown[]; attachments: Array<{ color: string }> }>(0);
    expect(body.text).toContain('Refresh of qa interrupted in clone');
    expect(body.blocks.length).toBeGreaterThan(2);
    expect(body.attachments).toEqual([expect.objectContaining({ color: '#e01e5a' })]);
    expect(r.requests[0]?.headers['x-signature']).toBeUndefined();
  });

  it('teams: a message with one Adaptive Card; no signature headers', async () => {
    const r = await receiver([], { status: 202, body: '' });
    const { log } = capturingLogger();
    const notifier = createNotifier(
      config(`  team: { kind: teams, url: { env: TEAM_URL } }`, ['team'], { TEAM_URL: r.url('/workflows/abc') }),
      log,
    );
    notifier.runEvent({ type: 'run-finished', run: interruptedInClone() });
    await r.waitFor(1);
    await notifier.flush(2000);
    const body = r.json<{
      type: string;
      attachments: Array<{ contentType: string; content: { type: string; body: Array<{ style?: string }> } }>;
    }>(0);
    expect(body.type).toBe('message');
    expect(body.attachments).toHaveLength(1);
    expect(body.attachments[0]?.contentType).toBe('application/vnd.microsoft.card.adaptive');
    expect(body.attachments[0]?.content.type).toBe('AdaptiveCard');
    expect(body.attachments[0]?.content.body[0]?.style).toBe('attention');
    expect(r.requests[0]?.body).toContain('Refresh of qa interrupted in clone');
    expect(r.requests[0]?.headers['x-signature']).toBeUndefined();
    // Workflows answers 202 Accepted.
    expect(notifier.stats().destinations.team).toMatchObject({ delivered: 1, failed: 0, lastStatus: 202 });
  });
});

describe('routing', () => {
  it('each target gets only its own events; phase events are ignored; interrupted counts as failed; jobs without notify send nothing', async () => {
    const chat = await receiver();
    const hooks = await receiver();
    const { log } = capturingLogger();
    const notifier = createNotifier(
      config(
        `  chat: { kind: slack, url: { env: CHAT_URL }, events: [succeeded] }
  hooks: { kind: generic, url: { env: HOOK_URL }, events: [started, failed, skipped, upcoming], upcomingLeadMinutes: 5 }`,
        ['chat', 'hooks'],
        { CHAT_URL: chat.url(), HOOK_URL: hooks.url() },
      ),
      log,
      { outbox: { minIntervalMs: 20 } },
    );
    const run = started();
    notifier.runEvent({ type: 'run-started', run });
    notifier.runEvent({ type: 'phase-started', run, phase: 'preflight' });
    notifier.runEvent({ type: 'progress', run, phase: 'clone', detail: { percent: 50 } });
    notifier.runEvent({ type: 'run-finished', run: succeeded() });
    notifier.runEvent({ type: 'run-finished', run: interruptedInClone() });
    notifier.runEvent({ type: 'run-finished', run: { ...succeeded(), job: 'quiet' } });
    notifier.runEvent({ type: 'run-finished', run: { ...succeeded(), job: 'not-in-config' } });
    notifier.skipped({ job: 'qa', reason: 'overlap', scheduledFor: '2025-01-05T02:00:00.000Z', detail: 'still cloning' });
    const soon = new Date(Date.now() + 60_000).toISOString();
    notifier.upcoming({ job: 'qa', at: soon });
    notifier.upcoming({ job: 'qa', at: soon }); // the same announcement again: sent once
    notifier.upcoming({ job: 'qa', at: new Date(Date.now() - 1000).toISOString() }); // already due: nothing
    await notifier.flush(5000);

    expect(chat.requests.map((q) => q.headers['x-db-refresher-event'])).toEqual(['succeeded']);
    expect(hooks.requests.map((q) => q.headers['x-db-refresher-event'])).toEqual(['started', 'failed', 'skipped', 'upcoming']);
    const upcoming = genericEnvelopeSchema.parse(hooks.json(3));
    expect(upcoming.upcoming).toEqual({ at: soon, leadMinutes: 5 });
    expect(genericEnvelopeSchema.parse(hooks.json(1)).run?.status).toBe('interrupted');
  });

  it('upcoming: each target is told at its own lead time', async () => {
    const hooks = await receiver();
    const { log } = capturingLogger();
    const notifier = createNotifier(
      config(`  hooks: { kind: generic, url: { env: HOOK_URL }, events: [upcoming], upcomingLeadMinutes: 1 }`, ['hooks'], {
        HOOK_URL: hooks.url(),
      }),
      log,
    );
    const called = performance.now();
    // Due in 61.2 s with a 1-minute lead: the announcement goes out about 1.2 s from now.
    notifier.upcoming({ job: 'qa', at: new Date(Date.now() + 61_200).toISOString() });
    await hooks.waitFor(1, 5000);
    const waited = (hooks.requests[0]?.at ?? 0) - called;
    expect(waited).toBeGreaterThanOrEqual(1100);
    expect(waited).toBeLessThan(3000);
    await notifier.flush(2000);
  });
});

describe('retries', () => {
  it('a 500 and then a 200: delivered on the second attempt, after a backoff', async () => {
    const r = await receiver([{ status: 500, body: 'oops' }]);
    const { outbox: box, lines } = outbox({ a: r.url() }, { initialBackoffMs: 300, minIntervalMs: 10 });
    const result = await box.send('a', message(1));
    expect(result).toEqual({ delivered: true, attempts: 2, status: 200 });
    expect(r.requests).toHaveLength(2);
    expect(r.requests[1]?.headers['x-db-refresher-delivery']).toBe(r.requests[0]?.headers['x-db-refresher-delivery']);
    expect((r.requests[1]?.at ?? 0) - (r.requests[0]?.at ?? 0)).toBeGreaterThanOrEqual(280);
    expect(box.stats().destinations.a).toMatchObject({ delivered: 1, failed: 0, retries: 1, attempts: 2 });
    const retry = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === 'notification attempt failed; will retry');
    expect(retry).toMatchObject({ notification: 'a', status: 500, error: 'HTTP 500 Internal Server Error: oops', attempt: 1 });
  });

  it('a 429 with Retry-After: the next attempt waits as long as it says', async () => {
    const r = await receiver([{ status: 429, headers: { 'retry-after': '2' }, body: 'slow down' }]);
    const { outbox: box } = outbox({ a: r.url() }, { initialBackoffMs: 100, minIntervalMs: 10 });
    const result = await box.send('a', message(1));
    expect(result).toMatchObject({ delivered: true, attempts: 2 });
    expect((r.requests[1]?.at ?? 0) - (r.requests[0]?.at ?? 0)).toBeGreaterThanOrEqual(1950);
  });

  it('a 400 is not retried, and the result says why', async () => {
    const r = await receiver([{ status: 400, body: 'invalid_payload' }]);
    const { outbox: box } = outbox({ a: r.url() }, { initialBackoffMs: 50, minIntervalMs: 10 });
    const result = await box.send('a', message(1));
    expect(result).toEqual({ delivered: false, attempts: 1, status: 400, error: 'HTTP 400 Bad Request: invalid_payload (not retried)' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(r.requests).toHaveLength(1);
    expect(box.stats().destinations.a).toMatchObject({ failed: 1, retries: 0, lastStatus: 400 });
  });

  it('attempts are bounded, and so is the total time', async () => {
    const r = await receiver([], { status: 503 });
    const { outbox: box } = outbox({ a: r.url() }, { maxAttempts: 3, initialBackoffMs: 50, minIntervalMs: 10 });
    const result = await box.send('a', message(1));
    expect(result).toMatchObject({ delivered: false, attempts: 3, status: 503 });
    expect(result.error).toContain('gave up after 3 attempts');

    const slow = await receiver([], { status: 503, headers: { 'retry-after': '60' } });
    const { outbox: box2 } = outbox({ b: slow.url() }, { deadlineMs: 5000, minIntervalMs: 10 });
    const t0 = performance.now();
    const late = await box2.send('b', message(2));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(late.error).toContain('Retry-After 60 s would pass the 5 s delivery deadline');
    expect(slow.requests).toHaveLength(1);
  });

  it('a receiver that never answers times out per request', async () => {
    const r = await receiver([], 'hang');
    const { outbox: box } = outbox({ a: r.url() }, { requestTimeoutMs: 300, maxAttempts: 2, initialBackoffMs: 50, minIntervalMs: 10 });
    const t0 = performance.now();
    const result = await box.send('a', message(1));
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(result).toMatchObject({ delivered: false, attempts: 2 });
    expect(result.error).toContain('no response before the request timeout');
    expect(r.requests).toHaveLength(2);
  });
});

describe('rate limit and independence', () => {
  it('messages to one webhook are about a second apart; two webhooks do not wait for each other', async () => {
    const a = await receiver();
    const b = await receiver();
    const { outbox: box } = outbox({ a: a.url(), b: b.url() });
    const t0 = performance.now();
    const results = await Promise.all([
      box.send('a', message(1)),
      box.send('a', message(2)),
      box.send('a', message(3)),
      box.send('b', message(4)),
      box.send('b', message(5)),
    ]);
    expect(results.every((r) => r.delivered)).toBe(true);
    // In order, each at least ~1 s after the one before.
    expect(a.requests.map((q) => JSON.parse(q.body).n)).toEqual([1, 2, 3]);
    for (const r of [a, b]) {
      for (let i = 1; i < r.requests.length; i += 1) {
        expect((r.requests[i]?.at ?? 0) - (r.requests[i - 1]?.at ?? 0)).toBeGreaterThanOrEqual(950);
      }
    }
    // b's first message did not queue behind a's.
    expect((b.requests[0]?.at ?? 0) - t0).toBeLessThan(800);
    expect(performance.now() - t0).toBeLessThan(3500);
  });

  it('a full queue drops its oldest message and counts it', async () => {
    const r = await receiver();
    const { outbox: box } = outbox({ a: r.url() }, { maxQueue: 2, minIntervalMs: 10 });
    const sent = [1, 2, 3, 4].map((n) => box.send('a', message(n)));
    const results = await Promise.all(sent);
    // The first goes straight out; of 2, 3, 4 waiting, 2 is dropped to make room for 4.
    expect(results.map((x) => x.delivered)).toEqual([true, false, true, true]);
    expect(results[1]).toMatchObject({ dropped: true });
    expect(box.stats().destinations.a).toMatchObject({ delivered: 3, dropped: 1 });
  });
});

describe('flush and shutdown', () => {
  it('flush(timeout) returns within its timeout when a receiver hangs, dropping what is left', async () => {
    const hanging = await receiver([], 'hang');
    const fine = await receiver();
    const { outbox: box, lines } = outbox({ stuck: hanging.url(), fine: fine.url() });
    const pending: Array<Promise<DeliveryResult>> = [1, 2, 3].map((n) => box.send('stuck', message(n)));
    const ok = box.send('fine', message(9));
    await hanging.waitFor(1);
    const t0 = performance.now();
    await box.flush(500);
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(1200);
    const results = await Promise.all(pending);
    expect(results.every((r) => !r.delivered && r.dropped)).toBe(true);
    expect(await ok).toMatchObject({ delivered: true });
    expect(box.stats().destinations.stuck).toMatchObject({ dropped: 3, delivered: 0, queued: 0, inFlight: 0 });
    expect(lines.some((l) => l.includes('notification flush timed out'))).toBe(true);
    // flush with nothing queued returns at once.
    const t1 = performance.now();
    await box.flush(5000);
    expect(performance.now() - t1).toBeLessThan(50);
  });
});

describe('secrets', () => {
  it('webhook URLs and signing secrets appear in no log line, error, result or counter', async () => {
    const port = await refusedPort();
    const token = 'tok3nS3cretValueXYZ123';
    const refusedUrl = `http://127.0.0.1:${port}/services/T0SECRET1/B0SECRET2/${token}`;
    const echo = await receiver([], { status: 404, body: 'no webhook at {path}' });
    const echoToken = 'echoT0ken0123456789abcdef';
    const echoUrl = echo.url(`/hooks/${echoToken}`);
    const badUrl = `hooks.example.com/not a url/${token}`;
    const signing = 'sign-S3cret-value-42';
    const { log, lines } = capturingLogger('trace');
    const notifier = createNotifier(
      config(
        `  refused: { kind: generic, url: { env: REFUSED_URL }, secret: { env: SIGNING } }
  echo: { kind: slack, url: { env: ECHO_URL } }
  bad: { kind: slack, url: { env: BAD_URL } }`,
        ['refused', 'echo', 'bad'],
        { REFUSED_URL: refusedUrl, ECHO_URL: echoUrl, BAD_URL: badUrl, SIGNING: signing },
      ),
      log,
      { outbox: { maxAttempts: 2, initialBackoffMs: 50, minIntervalMs: 10 } },
    );
    notifier.runEvent({ type: 'run-started', run: started() });
    const results = await Promise.all([notifier.sendTest('refused'), notifier.sendTest('echo'), notifier.sendTest('bad')]);
    await notifier.flush(5000);

    expect(results[0]?.error).toContain('ECONNREFUSED');
    expect(results[1]?.error).toContain('HTTP 404 Not Found: no webhook at [webhook url] (not retried)');
    expect(results[2]?.error).toBe('the webhook URL is not a valid URL (env:BAD_URL)');
    const everything = [...lines, JSON.stringify(results), JSON.stringify(notifier.stats())].join('\n');
    expect(lines.length).toBeGreaterThan(3);
    for (const secret of [token, 'T0SECRET1', 'B0SECRET2', echoToken, signing, refusedUrl, echoUrl, badUrl, `${port}/services`]) {
      expect(everything, `leaked ${secret}`).not.toContain(secret);
    }
  });
});
