/**
 * The harness itself: starting and stopping a private test API server, the clean-up guarantees for
 * its processes, and the fault proxy in front of it.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { ApiException, CoreV1Api, type KubeConfig, Watch } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultProxy, startFaultProxy } from '../envtest/fault-proxy.js';
import { spawnManaged } from '../envtest/processes.js';
import { startTestApiServer, type TestApiServer } from '../envtest/server.js';

const run = promisify(execFile);

/** Processes whose command line mentions `text` (pgrep exits 1 when there are none). */
async function processesMentioning(text: string): Promise<string[]> {
  try {
    const { stdout } = await run('pgrep', ['-f', '-a', text]);
    return stdout.trim().split('\n').filter(Boolean);
  } catch (err) {
    if ((err as { code?: number }).code === 1) {
      return [];
    }
    throw err;
  }
}

let api: TestApiServer;
let ownLogDir: string;

beforeAll(async () => {
  ownLogDir = mkdtempSync(join(tmpdir(), 'envtest-harness-logs-'));
  api = await startTestApiServer({ logDir: ownLogDir });
});

afterAll(async () => {
  await api?.stop();
  rmSync(ownLogDir, { recursive: true, force: true });
});

describe('startTestApiServer', () => {
  it('serves on loopback with a kubeconfig that kubectl and client-node both use', async () => {
    expect(api.server.hostname).toBe('127.0.0.1');
    expect(api.logDir).toBe(ownLogDir);
    const { stdout } = await run('kubectl', ['--kubeconfig', api.kubeconfigPath, 'get', 'crd', '-o', 'name']);
    expect(stdout.trim()).toBe('customresourcedefinition.apiextensions.k8s.io/clusters.postgresql.cnpg.io');
    const namespaces = await api.kubeConfig.makeApiClient(CoreV1Api).listNamespace();
    expect(namespaces.items.map((n) => n.metadata?.name)).toEqual(
      expect.arrayContaining(['default', 'kube-system', 'kube-public', 'kube-node-lease']),
    );
  });

  it('stop() ends etcd and the API server and removes the temp folder, but not a logDir it was given', async () => {
    const second = await startTestApiServer();
    const workDir = dirname(second.kubeconfigPath);
    const running = await processesMentioning(workDir);
    expect(running.some((p) => p.includes('/etcd --name=envtest'))).toBe(true);
    expect(running.some((p) => p.includes('/kube-apiserver-lite --etcd-servers='))).toBe(true);
    await second.stop();
    await second.stop(); // idempotent
    expect(await processesMentioning(workDir)).toEqual([]);
    expect(existsSync(workDir)).toBe(false);
    expect(existsSync(ownLogDir)).toBe(true);
  });
});

describe('process clean-up', () => {
  it('kills a managed process within seconds of its watched parent dying, even by SIGKILL', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'envtest-watchdog-'));
    try {
      const parent = spawn('sleep', ['600'], { stdio: 'ignore' });
      const marker = `envtest-watchdog-victim-${process.pid}-${Date.now()}`;
      const victim = spawnManaged('victim', 'bash', ['-c', 'sleep 600', marker], join(dir, 'victim.log'), {
        watchPid: parent.pid,
      });
      expect(victim.running()).toBe(true);
      parent.kill('SIGKILL');
      const exit = await Promise.race([
        victim.exited,
        new Promise<'still running'>((resolve) => setTimeout(resolve, 5000, 'still running')),
      ]);
      expect(exit).toEqual({ code: null, signal: 'SIGTERM' });
      // The watchdog takes itself down too: nothing of the group is left.
      await expect.poll(() => processesMentioning(marker), { timeout: 8000 }).toEqual([]);
      await victim.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('fault proxy', () => {
  let proxy: FaultProxy;
  let viaProxy: KubeConfig;

  beforeAll(async () => {
    proxy = await startFaultProxy({
      target: api.server,
      tls: { cert: readFileSync(api.tls.certFile), key: readFileSync(api.tls.keyFile) },
    });
    viaProxy = proxy.kubeConfig(api.kubeConfig);
  });

  afterAll(async () => {
    await proxy?.close();
  });

  const listNamespaces = () => viaProxy.makeApiClient(CoreV1Api).listNamespace();

  async function outcome(call: () => Promise<unknown>): Promise<number | 'ok'> {
    try {
      await call();
      return 'ok';
    } catch (err) {
      if (err instanceof ApiException) {
        return err.code;
      }
      throw err;
    }
  }

  it('forwards everything untouched by default, over TLS', async () => {
    expect(proxy.url.protocol).toBe('https:');
    const before = proxy.stats().forwarded;
    await listNamespaces();
    expect(proxy.stats().forwarded).toBe(before + 1);
  });

  it('fails the configured share of requests with 500', async () => {
    proxy.setFaults({ errorRate: 0.25 });
    const before = proxy.stats().injected500;
    const results: (number | 'ok')[] = [];
    for (let i = 0; i < 40; i++) {
      results.push(await outcome(listNamespaces));
    }
    proxy.clearFaults();
    const failures = results.filter((r) => r === 500).length;
    expect(failures).toBeGreaterThanOrEqual(9);
    expect(failures).toBeLessThanOrEqual(11);
    expect(results.filter((r) => r !== 500 && r !== 'ok')).toEqual([]);
    expect(proxy.stats().injected500 - before).toBe(failures);
  });

  it('throttles with 429 and Retry-After', async () => {
    proxy.setFaults({ throttleRate: 1, retryAfterSeconds: 2 });
    try {
      await listNamespaces();
      throw new Error('expected a 429');
    } catch (err) {
      expect(err).toBeInstanceOf(ApiException);
      const e = err as ApiException<string>;
      expect(e.code).toBe(429);
      expect(e.headers['retry-after']).toBe('2');
      expect(JSON.parse(e.body)).toMatchObject({ kind: 'Status', reason: 'TooManyRequests', code: 429 });
    } finally {
      proxy.clearFaults();
    }
    expect(await outcome(listNamespaces)).toBe('ok');
  });

  it('delays responses', async () => {
    proxy.setFaults({ delayMs: 300 });
    const started = performance.now();
    await listNamespaces();
    proxy.clearFaults();
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('rejects impossible settings', () => {
    expect(() => proxy.setFaults({ errorRate: 1.5 })).toThrow(RangeError);
    expect(() => proxy.setFaults({ errorRate: 0.6, throttleRate: 0.6 })).toThrow(RangeError);
  });

  /** Opens a watch through the proxy; resolves with what `done` got, and when. */
  async function openWatch(): Promise<{ done: Promise<{ err: unknown; at: number }>; startedAt: number }> {
    let resolveDone: (v: { err: unknown; at: number }) => void = () => {};
    const done = new Promise<{ err: unknown; at: number }>((resolve) => {
      resolveDone = resolve;
    });
    const before = proxy.stats().watchesOpened;
    const startedAt = performance.now();
    await new Watch(viaProxy).watch(
      '/api/v1/namespaces',
      {},
      () => {},
      (err) => resolveDone({ err, at: performance.now() }),
    );
    await expect.poll(() => proxy.stats().watchesOpened).toBe(before + 1);
    return { done, startedAt };
  }

  it('cuts open watch streams on demand', async () => {
    const { done } = await openWatch();
    expect(proxy.stats().openWatches).toBe(1);
    expect(proxy.cutWatches()).toBe(1);
    const { err } = await done;
    expect(err).toBeTruthy();
    expect(proxy.stats().openWatches).toBe(0);
  });

  it('cuts each watch a set time after it opens', async () => {
    proxy.setFaults({ cutWatchesAfterMs: 300, cutMode: 'end' });
    const cutBefore = proxy.stats().watchesCut;
    const { done, startedAt } = await openWatch();
    expect(proxy.stats().openWatches).toBe(1);
    const { err, at } = await done;
    proxy.clearFaults();
    // 'end' looks like a server closing the watch: no error, just the end.
    expect(err).toBeNull();
    expect(at - startedAt).toBeGreaterThanOrEqual(290);
    expect(proxy.stats().watchesCut).toBe(cutBefore + 1);
  });

  it('stops by itself: after close() nothing answers', async () => {
    const other = await startFaultProxy({ target: api.server });
    const kc = other.kubeConfig(api.kubeConfig);
    await kc.makeApiClient(CoreV1Api).listNamespace();
    await other.close();
    await expect(kc.makeApiClient(CoreV1Api).listNamespace()).rejects.toThrow();
  });
});
