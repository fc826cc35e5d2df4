/**
 * The quota preflight of CNPG blue/green, end to end: a ResourceQuota on the namespace's
 * requests.storage, whose status.used the test writes through the /status subresource as Kubernetes'
 * quota controller would (the test API server stores quotas but runs no controller). With no room for a
 * second Cluster beside the live one, preflight refuses the run with a clear message, creates nothing,
 * and the live Cluster and the stable Service stay as they were; with room, the run goes ahead.
 */
import type { V1ResourceQuota } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRunner } from '../../src/composition-root.js';
import type { Config, JobConfig } from '../../src/config/types.js';
import type { RunRecord } from '../../src/run/record.js';
import type { SimulatedOperator } from '../cnpg-sim/index.js';
import { type CnpgFixture, GUIDE_SOURCE_HOST, startCnpgFixture } from '../support/cnpg-fixture.js';
import type { CnpgHarness } from '../support/cnpg-harness.js';
import { queryCopy } from '../support/copy-queries.js';

let h: CnpgHarness;
let sim: SimulatedOperator;
let fixture: CnpgFixture;
const A = 'qa-db-a';
const B = 'qa-db-b';
const SERVICE = 'qa-stable';
const QUOTA = 'storage';

beforeAll(async () => {
  fixture = await startCnpgFixture('cnpg-quota');
  ({ h, sim } = fixture);
});

afterAll(async () => {
  await fixture?.stop();
});

async function job(): Promise<Config> {
  const [pa, pb] = await Promise.all([sim.clusterPort(h.namespace, A), sim.clusterPort(h.namespace, B)]);
  const yaml = h.jobYaml({
    name: 'qa',
    clusterName: 'qa-db',
    job: `${h.directSourceYaml()}    strategy:
      kind: blueGreen
      keepPrevious: 1h
      drainSeconds: 0
      serviceName: ${SERVICE}
      connect: { a: { host: 127.0.0.1, port: ${pa} }, b: { host: 127.0.0.1, port: ${pb} } }
`,
  });
  return h.local.config(
    yaml.replace(`host: 127.0.0.1, port: "${h.local.source.port}"`, `host: ${GUIDE_SOURCE_HOST}, port: "5432"`),
    h.directEnv(),
  );
}

async function refresh(): Promise<RunRecord> {
  const config = await job();
  return buildRunner(config, pino({ level: 'silent' })).runner.run(config.jobs[0] as JobConfig, { kind: 'cli', by: 'test' });
}

/** The quota as an administrator sets it (spec.hard) and as the quota controller reports it (status). */
async function setQuota(hard: string, used: string): Promise<void> {
  const namespace = h.namespace;
  const spec = { hard: { 'requests.storage': hard } };
  let quota: V1ResourceQuota;
  try {
    const existing = await h.core.readNamespacedResourceQuota({ name: QUOTA, namespace });
    quota = await h.core.replaceNamespacedResourceQuota({ name: QUOTA, namespace, body: { ...existing, spec } });
  } catch {
    quota = await h.core.createNamespacedResourceQuota({ namespace, body: { metadata: { name: QUOTA, namespace }, spec } });
  }
  await h.core.replaceNamespacedResourceQuotaStatus({
    name: QUOTA,
    namespace,
    body: { ...quota, status: { hard: spec.hard, used: { 'requests.storage': used } } },
  });
}

async function selected(): Promise<string | undefined> {
  const svc = await h.core.readNamespacedService({ name: SERVICE, namespace: h.namespace });
  return svc.spec?.selector?.['cnpg.io/cluster'];
}

describe('CNPG blue/green quota preflight', { timeout: 300_000 }, () => {
  it('the test API server keeps a ResourceQuota and its status as written through /status', async () => {
    await setQuota('1536Mi', '0');
    const quota = await h.core.readNamespacedResourceQuota({ name: QUOTA, namespace: h.namespace });
    expect(quota.spec?.hard).toEqual({ 'requests.storage': '1536Mi' });
    expect(quota.status?.used).toEqual({ 'requests.storage': '0' });
  });

  it('with room for the first Cluster the run goes ahead, and preflight says the quota has room', async () => {
    const run = await refresh();
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(run.preflight?.find((c) => c.name === 'quota for a second Cluster')).toMatchObject({ ok: true });
    expect(await selected()).toBe(A);
  });

  it('with no room for a second Cluster beside the live one, preflight refuses: clear message, nothing created, live copy untouched', async () => {
    // The live Cluster's 1Gi volume, as the quota controller counts it once its PVC is bound.
    await setQuota('1536Mi', '1Gi');
    const live = await h.clusterAnnotations(A);
    const run = await refresh();
    expect(run.status).toBe('failed');
    expect(run.error?.phase).toBe('preflight');
    expect(run.error?.message).toContain(`ResourceQuota ${QUOTA} requests.storage: the new Cluster needs 1Gi, 512Mi left`);
    expect(run.error?.message).toContain('blueGreen keeps two Clusters at once: raise the quota, or use strategy recreate');
    expect(run.error?.message).toContain('the current copy was not changed');
    expect(run.phases.find((p) => p.name === 'clone-beside')?.status).toBe('skipped');
    expect(await h.clusterExists(B)).toBe(false);
    expect(await selected()).toBe(A);
    expect((await h.clusterAnnotations(A))['db-refresher.io/run-id']).toBe(live['db-refresher.io/run-id']);
    const rows = await queryCopy<{ cluster_name: string }>(
      await sim.servicePort(h.namespace, SERVICE),
      h.local.ownerPassword,
      'SHOW cluster_name',
    );
    expect(rows[0]?.cluster_name).toBe(A);
  });

  it('once the quota is raised, the same refresh passes preflight and swaps', async () => {
    await setQuota('2Gi', '1Gi');
    const run = await refresh();
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(await selected()).toBe(B);
  });
});
