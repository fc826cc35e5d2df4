/**
 * Issue #13's findings, each as a whole refresh against the test API server
 * with the simulated CloudNativePG operator and a real PostgreSQL source: a
 * self-clone that slipped past the guard, an outage counted from the wrong
 * start, phases that need a person, foreign objects under the Cluster's
 * names, the owner rule decided too late, a delete by name, and what is left
 * when db-refresher gives up.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRunner } from '../../src/composition-root.js';
import type { Config } from '../../src/config/types.js';
import type { RunEvent } from '../../src/run/events.js';
import type { RunRecord } from '../../src/run/record.js';
import type { SimulatedOperator } from '../cnpg-sim/index.js';
import { type FaultProxy, startFaultProxy } from '../envtest/fault-proxy.js';
import { type CnpgFixture, REFRESH_TIMINGS, startCnpgFixture } from '../support/cnpg-fixture.js';
import type { CnpgHarness } from '../support/cnpg-harness.js';

let h: CnpgHarness;
let sim: SimulatedOperator;
let fixture: CnpgFixture;
const CLUSTER = { group: 'postgresql.cnpg.io', version: 'v1', plural: 'clusters' } as const;
beforeAll(async () => {
  fixture = await startCnpgFixture('cnpg-13');
  ({ h, sim } = fixture);
});

afterAll(async () => {
  await fixture?.stop();
});

/**
 * A job whose Cluster clones from "source-rw.production.svc" (the sandbox
 * source, through the simulator's mapping) while db-refresher reaches the
 * source directly through its `source:` override, as the README suggests when
 * db-refresher runs outside the cluster.
 */
async function job(input: {
  name: string;
  target?: string;
  kubeconfig?: string;
  externalHost?: string;
  externalPort?: number;
  /** Text replacements in the job's YAML. */
  edit?: Array<[string, string]>;
}): Promise<Config> {
  const yaml = h
    .jobYaml({
      name: input.name,
      clusterName: `${input.name}-db`,
      connectPort: await sim.clusterPort(h.namespace, `${input.name}-db`),
      ...(input.target ? { target: input.target } : {}),
      job: h.directSourceYaml(),
    })
    .replace(
      `host: 127.0.0.1, port: "${h.local.source.port}"`,
      `host: ${input.externalHost ?? 'source-rw.production.svc'}, port: "${input.externalPort ?? 5432}"`,
    )
    .replace(`kubeconfig: ${h.kubeconfigPath}`, `kubeconfig: ${input.kubeconfig ?? h.kubeconfigPath}`);
  const edited = (input.edit ?? []).reduce((text, [from, to]) => {
    if (!text.includes(from)) throw new Error(`the job YAML has no "${from}"`);
    return text.replace(from, to);
  }, yaml);
  return h.local.config(edited, h.directEnv());
}

async function refresh(config: Config, onEvent?: (e: RunEvent) => void): Promise<RunRecord> {
  const { runner } = buildRunner(config, pino({ level: 'silent' }), onEvent ? { onEvent } : {});
  const j = config.jobs[0];
  if (!j) throw new Error('no job');
  return runner.run(j, { kind: 'cli', by: 'test' });
}

async function clusterUid(name: string): Promise<string | undefined> {
  try {
    const obj = (await h.custom.getNamespacedCustomObject({ ...CLUSTER, namespace: h.namespace, name })) as { metadata: { uid: string } };
    return obj.metadata.uid;
  } catch {
    return undefined;
  }
}

async function foreignService(name: string, owner?: { kind: string; name: string }): Promise<void> {
  await h.core.createNamespacedService({
    namespace: h.namespace,
    body: {
      metadata: {
        name,
        ...(owner
          ? {
              ownerReferences: [
                {
                  apiVersion: 'apps/v1',
                  kind: owner.kind,
                  name: owner.name,
                  uid: '6b0e1d39-0000-4000-8000-000000000001',
                  controller: true,
                },
              ],
            }
          : {}),
      },
      spec: { selector: { app: 'something-else' }, ports: [{ port: 5432 }] },
    },
  });
}

async function events(cluster: string): Promise<Array<{ reason: string; message: string }>> {
  const list = await h.core.listNamespacedEvent({ namespace: h.namespace, fieldSelector: `involvedObject.name=${cluster}` });
  return list.items.map((e) => ({ reason: e.reason ?? '', message: e.message ?? '' }));
}

function expectRefusedInPreflight(run: RunRecord, failureClass: string): void {
  expect(run.status).toBe('failed');
  expect(run.error?.phase).toBe('preflight');
  expect(run.error?.class).toBe(failureClass);
  expect(run.phases.find((p) => p.name === 'teardown')?.status).toBe('skipped');
}

describe('the self-clone guard checks every host the copy clones from', () => {
  it("refuses an externalClusters host that is the target's own Service, although the source override is elsewhere", async () => {
    const first = await refresh(await job({ name: 'self2' }));
    expect(first.status, JSON.stringify(first.error)).toBe('succeeded');
    const uid = await clusterUid('self2-db');
    const run = await refresh(await job({ name: 'self2', externalHost: `SELF2-DB-RW.${h.namespace}.svc.cluster.local.` }));
    expectRefusedInPreflight(run, 'unsafe-target');
    expect(run.error?.message).toContain('jobs[0].target.values.externalClusters[0].connectionParameters.host');
    expect(run.error?.message).toContain("is the target Cluster's own Service");
    expect(await clusterUid('self2-db')).toBe(uid);
  });

  it("refuses an externalClusters host that is the ClusterIP of the target's own Service", async () => {
    const uid = await clusterUid('self2-db');
    const service = await h.core.readNamespacedService({ name: 'self2-db-rw', namespace: h.namespace });
    const ip = service.spec?.clusterIP ?? '';
    expect(ip).toMatch(/^10\.96\./);
    const run = await refresh(await job({ name: 'self2', externalHost: ip }));
    expectRefusedInPreflight(run, 'unsafe-target');
    expect(run.error?.message).toContain(`"${ip}" is the ClusterIP of the target Cluster's own Service self2-db-rw`);
    expect(await clusterUid('self2-db')).toBe(uid);
  });
});

describe('a source outage is counted from its own start', () => {
  it('a short outage after the Job has run longer than the grace does not fail the run', async () => {
    // The clone Job's pod takes 3.5 s to start (a slow image pull); the source goes away just before it
    // probes and comes back 2.5 s later. The grace is 3 s: the outage is shorter, the Job is older.
    sim.setTimings({ phaseStepMs: 3500 });
    let restarted: Promise<void> | undefined;
    try {
      const run = await refresh(await job({ name: 'outage', target: '      sourceUnavailableGraceSeconds: 3\n' }), (event) => {
        if (event.type === 'phase-finished' && event.phase === 'clone') {
          restarted = (async () => {
            await new Promise((r) => setTimeout(r, 2500));
            await h.local.source.stop('immediate');
            await new Promise((r) => setTimeout(r, 2500));
            await h.local.source.start();
          })();
        }
      });
      await restarted;
      expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    } finally {
      await restarted?.catch(() => undefined);
      sim.setTimings({ phaseStepMs: REFRESH_TIMINGS.phaseStepMs });
    }
  });

  it('an outage longer than the grace fails the run, saying how long it really lasted', async () => {
    // Nothing listens on port 1: every probe of the clone Job fails, from the first one.
    const run = await refresh(
      await job({ name: 'away', target: '      sourceUnavailableGraceSeconds: 2\n', externalHost: '127.0.0.1', externalPort: 1 }),
    );
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ phase: 'start', class: 'source-unreachable' });
    const seconds = Number(/for (\d+) s \(/.exec(run.error?.message ?? '')?.[1]);
    expect(seconds).toBeGreaterThanOrEqual(2);
    expect(seconds).toBeLessThan(10);
    expect(run.error?.message).toContain('longer than sourceUnavailableGraceSeconds (2 s)');
  });
});

describe('phases that need a person fail fast, and preflight sees their cause first', () => {
  it('refuses a foreign <cluster>-rw Service before deleting anything, naming it and its owner', async () => {
    await foreignService('taken-db-rw', { kind: 'Deployment', name: 'legacy-proxy' });
    const run = await refresh(await job({ name: 'taken', target: '      readyTimeoutSeconds: 20\n' }));
    expectRefusedInPreflight(run, 'unsafe-target');
    expect(run.error?.message).toContain(
      `Service ${h.namespace}/taken-db-rw exists and is not owned by the Cluster (it has Deployment "legacy-proxy")`,
    );
    expect(run.error?.message).toContain('refusing to reconcile service: taken-db-rw, not owned by the cluster');
    expect(await clusterUid('taken-db')).toBeUndefined();
  });

  it('refuses a Lease named after the Cluster that another controller owns', async () => {
    await h.kc.makeApiClient((await import('@kubernetes/client-node')).CoordinationV1Api).createNamespacedLease({
      namespace: h.namespace,
      body: {
        metadata: {
          name: 'leased-db',
          ownerReferences: [
            { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'elector', uid: '6b0e1d39-0000-4000-8000-000000000002', controller: true },
          ],
        },
        spec: {},
      },
    });
    const run = await refresh(await job({ name: 'leased', target: '      readyTimeoutSeconds: 20\n' }));
    expectRefusedInPreflight(run, 'unsafe-target');
    expect(run.error?.message).toContain(`Lease ${h.namespace}/leased-db is controlled by StatefulSet "elector"`);
  });

  it('"Unable to create required cluster objects" after preflight fails the start at once with the phaseReason, and the half-made Cluster is deleted', async () => {
    const started = Date.now();
    const run = await refresh(await job({ name: 'raced', target: '      readyTimeoutSeconds: 90\n' }), (event) => {
      // The Service appears after preflight looked: only CloudNativePG can notice it now.
      if (event.type === 'phase-started' && event.phase === 'clone') void foreignService('raced-db-rw');
    });
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ phase: 'start', class: 'target-stuck' });
    expect(run.error?.message).toContain(
      'Unable to create required cluster objects: refusing to reconcile service: raced-db-rw, not owned by the cluster',
    );
    expect(run.error?.message).not.toContain('raise the timeout');
    expect(Date.now() - started).toBeLessThan(30_000);
    // CloudNativePG would retry it forever; db-refresher removed exactly the Cluster it made.
    expect(await clusterUid('raced-db')).toBeUndefined();
    expect((await events('raced-db')).map((e) => e.reason)).toContain('RefreshFailed');
  });
});

describe('target.cluster on the way to CloudNativePG', () => {
  it('a spec only the CRD refuses (a CEL rule) is caught in preflight by a dry-run create, before anything is deleted', async () => {
    const first = await refresh(await job({ name: 'cel' }));
    expect(first.status, JSON.stringify(first.error)).toBe('succeeded');
    const uid = await clusterUid('cel-db');
    const run = await refresh(
      await job({
        name: 'cel',
        target: '      cluster: { imageCatalogRef: { apiGroup: postgresql.cnpg.io, kind: ImageCatalog, name: pg, major: 15 } }\n',
      }),
    );
    expectRefusedInPreflight(run, 'unknown');
    expect(run.error?.message).toContain('imageName and imageCatalogRef are mutually exclusive');
    expect(await clusterUid('cel-db')).toBe(uid);
  });

  it('"Invalid cluster definition" fails the start at once with the phaseReason', async () => {
    const started = Date.now();
    // The CRD takes any string as a size; CloudNativePG's admission guard does not.
    const run = await refresh(
      await job({ name: 'invalid', target: '      readyTimeoutSeconds: 90\n      cluster: { storage: { size: lots } }\n' }),
    );
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ phase: 'start', class: 'target-stuck' });
    expect(run.error?.message).toContain(
      'Invalid cluster definition: the resource failed admission validation on: spec.storage.size (see the operator logs for details)',
    );
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await clusterUid('invalid-db')).toBeUndefined();
  });

  it('the shaped Cluster is what CloudNativePG gets', async () => {
    const run = await refresh(
      await job({
        name: 'shaped',
        target: '      cluster: { resources: { requests: { memory: 256Mi } }, postgresql: { parameters: { work_mem: 8MB } } }\n',
      }),
    );
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    const obj = (await h.custom.getNamespacedCustomObject({ ...CLUSTER, namespace: h.namespace, name: 'shaped-db' })) as {
      spec: { resources?: unknown; postgresql?: { parameters?: Record<string, string> } };
    };
    expect(obj.spec.resources).toEqual({ requests: { memory: '256Mi' } });
    expect(obj.spec.postgresql?.parameters?.work_mem).toBe('8MB');
  });
});

describe('ownership', () => {
  it("refuses before teardown when the source's database keeps another owner than verification expects", async () => {
    await h.local.source.sql('CREATE DATABASE ledger OWNER replicator');
    try {
      const run = await refresh(await job({ name: 'ledger', edit: [['database: app, owner: app', 'database: ledger, owner: app']] }));
      expectRefusedInPreflight(run, 'verification-failed');
      expect(run.error?.message).toContain(
        "database ledger on the source is owned by replicator, not app; CloudNativePG keeps an existing database's owner",
      );
      expect(run.error?.message).toContain('ALTER DATABASE ledger OWNER TO app');
      expect(run.error?.message).toContain('bootstrapDB.pg_basebackup.owner: replicator');
    } finally {
      await h.local.source.sql('DROP DATABASE IF EXISTS ledger');
    }
  });

  it('with verify.owner: warn the same refresh goes ahead, and the kept owner is a warning in preflight and verify', async () => {
    await h.local.source.sql('CREATE DATABASE ledger OWNER replicator');
    try {
      const run = await refresh(
        await job({
          name: 'ledgerw',
          edit: [
            ['database: app, owner: app', 'database: ledger, owner: app'],
            ['    verify:\n', '    verify:\n      owner: warn\n'],
          ],
        }),
      );
      expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
      expect(run.preflight?.find((c) => c.name === 'database owner kept by the clone')).toMatchObject({ ok: false, severity: 'warning' });
      expect(run.verification?.checks.find((c) => c.name === 'database owner')).toMatchObject({
        ok: false,
        severity: 'warning',
        message: expect.stringContaining('ledger is owned by replicator, not app'),
      });
    } finally {
      await h.local.source.sql('DROP DATABASE IF EXISTS ledger');
    }
  });

  it('says that a hand-made Cluster is adopted, not that db-refresher created it', async () => {
    await h.custom.createNamespacedCustomObject({
      ...CLUSTER,
      namespace: h.namespace,
      body: {
        apiVersion: 'postgresql.cnpg.io/v1',
        kind: 'Cluster',
        metadata: { name: 'handmade-db' },
        spec: { instances: 1, storage: { size: '1Gi' } },
      },
    });
    const config = await job({ name: 'handmade', target: '      adopt: true\n' });
    const j = config.jobs[0];
    if (!j) throw new Error('no job');
    const { runner } = buildRunner(config, pino({ level: 'silent' }));
    const run = await runner.run(j, { kind: 'cli', by: 'test' }, { dryRun: true });
    const check = run.preflight?.find((c) => c.name === 'target is ours to replace');
    expect(check?.ok).toBe(true);
    expect(check?.message).toContain(
      `Cluster ${h.namespace}/handmade-db was not created by db-refresher; it is adopted (jobs[0].target.adopt: true)`,
    );
    expect(check?.message).not.toContain('was created by db-refresher');
  });
});

describe('teardown deletes exactly the Cluster it checked', () => {
  it('a Cluster replaced between the check and the delete is kept, and the run says so', async () => {
    const first = await refresh(await job({ name: 'swap' }));
    expect(first.status, JSON.stringify(first.error)).toBe('succeeded');
    const base = new KubeConfig();
    base.loadFromFile(h.kubeconfigPath);
    let proxy: FaultProxy | undefined;
    let replaced: Promise<void> | undefined;
    try {
      proxy = await startFaultProxy({
        target: new URL(base.getCurrentCluster()?.server ?? ''),
        faults: {
          delayMs: 2000,
          eligible: (req) => {
            const deleting = req.method === 'DELETE' && req.path.includes('/clusters/swap-db');
            // While db-refresher's DELETE is held back, someone replaces the Cluster with a hand-made one.
            if (deleting && !replaced) replaced = replaceCluster('swap-db');
            return deleting;
          },
        },
      });
      const kubeconfig = path.join(h.local.sandbox.root, 'swap.kubeconfig');
      writeFileSync(kubeconfig, proxy.kubeConfig(base).exportConfig());
      const run = await refresh(await job({ name: 'swap', kubeconfig }));
      await replaced;
      expect(run.status).toBe('failed');
      expect(run.error).toMatchObject({ phase: 'teardown', class: 'unsafe-target' });
      expect(run.error?.message).toContain('was replaced between the check and the delete');
      const now = (await h.custom.getNamespacedCustomObject({ ...CLUSTER, namespace: h.namespace, name: 'swap-db' })) as {
        metadata: { labels?: Record<string, string> };
      };
      expect(now.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('someone-else');
    } finally {
      await proxy?.close();
    }
  });
});

async function replaceCluster(name: string): Promise<void> {
  await h.custom.deleteNamespacedCustomObject({ ...CLUSTER, namespace: h.namespace, name });
  await h.custom.createNamespacedCustomObject({
    ...CLUSTER,
    namespace: h.namespace,
    body: {
      apiVersion: 'postgresql.cnpg.io/v1',
      kind: 'Cluster',
      metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'someone-else' } },
      spec: { instances: 1, storage: { size: '1Gi' } },
    },
  });
}
