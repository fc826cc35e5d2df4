import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { FileRunStore } from '../../src/history/file-store.js';
import { silentLogger } from '../../src/observe/logger.js';
import { newRun, newRunId, succeedRun } from '../../src/run/record.js';
import type { Leadership } from '../../src/service/leadership.js';
import { RefresherService } from '../../src/service/service.js';

/**
 * The watcher of runs made by other processes on the state directory (src/service/external-runs.ts)
 * belongs to the leader: it stops when the replica loses the leader Lease and starts again when it
 * gains it. The service runs in-process on a real state directory and file history; the Leadership
 * port is driven by the test (the Lease itself is tested in test/e2e/leader-*.test.ts).
 */

class DrivenLeadership implements Leadership {
  leading = false;
  #hooks: { gained(): void; lost(reason: string): void } | undefined;
  forwardTo(): 'self' | 'none' {
    return this.leading ? 'self' : 'none';
  }
  readiness() {
    return { ok: true, message: this.leading ? 'leading as test' : 'following' };
  }
  metric() {
    return { pod: 'test', leading: this.leading };
  }
  start(hooks: { gained(): void; lost(reason: string): void }): void {
    this.#hooks = hooks;
  }
  async stop(): Promise<void> {
    this.lose('stopped');
  }
  gain(): void {
    this.leading = true;
    this.#hooks?.gained();
  }
  lose(reason: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.#hooks?.lost(reason);
  }
}

const dirs: string[] = [];
const services: RefresherService[] = [];

afterEach(async () => {
  for (const s of services.splice(0)) await s.stop('test over');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function until(what: string, probe: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the external-run watcher follows leadership', () => {
  it('stops when the Lease is lost, and starts again when it is gained', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'dbr-leader-external-'));
    dirs.push(root);
    const config = parseConfig(
      `stateDir: state
server: { host: 127.0.0.1, port: 0 }
jobs:
  - name: qa
    source: { host: 127.0.0.1, port: 1, user: replicator, password: { env: PW } }
    target: { kind: local, dataDir: copies/qa, port: 2 }
    verify: { databases: [{ name: app }] }
`,
      { source: 'test.yaml', baseDir: root, env: { PW: 'x' } },
    );
    const leadership = new DrivenLeadership();
    const service = await RefresherService.create({ config, log: silentLogger(), leadership, store: new FileRunStore(config.stateDir) });
    services.push(service);
    await service.start();
    // Another process (`db-refresher run`) on the same state directory: it records a run and releases the job's lock.
    const other = new FileRunStore(config.stateDir);
    const cliRun = async (at: Date) => {
      const record = newRun({
        id: newRunId(at),
        job: 'qa',
        trigger: { kind: 'cli' },
        dryRun: false,
        now: at,
        source: { host: '127.0.0.1', port: 1 },
        target: { kind: 'local', summary: 'copies/qa' },
      } as Parameters<typeof newRun>[0]);
      const phasesDone = { ...record, phases: record.phases.map((p) => ({ ...p, status: 'succeeded' as const })) };
      const done = succeedRun(phasesDone, new Date(at.getTime() + 1000));
      await other.save(done);
      const lock = path.join(config.stateDir, 'locks', 'qa.lock');
      writeFileSync(lock, '{}');
      await unlink(lock);
      return done.id;
    };

    leadership.gain();
    await until('the leader to schedule', () => service.scheduler.running);
    const first = await cliRun(new Date(Date.now() - 60_000));
    await until('the leader to see the CLI run', () => service.board.state('qa').lastRun?.id === first);

    leadership.lose('test: the Lease was lost');
    // A follower reads history once when it starts following (src/service/follower-view.ts), then every 15 s.
    await new Promise((r) => setTimeout(r, 500));
    const second = await cliRun(new Date(Date.now() - 30_000));
    // The watcher answers within its 100 ms debounce; a follower's does not answer at all.
    await new Promise((r) => setTimeout(r, 1500));
    expect(service.board.state('qa').lastRun?.id).toBe(first);

    leadership.gain();
    await until('the leader to schedule again', () => service.scheduler.running);
    const third = await cliRun(new Date());
    await until('the leader to see the CLI runs again', () => service.board.state('qa').lastRun?.id === third);
    expect(second < third).toBe(true);
  }, 60_000);
});
