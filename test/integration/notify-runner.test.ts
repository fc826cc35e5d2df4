import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildRunner } from '../../src/composition-root.js';
import { parseConfig } from '../../src/config/load.js';
import type { DeliveringNotifier } from '../../src/notify/index.js';
import { capturingLogger, Receiver } from '../fixtures/notify/receiver.js';
import { freePort, LocalHarness } from '../support/local-harness.js';

/**
 * Notifications from real refreshes: the real runner and local target against
 * a real PostgreSQL source, with webhooks on 127.0.0.1, one of which never answers.
 */

let harness: LocalHarness;
let targetPort: number;
const receivers: Receiver[] = [];

beforeAll(async () => {
  harness = await LocalHarness.start();
  targetPort = await freePort();
});

afterEach(async () => {
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

afterAll(async () => {
  await harness?.destroy();
});

describe('notifications from a real refresh', () => {
  it('a webhook that never answers does not delay the refresh, and flush returns within its timeout', async () => {
    // A baseline: the same refresh with no notifications.
    const t0 = performance.now();
    const baseline = await harness.run(harness.config(harness.jobYaml({ targetPort })));
    const baselineMs = performance.now() - t0;
    expect(baseline.status, JSON.stringify(baseline.error)).toBe('succeeded');

    const stuck = await Receiver.start([], 'hang');
    const chat = await Receiver.start();
    receivers.push(stuck, chat);
    const stuckUrl = stuck.url('/hooks/stuckT0ken0123456789');
    const chatUrl = chat.url('/services/T01/B02/chatT0ken0123456789');
    const jobs = harness.jobYaml({ targetPort }).replace('  - name: qa\n', '  - name: qa\n    notify: [stuck, chat]\n');
    const config = parseConfig(
      `stateDir: state
publicUrl: https://db-refresher.example.com
notifications:
  stuck: { kind: generic, url: { env: STUCK_URL }, secret: { env: STUCK_SECRET } }
  chat: { kind: slack, url: { env: CHAT_URL } }
jobs:${jobs}`,
      {
        source: 'test.yaml',
        baseDir: harness.sandbox.root,
        env: { ...harness.env, STUCK_URL: stuckUrl, CHAT_URL: chatUrl, STUCK_SECRET: 'stuck-signing-secret' },
      },
    );
    const { log, lines } = capturingLogger();
    const { runner, notifier } = buildRunner(config, log);
    const job = config.jobs[0];
    if (!job) throw new Error('no job');

    const t1 = performance.now();
    const run = await runner.run(job, { kind: 'cli', by: 'test', reason: 'notification test' });
    const runMs = performance.now() - t1;
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    // The run ended while the hanging webhook still held its first request: the
    // refresh never waited for it (a notifier that did would wait out at least the
    // 10 s request timeout, and then retry). Its time is that of a run without notifications.
    await stuck.waitFor(1);
    // A request to it is still open when the run has ended. (On a busy machine the run itself can outlast
    // the 10 s request timeout, so this may already be a second attempt.)
    const stuckStats = (notifier as DeliveringNotifier).stats().destinations.stuck;
    expect(stuckStats).toMatchObject({ inFlight: 1 });
    expect(stuckStats?.attempts).toBeGreaterThanOrEqual(1);
    expect(runMs).toBeLessThan(baselineMs * 2 + 2000);

    const t2 = performance.now();
    await notifier.flush(3000);
    const flushMs = performance.now() - t2;
    expect(flushMs).toBeLessThan(3300);

    // The working webhook got both messages, a second apart, with the real figures.
    expect(chat.requests.map((r) => JSON.parse(r.body).text.split('\n')[0])).toEqual([
      '🔄 Refresh of qa started',
      expect.stringMatching(/^✅ qa refreshed in /),
    ]);
    const done = chat.json<{ text: string }>(1).text;
    expect(done).toContain('Trigger: manually by test (command line): notification test');
    expect(done).toContain('• app: 5 tables (source 5)');
    expect(done).toContain(`https://db-refresher.example.com/api/v1/runs/${run.id}`);
    expect(done).toMatch(/Downtime: [\d.]+ (ms|s)/);
    // The aborted request settles a moment after flush returns; then both of stuck's messages count as dropped.
    const stats = () => (notifier as DeliveringNotifier).stats().destinations;
    for (let i = 0; i < 100 && stats().stuck?.inFlight; i += 1) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(stats()).toMatchObject({ chat: { delivered: 2 }, stuck: { delivered: 0, dropped: 2, inFlight: 0, queued: 0 } });
    const everything = [...lines, ...harness.logLines].join('\n');
    for (const secret of [stuckUrl, chatUrl, 'stuckT0ken0123456789', 'chatT0ken0123456789', 'stuck-signing-secret']) {
      expect(everything).not.toContain(secret);
    }
  });
});
