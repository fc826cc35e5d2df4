// biome-ignore-all lint/performance/useDomNodeTextContent: these are playwright's Locator.innerText(), not the DOM property
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { RefresherService } from '../../src/service/service.js';
import { freePort, LocalHarness } from '../support/local-harness.js';
import { slowBinDir } from '../support/slow-pg.js';

/**
 * The status page in a real browser: Debian's Chromium, headless, driven by
 * playwright-core, against the real service on real PostgreSQL. It loads the
 * page, signs in, triggers a refresh from the button, watches the progress
 * bar move and the run end green, checks the run page, the read-only view,
 * the page without JavaScript and on a phone, runs axe-core, and saves a
 * screenshot (test/artifacts/status-page.png).
 *
 * The clone is slowed down with pg_basebackup's own --max-rate (a wrapper in
 * PG_BINDIR), so it lasts long enough for several progress reports.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const WRITER = 'page-writer-token-0123456789abcdef';
const VIEWER = 'page-viewer-token-0123456789abcdef';
const artifacts = path.resolve(import.meta.dirname, '../artifacts');

let harness: LocalHarness;
let service: RefresherService;
let base: string;
let browser: Browser;
const logLines: string[] = [];

beforeAll(async () => {
  harness = await LocalHarness.start();
  const env = { ...harness.env, WRITER_TOKEN: WRITER, VIEWER_TOKEN: VIEWER, PG_BINDIR: slowBinDir(harness.sandbox.root) };
  const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
  const extra = Array.from(
    { length: 4 },
    (_, i) => `
  - name: reporting-${i + 1}
    schedule: "30 ${2 + i} * * *"
    timezone: ${['Europe/Berlin', 'America/New_York', 'Asia/Tokyo', 'UTC'][i]}
    ${i === 3 ? 'suspend: true' : ''}
    source: { host: 127.0.0.1, port: ${harness.source.port}, user: x }
    target: { kind: local, dataDir: copies/r${i}, port: ${ports[i]} }`,
  ).join('');
  const config = parseConfig(
    `stateDir: state
server:
  host: 127.0.0.1
  port: 0
  tokens:
    - { name: qa-lead, token: { env: WRITER_TOKEN } }
    - { name: dashboard, token: { env: VIEWER_TOKEN }, readOnly: true }
jobs:${harness.jobYaml({ name: 'qa', targetPort: await freePort() }).replace('  - name: qa\n', '  - name: qa\n    description: QA copy of production\n    schedule: "0 3 * * 1-5"\n    timezone: Europe/Berlin\n')}${extra}`,
    { source: 'page-test.yaml', baseDir: harness.sandbox.root, env },
  );
  service = await RefresherService.create({
    config,
    env,
    log: pino(
      { level: 'info' },
      new Writable({
        write: (chunk: Buffer, _e, cb) => {
          logLines.push(chunk.toString());
          cb();
        },
      }),
    ),
  });
  await service.start();
  base = await service.listen({ host: '127.0.0.1', port: 0 });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  mkdirSync(artifacts, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await service?.stop('test over');
  await harness?.destroy();
  for (const line of logLines) for (const secret of [WRITER, VIEWER, harness.replicationPassword]) expect(line).not.toContain(secret);
});

async function signIn(page: Page, token: string): Promise<void> {
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Signed in as').waitFor();
}

describe('the status page', () => {
  it('shows the jobs table without JavaScript and without a token', async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    const response = await page.goto(`${base}/`);
    expect(response?.status()).toBe(200);
    const rows = page.locator('#jobs tbody tr');
    expect(await rows.count()).toBe(5);
    await expect.poll(() => page.locator('#job-qa th').innerText()).toContain('qa');
    expect(await page.locator('#job-reporting-1 td[data-label="Next run"]').innerText()).toMatch(
      /^\d{4}-\d\d-\d\d 02:30 (CET|CEST|GMT\+\d)$/,
    );
    expect(await page.locator('#job-reporting-4 td[data-label="Suspended"]').innerText()).toBe('suspended');
    expect(await page.locator('#job-qa td[data-label="Data age"]').innerText()).toBe('no copy yet');
    expect(await page.locator('button').count()).toBe(0);
    await context.close();
  });

  it('a read-only token sees the jobs and no action buttons', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${base}/`);
    await signIn(page, VIEWER);
    await page.locator('#live.live-on').waitFor();
    await expect.poll(() => page.locator('#session').innerText()).toContain('read-only');
    expect(await page.locator('#jobs button').count()).toBe(0);
    await context.close();
  });

  it('a bad token is refused and not kept', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${base}/`);
    await page.getByLabel('API token').fill('not-a-valid-token-at-all');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('That token is not valid here.').waitFor();
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
    await context.close();
  });

  it('triggers a refresh from the button, the progress bar moves, and the run ends green', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await page.goto(`${base}/`);
    await signIn(page, WRITER);
    await page.locator('#live.live-on').waitFor();
    // The token lives in this tab's sessionStorage only.
    expect(await page.evaluate('({ session: sessionStorage.length, local: localStorage.length })')).toEqual({ session: 1, local: 0 });
    expect(await context.cookies()).toEqual([]);

    await page.locator('#job-qa').getByRole('button', { name: 'Refresh now' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel(/Reason/).fill('fresh data for the release test');
    await dialog.getByRole('button', { name: 'Start refresh' }).click();
    await page
      .locator('#notice')
      .getByText(/Run .* of qa is running/)
      .waitFor();

    // Watch the row: phases go by, and the clone's progress bar takes several values.
    const percents = new Set<number>();
    const phases = new Set<string>();
    let screenshotTaken = false;
    const deadline = Date.now() + 90_000;
    for (;;) {
      const row = page.locator('#job-qa');
      const running = await row.getAttribute('data-running');
      const phase = await row
        .locator('.phase')
        .textContent({ timeout: 1000 })
        .catch(() => null);
      if (phase) phases.add(phase);
      const value = await row
        .locator('progress')
        .getAttribute('value', { timeout: 200 })
        .catch(() => null);
      if (value !== null) {
        percents.add(Number(value));
        if (!screenshotTaken && Number(value) >= 30) {
          await page.screenshot({ path: path.join(artifacts, 'status-page-running.png') });
          screenshotTaken = true;
        }
      }
      if (running === 'false' && phases.size > 0) break;
      if (Date.now() > deadline) throw new Error(`the run did not end; phases seen: ${[...phases]}, percents: ${[...percents]}`);
      await page.waitForTimeout(100);
    }
    expect(percents.size, `progress values seen: ${[...percents]}`).toBeGreaterThanOrEqual(3);
    expect(phases).toContain('clone');
    const status = page.locator('#job-qa td[data-label="Status"] .badge');
    expect(await status.innerText()).toBe('succeeded');
    expect(await page.evaluate(`getComputedStyle(document.querySelector('#job-qa td[data-label="Status"] .badge')).color`)).toBe(
      'rgb(17, 99, 41)',
    );
    await expect.poll(() => page.locator('#job-qa td[data-label="Data age"]').innerText()).toMatch(/^\d+ s$/);
    await page.screenshot({ path: path.join(artifacts, 'status-page.png') });

    // The run page: every phase with its duration, the verification per database, the trigger with its reason.
    await page.locator('#job-qa td[data-label="Last run"] a').click();
    await page.getByRole('heading', { name: /^Run / }).waitFor();
    const timeline = page.locator('table.timeline tbody tr');
    // preflight, snapshot, teardown, clone, start, neutralise, prepare, mask, open, verify
    expect(await timeline.count()).toBe(10);
    expect(await timeline.locator('.badge').allInnerTexts()).toEqual(Array(10).fill('succeeded'));
    expect(await page.locator('.facts').innerText()).toContain('fresh data for the release test');
    expect(await page.locator('table.verify tbody tr th').allInnerTexts()).toContain('app');
    await page.screenshot({ path: path.join(artifacts, 'run-page.png'), fullPage: true });
    await context.close();
  });

  it('has no serious or critical axe-core violations, signed in, on a desktop and on a phone', async () => {
    const axe = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
    for (const viewport of [
      { width: 1280, height: 800 },
      { width: 390, height: 844 },
    ]) {
      // bypassCSP: the page allows no inline script, and axe is injected as one.
      const context = await browser.newContext({ viewport, bypassCSP: true, isMobile: viewport.width < 500 });
      const page = await context.newPage();
      await page.goto(`${base}/`);
      await signIn(page, WRITER);
      for (const hash of ['#/', '#/jobs/qa']) {
        await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
        await page.waitForTimeout(300);
        await page.addScriptTag({ content: axe });
        const result = (await page.evaluate(`axe.run(document, { resultTypes: ['violations'] }).then((r) =>
          r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) })))`)) as Array<{
          id: string;
          impact: string;
        }>;
        const serious = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
        expect(serious, `${viewport.width}px ${hash}: ${JSON.stringify(serious)}`).toEqual([]);
      }
      if (viewport.width < 500) {
        // On a phone the table becomes cards: nothing scrolls sideways.
        expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth + 1')).toBe(true);
        await page.evaluate(`location.hash = '#/'`);
        await page.screenshot({ path: path.join(artifacts, 'status-page-phone.png'), fullPage: true });
      }
      await context.close();
    }
  });
});
