/**
 * Lease leader election on the test API server (client-go's semantics, src/kube/leader-elector.ts):
 * one leader among three candidates, a fast hand-over on release, a takeover after a crash only once
 * the lease has expired, and a partitioned leader (its requests failing at the fault proxy) that stops
 * leading before any other replica starts.
 */
import { randomBytes } from 'node:crypto';
import { CoordinationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { Kube } from '../../src/kube/client.js';
import { LEADER_URL_ANNOTATION, LeaderElector } from '../../src/kube/leader-elector.js';
import { silentLogger } from '../../src/observe/logger.js';
import { type FaultProxy, startFaultProxy } from '../envtest/fault-proxy.js';

const kc = new KubeConfig();
kc.loadFromFile(inject('kubeconfigPath'));
const core = kc.makeApiClient(CoreV1Api);
const leases = kc.makeApiClient(CoordinationV1Api);
const ns = `leader-${randomBytes(3).toString('hex')}`;
// Short timings keep the test quick; the ratios are client-go's (15 / 10 / 2).
const timings = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 400 };

interface Candidate {
  elector: LeaderElector;
  started: number[];
  stopped: number[];
}

let electors: LeaderElector[] = [];
let proxy: FaultProxy | undefined;

function candidate(name: string, identity: string, kubeConfig = kc): Candidate {
  const c: Candidate = { started: [], stopped: [], elector: undefined as unknown as LeaderElector };
  c.elector = new LeaderElector({
    kube: new Kube(kubeConfig),
    namespace: ns,
    name,
    identity,
    timings,
    clock: systemClock,
    log: silentLogger(),
    url: `http://${identity}.test:8080`,
    onStartedLeading: () => c.started.push(Date.now()),
    onStoppedLeading: () => c.stopped.push(Date.now()),
  });
  electors.push(c.elector);
  return c;
}

async function until<T>(what: string, fn: () => T | undefined, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = fn();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  await core.createNamespace({ body: { metadata: { name: ns } } });
});

afterEach(async () => {
  await Promise.all(electors.map((e) => e.stop()));
  electors = [];
  await proxy?.close();
  proxy = undefined;
});

afterAll(async () => {
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
});

describe('Lease leader election', () => {
  it('elects exactly one of three, writes its identity and URL on the Lease, and hands over at once on release', async () => {
    const all = ['a', 'b', 'c'].map((id) => candidate('one-of-three', `pod-${id}`));
    for (const c of all) c.elector.start();
    const leader = await until('a leader', () => all.find((c) => c.elector.isLeader));
    // Several rounds: never two at once.
    for (let i = 0; i < 10; i += 1) {
      expect(all.filter((c) => c.elector.isLeader)).toHaveLength(1);
      await new Promise((r) => setTimeout(r, timings.retryPeriodMs / 2));
    }
    const lease = await leases.readNamespacedLease({ name: 'one-of-three', namespace: ns });
    expect(lease.spec?.holderIdentity).toBe(leader.elector.identity);
    expect(lease.spec?.leaseDurationSeconds).toBe(3);
    expect(lease.metadata?.annotations?.[LEADER_URL_ANNOTATION]).toBe(`http://${leader.elector.identity}.test:8080`);
    // Followers know who leads and where.
    const follower = all.find((c) => c !== leader);
    await until('the follower to see the leader', () => follower?.elector.status().leader?.identity === leader.elector.identity);
    expect(follower?.elector.status().leader?.url).toBe(`http://${leader.elector.identity}.test:8080`);

    const released = Date.now();
    await leader.elector.stop();
    const next = await until('a new leader', () => all.find((c) => c !== leader && c.elector.isLeader));
    // A released Lease (empty holder) is taken on the next try, not after the lease duration.
    expect((next.started[0] ?? 0) - released).toBeLessThan(timings.leaseDurationMs);
    const after = await leases.readNamespacedLease({ name: 'one-of-three', namespace: ns });
    expect(after.spec?.leaseTransitions).toBeGreaterThanOrEqual(1);
  });

  it('a leader that stops renewing (partitioned at the fault proxy) stops leading before another replica starts', async () => {
    proxy = await startFaultProxy({ target: new URL(kc.getCurrentCluster()?.server ?? '') });
    const partitioned = candidate('partition', 'pod-p', proxy.kubeConfig(kc));
    partitioned.elector.start();
    await until('pod-p to lead', () => partitioned.elector.isLeader);
    const other = candidate('partition', 'pod-q');
    other.elector.start();
    await new Promise((r) => setTimeout(r, timings.leaseDurationMs));
    expect(other.elector.isLeader).toBe(false);

    // Every request of pod-p now fails; it cannot renew.
    const cut = Date.now();
    proxy.setFaults({ errorRate: 1 });
    await until('pod-q to lead', () => other.elector.isLeader, 20_000);
    expect(partitioned.elector.isLeader).toBe(false);
    const stoppedAt = partitioned.stopped[0] ?? Number.POSITIVE_INFINITY;
    const startedAt = other.started[0] ?? 0;
    // pod-p gave up within its renew deadline (plus a watchdog tick) of the cut, before pod-q began.
    expect(stoppedAt - cut).toBeLessThan(timings.renewDeadlineMs + timings.retryPeriodMs + 500);
    expect(stoppedAt).toBeLessThan(startedAt);
    // And pod-q waited for the lease to expire from its own observation: at least the lease duration after the cut's last renewal.
    expect(startedAt - cut).toBeGreaterThanOrEqual(timings.leaseDurationMs - timings.retryPeriodMs);
  }, 60_000);

  it('hanging requests do not keep a stale leader: the renew deadline fires while a request is still pending', async () => {
    proxy = await startFaultProxy({ target: new URL(kc.getCurrentCluster()?.server ?? '') });
    const stuck = candidate('hang', 'pod-h', proxy.kubeConfig(kc));
    stuck.elector.start();
    await until('pod-h to lead', () => stuck.elector.isLeader);
    const cut = Date.now();
    proxy.setFaults({ delayMs: 30_000 });
    await until('pod-h to stop leading', () => stuck.stopped.length > 0, 10_000);
    expect((stuck.stopped[0] ?? 0) - cut).toBeLessThan(timings.renewDeadlineMs + timings.retryPeriodMs + 500);
    proxy.clearFaults();
  }, 60_000);
});
