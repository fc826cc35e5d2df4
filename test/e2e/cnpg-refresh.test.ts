/**
 * Whole refreshes of a CloudNativePG Cluster: the real runner and CNPG target,
 * the real test API server, the simulated CNPG operator (test/cnpg-sim), and
 * real PostgreSQL for the source and the clone.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildRunner } from '../../src/composition-root.js';
import type { Config } from '../../src/config/types.js';
import type { RunEvent } from '../../src/run/events.js';
import type { RunRecord } from '../../src/run/record.js';
import type { SimulatedOperator } from '../cnpg-sim/index.js';
import { type FaultProxy, startFaultProxy } from '../envtest/fault-proxy.js';
import { type CnpgFixture, startCnpgFixture } from '../support/cnpg-fixture.js';
import type { CnpgHarness } from '../support/cnpg-harness.js';
import { queryCopy } from '../support/copy-queries.js';

let h: CnpgHarness;
let sim: SimulatedOperator;
let fixture: CnpgFixture;
const _logDir = inject('podLogDir');

beforeAll(async () => {
  fixture = await startCnpgFixture('cnpg-run');
  ({ h, sim } = fixture);
});

afterAll(async () => {
  await fixture?.stop();
});

/**
 * A job whose Cluster clones from "source-rw.production.svc" (mapped to the
 * sandbox source by the simulator), while db-refresher itself reaches the same
 * server directly, with the superuser for SQL so it may CHECKPOINT.
 */
async function job(input: { name: string; cluster: string; target?: string; values?: string; secret?: string }): Promise<Config> {
  const port = await sim.clusterPort(h.namespace, input.cluster);
  const yaml = h
    .jobYaml({
      name: input.name,
      clusterName: input.cluster,
      connectPort: port,
      ...(input.target ? { target: input.target } : {}),
      job: h.directSourceYaml(),
    })
    .replace(`host: 127.0.0.1, port: "${h.local.source.port}"`, `host: source-rw.production.svc, port: "5432"`)
    .replace('name: source-replication', `name: ${input.secret ?? 'source-replication'}`);
  return h.local.config(yaml, h.directEnv());
}

async function refresh(config: Config, options: { kubeconfig?: string; onEvent?: (e: RunEvent) => void } = {}): Promise<RunRecord> {
  const log = pino({ level: 'silent' });
  const { runner } = buildRunner(config, log, options.onEvent ? { onEvent: options.onEvent } : {});
  const j = config.jobs[0];
  if (!j) throw new Error('no job');
  return runner.run(j, { kind: 'cli', by: 'test' });
}

async function events(cluster: string): Promise<string[]> {
  const list = await h.core.listNamespacedEvent({ namespace: h.namespace, fieldSelector: `involvedObject.name=${cluster}` });
  return list.items.map((e) => e.reason ?? '');
}

describe('refreshing a CNPG Cluster', () => {
  it('creates, waits for healthy, verifies, and records the outcome on the Cluster', async () => {
    const config = await job({ name: 'qa', cluster: 'qa-db' });
    const run = await refresh(config);
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(run.phases.find((p) => p.name === 'clone')?.detail).toMatchObject({ checkpoint: 'issued' });
    expect(run.verification?.checks.map((c) => [c.name, c.ok])).toEqual([
      ['owner can log in', true],
      ['database owner', true],
      // Neutralisation is on by default: the copy was closed until it was done (cnpg-safe-copy.test.ts).
      ['no synchronous standby', true],
      ['no enabled subscription', true],
      ['no active cron job', true],
    ]);
    const port = await sim.clusterPort(h.namespace, 'qa-db');
    const rows = await queryCopy<{ n: string }>(port, h.local.ownerPassword, 'SELECT count(*) AS n FROM public.users');
    expect(Number(rows[0]?.n)).toBe(500);
    const notes = await h.clusterAnnotations('qa-db');
    expect(notes).toMatchObject({
      'db-refresher.io/job': 'qa',
      'db-refresher.io/run-id': run.id,
      'db-refresher.io/last-outcome': 'succeeded',
    });
    expect(notes['db-refresher.io/source-snapshot-at']).toBe(run.snapshot?.takenAt);
    expect(await events('qa-db')).toEqual(expect.arrayContaining(['RefreshStarted', 'RefreshSucceeded']));
  });

  it('a second refresh replaces the first: data written to the old clone is gone, and the wait honoured slow garbage collection', async () => {
    const config = await job({ name: 'qa', cluster: 'qa-db' });
    const port = await sim.clusterPort(h.namespace, 'qa-db');
    await queryCopy(
      port,
      h.local.ownerPassword,
      "INSERT INTO public.users (id, email) VALUES (888888, 'only-in-the-old-clone@example.com')",
    );
    await h.local.source.sql("INSERT INTO public.users (id, email) VALUES (600000, 'new-in-source@example.com')", 'app');
    const run = await refresh(config);
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    const teardown = run.phases.find((p) => p.name === 'teardown')?.detail as { deleted: boolean; waitedMs: number };
    expect(teardown.deleted).toBe(true);
    // The simulated garbage collector removes owned objects 300 ms after the Cluster; the teardown must have waited for it.
    expect(teardown.waitedMs).toBeGreaterThanOrEqual(250);
    const rows = await queryCopy<{ id: string }>(
      port,
      h.local.ownerPassword,
      'SELECT id FROM public.users WHERE id IN (600000, 888888) ORDER BY id',
    );
    expect(rows.map((r) => Number(r.id))).toEqual([600000]);
  });

  /** db-refresher reaches the source, but the Cluster's pods are sent to a port where nothing listens (a NetworkPolicy, say). */
  async function blockedJob(name: string, target: string): Promise<Config> {
    return h.local.config(
      h
        .jobYaml({
          name,
          clusterName: `${name}-db`,
          connectPort: await sim.clusterPort(h.namespace, `${name}-db`),
          target,
          job: `    source:\n      host: 127.0.0.1\n      port: ${h.local.source.port}\n      user: replicator\n      sslmode: disable\n      password: { env: SOURCE_PASSWORD }\n`,
        })
        .replace(`host: 127.0.0.1, port: "${h.local.source.port}"`, 'host: 127.0.0.1, port: "1"'),
      h.local.env,
    );
  }

  it('explains a source the clone Job cannot reach, after the grace period, without waiting for the ready timeout', async () => {
    const started = Date.now();
    const run = await refresh(await blockedJob('blocked', '      sourceUnavailableGraceSeconds: 2\n'));
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ phase: 'start', class: 'source-unreachable' });
    expect(run.error?.message).toContain('DB not available, will retry');
    expect(run.error?.details?.some((l) => l.includes('DB not available'))).toBe(true);
    expect(Date.now() - started).toBeLessThan(60_000);
    // The Job would probe forever: db-refresher deleted the half-made Cluster, and said so.
    expect(run.error?.message).toContain('db-refresher deleted the half-made Cluster');
    expect(await h.clusterExists('blocked-db')).toBe(false);
    expect(await events('blocked-db')).toContain('RefreshFailed');
  });

  it('stops at the ready timeout with a timeout, pointing at the cause the clone Job logged', async () => {
    // Long enough for the clone Job to have logged its retries on a busy machine (3 s was not, under load).
    const run = await refresh(await blockedJob('slow', '      sourceUnavailableGraceSeconds: 600\n      readyTimeoutSeconds: 10\n'));
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ phase: 'start', class: 'timeout' });
    expect(run.error?.message).toContain('the Cluster did not become healthy within 10 s');
    expect(run.error?.hint).toContain("The clone Job's log points at source-unreachable");
    expect(run.error?.details?.some((l) => l.includes('DB not available'))).toBe(true);
    expect(await h.clusterExists('slow-db')).toBe(false);
  });

  it('with keepFailedCluster the half-made Cluster stays, annotated failed', async () => {
    const run = await refresh(await blockedJob('kept', '      sourceUnavailableGraceSeconds: 2\n      keepFailedCluster: true\n'));
    expect(run.error).toMatchObject({ phase: 'start', class: 'source-unreachable' });
    expect(run.error?.message).not.toContain('deleted the half-made Cluster');
    expect((await h.clusterAnnotations('kept-db'))['db-refresher.io/last-outcome']).toBe('failed');
  });

  it('explains a replication password that only the Cluster gets wrong', async () => {
    await h.putSecret('stale-replication', { password: 'rotated-long-ago' });
    const config = await job({
      name: 'stale',
      cluster: 'stale-db',
      target: '      sourceUnavailableGraceSeconds: 2\n',
      secret: 'stale-replication',
    });
    // db-refresher's own connection uses the right password from the environment; the Cluster's Secret is stale.
    const run = await refresh(config);
    expect(run.status).toBe('failed');
    expect(run.error?.phase).toBe('start');
    expect(run.error?.class).toBe('authentication-failed');
    expect(run.error?.hint).toContain('verify the secret exists and has the correct key');
  });

  it('explains a clone Job that fails: walsender slots taken between preflight and clone', async () => {
    await h.local.source.sql('ALTER SYSTEM SET max_wal_senders = 3');
    await h.local.source.restart();
    const receivers: Array<ReturnType<typeof spawn>> = [];
    try {
      const config = await job({ name: 'busy', cluster: 'busy-db' });
      const run = await refresh(config, {
        onEvent: (event) => {
          // Right after preflight approved 3 free slots, someone else takes two of them.
          if (event.type === 'phase-started' && event.phase === 'teardown') {
            for (const slot of ['a', 'b']) {
              const dir = path.join(h.local.sandbox.dir(`wal-${slot}`));
              receivers.push(
                spawn(
                  path.join(h.local.source.binDir.dir, 'pg_receivewal'),
                  ['-D', dir, '-h', '127.0.0.1', '-p', String(h.local.source.port), '-U', 'postgres', '-w', '-n'],
                  {
                    env: { ...process.env, PGPASSWORD: h.local.source.superuserPassword },
                    stdio: 'ignore',
                  },
                ),
              );
            }
          }
        },
      });
      expect(run.status).toBe('failed');
      expect(run.error?.phase).toBe('start');
      expect(run.error?.class).toBe('wal-senders-exhausted');
      expect(run.error?.hint).toContain('Increase max_wal_senders');
      expect(run.error?.hint).toContain('a CloudNativePG clone 3');
      // Not the phase CloudNativePG had not yet moved on from.
      expect(run.error?.message).not.toMatch(/^Setting up primary/);
      expect(run.error?.message).toMatch(/^(the clone Job busy-db-1-pgbasebackup failed|Cluster is unrecoverable)/);
    } finally {
      for (const r of receivers) r.kill('SIGKILL');
      await h.local.source.sql('ALTER SYSTEM RESET max_wal_senders');
      await h.local.source.restart();
    }
  });

  it('ends with a clear timeout, and recreates nothing, when the old Cluster’s objects never go away', async () => {
    const first = await refresh(await job({ name: 'stuck', cluster: 'stuck-db' }));
    expect(first.status, JSON.stringify(first.error)).toBe('succeeded');
    // A finalizer nobody removes keeps the old primary Pod around, as a stuck kubelet would.
    await h.core.patchNamespacedPod(
      { name: 'stuck-db-1', namespace: h.namespace, body: { metadata: { finalizers: ['example.com/never'] } } },
      (await import('@kubernetes/client-node')).setHeaderOptions(
        'Content-Type',
        (await import('@kubernetes/client-node')).PatchStrategy.MergePatch,
      ),
    );
    try {
      const run = await refresh(await job({ name: 'stuck', cluster: 'stuck-db', target: '      teardownTimeoutSeconds: 3\n' }));
      expect(run.status).toBe('failed');
      expect(run.error).toMatchObject({ phase: 'teardown', class: 'timeout' });
      expect(run.error?.message).toContain('Pod stuck-db-1');
      expect(run.phases.find((p) => p.name === 'clone')?.status).toBe('skipped');
      expect(await h.clusterExists('stuck-db')).toBe(false);
    } finally {
      await h.core
        .patchNamespacedPod(
          { name: 'stuck-db-1', namespace: h.namespace, body: { metadata: { finalizers: null } } },
          (await import('@kubernetes/client-node')).setHeaderOptions(
            'Content-Type',
            (await import('@kubernetes/client-node')).PatchStrategy.MergePatch,
          ),
        )
        .catch(() => undefined);
    }
  });

  for (const [stopAfter, resumesAt] of [
    ['clone', 'start'],
    ['start', 'neutralise'],
  ] as const) {
    it(`a run stopped after ${stopAfter} (a service restart) resumes at ${resumesAt} and succeeds`, async () => {
      const config = await job({ name: `resumed-${resumesAt}`, cluster: `resumed-${resumesAt}` });
      const j = config.jobs[0];
      if (!j) throw new Error('no job');
      const first = buildRunner(config, pino({ level: 'silent' }), {
        onEvent: (event) => {
          // What SIGTERM does to the service: finish the phase under way, then stop at the boundary.
          if (event.type === 'phase-finished' && event.phase === stopAfter) first.runner.pauseAll('service stopping');
        },
      });
      const paused = await first.runner.run(j, { kind: 'cli', by: 'test' });
      expect(paused.status).toBe('running');
      expect(paused.phases.find((p) => p.name === resumesAt)?.status).toBe('pending');
      // A new process (a new runner) takes the record up again.
      const second = buildRunner(config, pino({ level: 'silent' }));
      const resumed = await (await second.runner.resume(paused, j)).done;
      expect(resumed.status, JSON.stringify(resumed.error)).toBe('succeeded');
      expect(resumed.verification?.checks.find((c) => c.name === 'owner can log in')?.ok).toBe(true);
      // The copy goes through the private window (an in-place restart at open) on a shared, noisy machine.
    }, 240_000);
  }

  it('succeeds through API faults: 500s, 429s with Retry-After, and cut watches', async () => {
    const base = new KubeConfig();
    base.loadFromFile(h.kubeconfigPath);
    let proxy: FaultProxy | undefined;
    try {
      proxy = await startFaultProxy({ target: new URL(base.getCurrentCluster()?.server ?? '') });
      const kubeconfig = path.join(h.local.sandbox.root, 'faulty.kubeconfig');
      writeFileSync(kubeconfig, proxy.kubeConfig(base).exportConfig());
      proxy.setFaults({ errorRate: 0.15, throttleRate: 0.1, retryAfterSeconds: 1, cutWatchesAfterMs: 700, cutMode: 'destroy' });
      const faulty = h.local.config(
        h
          .jobYaml({
            name: 'faulty',
            clusterName: 'faulty-db',
            connectPort: await sim.clusterPort(h.namespace, 'faulty-db'),
            job: `    source:\n      host: 127.0.0.1\n      port: ${h.local.source.port}\n      user: replicator\n      sslmode: disable\n      password: { env: SOURCE_PASSWORD }\n`,
          })
          .replace(`kubeconfig: ${h.kubeconfigPath}`, `kubeconfig: ${kubeconfig}`)
          .replace(`host: 127.0.0.1, port: "${h.local.source.port}"`, 'host: source-rw.production.svc, port: "5432"'),
        h.local.env,
      );
      const first = await refresh(faulty);
      expect(first.status, JSON.stringify(first.error)).toBe('succeeded');
      const second = await refresh(faulty);
      expect(second.status, JSON.stringify(second.error)).toBe('succeeded');
      const stats = proxy.stats();
      expect(stats.injected500 + stats.injected429).toBeGreaterThan(0);
      expect(stats.watchesCut).toBeGreaterThan(0);
    } finally {
      await proxy?.close();
    }
    // Two refreshes, each through the private window (an in-place restart at open).
  }, 300_000);
});
