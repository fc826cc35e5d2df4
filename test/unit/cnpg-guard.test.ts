import { describe, expect, it } from 'vitest';
import type { CnpgTargetConfig } from '../../src/config/types.js';
import { configRefusals, ownershipRefusal, sourceResolvesToTarget } from '../../src/targets/cnpg/guard.js';
import { classifyPodLog, currentOutage, readableLine } from '../../src/targets/cnpg/pod-log.js';

const target = (over: Partial<CnpgTargetConfig> = {}) =>
  ({ kind: 'cnpg', namespace: 'qa', clusterName: 'qa-db', protectedNamePattern: 'prod', adopt: false, ...over }) as CnpgTargetConfig;

describe('ownershipRefusal', () => {
  const base = { job: 'qa', jobPath: 'jobs[0]', adopt: false, name: 'qa-db', namespace: 'qa' };
  it('allows a missing Cluster and one db-refresher made for this job', () => {
    expect(ownershipRefusal({ ...base, existing: undefined })).toBeUndefined();
    expect(
      ownershipRefusal({
        ...base,
        existing: { labels: { 'app.kubernetes.io/managed-by': 'db-refresher' }, annotations: { 'db-refresher.io/job': 'qa' } },
      }),
    ).toBeUndefined();
  });
  it('refuses a foreign Cluster and says how to adopt it', () => {
    const reason = ownershipRefusal({ ...base, existing: { labels: { 'app.kubernetes.io/managed-by': 'Helm' }, annotations: {} } });
    expect(reason).toContain('was not created by db-refresher');
    expect(reason).toContain('jobs[0].target.adopt: true');
    expect(reason).toContain('kubectl label cluster qa-db -n qa');
  });
  it('adopt allows a foreign Cluster but never one of another job', () => {
    expect(ownershipRefusal({ ...base, adopt: true, existing: { labels: {}, annotations: {} } })).toBeUndefined();
    const other = ownershipRefusal({
      ...base,
      adopt: true,
      existing: { labels: { 'app.kubernetes.io/managed-by': 'db-refresher' }, annotations: { 'db-refresher.io/job': 'reporting' } },
    });
    expect(other).toContain('belongs to db-refresher job "reporting"');
  });
});

describe('ownershipRefusal and GitOps', () => {
  const base = { job: 'qa', jobPath: 'jobs[0]', adopt: true, name: 'qa-db', namespace: 'qa' };
  const ours = { 'app.kubernetes.io/managed-by': 'db-refresher' };
  it.each([
    [
      'Flux Kustomization',
      { labels: { 'kustomize.toolkit.fluxcd.io/name': 'apps', 'kustomize.toolkit.fluxcd.io/namespace': 'flux-system' }, annotations: {} },
      'Flux Kustomization "apps" (label kustomize.toolkit.fluxcd.io/name)',
      'kubectl label cluster qa-db -n qa kustomize.toolkit.fluxcd.io/name- kustomize.toolkit.fluxcd.io/namespace-',
    ],
    [
      'Flux HelmRelease',
      { labels: { 'helm.toolkit.fluxcd.io/name': 'qa-db' }, annotations: {} },
      'Flux HelmRelease "qa-db"',
      'kubectl label cluster qa-db -n qa helm.toolkit.fluxcd.io/name- helm.toolkit.fluxcd.io/namespace-',
    ],
    [
      'Argo CD (annotation tracking)',
      { labels: {}, annotations: { 'argocd.argoproj.io/tracking-id': 'qa-databases:postgresql.cnpg.io/Cluster:qa/qa-db' } },
      'Argo CD application "qa-databases" (annotation argocd.argoproj.io/tracking-id)',
      'kubectl annotate cluster qa-db -n qa argocd.argoproj.io/tracking-id-',
    ],
  ])('refuses a Cluster reconciled by %s, even with adopt or with our own labels', (_tool, existing, owner, command) => {
    for (const candidate of [
      existing,
      { labels: { ...existing.labels, ...ours }, annotations: { ...existing.annotations, 'db-refresher.io/job': 'qa' } },
    ]) {
      const reason = ownershipRefusal({ ...base, existing: candidate });
      expect(reason).toContain(`Cluster qa/qa-db is managed by ${owner}`);
      expect(reason).toContain('would recreate the Cluster from Git');
      expect(reason).toContain(command);
    }
  });
  it('does not mistake the common app.kubernetes.io/instance label (set by Helm charts) for Argo CD', () => {
    expect(ownershipRefusal({ ...base, existing: { labels: { 'app.kubernetes.io/instance': 'qa' }, annotations: {} } })).toBeUndefined();
  });
});

describe('configRefusals', () => {
  const at = (host: string) => [{ host, where: 'values.externalClusters[0].connectionParameters.host' }];
  it('refuses namespaces outside the allowlist and protected names', () => {
    expect(configRefusals({ target: target({ allowedNamespaces: ['staging'] }), sourceHosts: at('db') })[0]).toContain('not in this job');
    expect(configRefusals({ target: target({ clusterName: 'prod-copy' }), sourceHosts: at('db') })[0]).toContain('protected pattern');
    expect(configRefusals({ target: target({ clusterName: 'PRODUCTION' as string }), sourceHosts: at('db') })).toHaveLength(1);
    expect(configRefusals({ target: target(), sourceHosts: at('db') })).toEqual([]);
  });
  it.each([
    'qa-db-rw',
    'qa-db-rw.qa',
    'qa-db-rw.qa.svc',
    'qa-db-rw.qa.svc.cluster.local',
    'QA-DB-RW.qa.svc.cluster.local.',
    'qa-db-rw.qa.svc.corp.example',
    ' qa-db-r.qa.svc ',
    'qa-db-ro.QA',
    'qa-db-any.qa.svc.',
  ])('refuses the host %s: it is the target', (host) => {
    const reasons = configRefusals({ target: target(), sourceHosts: at(host) });
    expect(reasons.join()).toContain("is the target Cluster's own Service");
    expect(reasons.join()).toContain('values.externalClusters[0].connectionParameters.host');
  });
  it('checks every host: the source override and the externalClusters entry', () => {
    const reasons = configRefusals({
      target: target(),
      sourceHosts: [
        { host: 'prod-rw.production.svc', where: 'source.host' },
        { host: 'qa-db-rw.qa.svc.cluster.local', where: 'values.externalClusters[0].connectionParameters.host' },
      ],
    });
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toContain('values.externalClusters[0]');
  });
  it.each(['qa-db-rw.production.svc', 'qa-db-rwx.qa.svc', 'qa-db.qa.svc', 'qa-db-rw.qa.cluster.local', 'other-rw'])(
    "accepts %s: another cluster's service, or not a service name",
    (host) => {
      expect(configRefusals({ target: target(), sourceHosts: at(host) })).toEqual([]);
    },
  );
  it('flags a source address that is a target Service ClusterIP, naming the Service', () => {
    const services = [
      { name: 'qa-db-rw', ips: ['10.0.0.5'] },
      { name: 'qa-db-r', ips: ['10.0.0.6'] },
    ];
    expect(sourceResolvesToTarget({ host: '10.0.0.6', where: 'source.host' }, ['10.0.0.6'], services)).toContain(
      'source.host "10.0.0.6" is the ClusterIP of the target Cluster\'s own Service qa-db-r',
    );
    expect(sourceResolvesToTarget({ host: 'db.example', where: 'source.host' }, ['10.0.0.5'], services)).toContain(
      'resolves to 10.0.0.5, the ClusterIP',
    );
    expect(sourceResolvesToTarget({ host: 'db.example', where: 'source.host' }, ['10.0.0.9'], services)).toBeUndefined();
  });
});

describe('CNPG pod logs', () => {
  const waiting = JSON.stringify({
    level: 'info',
    msg: 'DB not available, will retry',
    err: 'failed to connect to `user=streaming_replica database=postgres`: 10.0.0.1:5432: FATAL: password authentication failed for user "streaming_replica" (SQLSTATE 28P01)',
  });
  it('sees the source-wait loop and classifies its cause', () => {
    expect(currentOutage([waiting, waiting])?.retries).toBe(2);
    expect(currentOutage(['{"msg":"Waiting for server to be available"}'])).toBeUndefined();
    expect(classifyPodLog([waiting]).class).toBe('authentication-failed');
    expect(readableLine(waiting)).toMatch(/^DB not available, will retry: failed to connect/);
  });
  it('counts an outage from its own first retry line, and forgets it once the clone makes progress', () => {
    const retry = (ts: string) => JSON.stringify({ level: 'info', ts, msg: 'DB not available, will retry', err: 'connection refused' });
    const log = [
      '{"level":"info","ts":"2026-01-01T10:00:00.000000001Z","msg":"Waiting for server to be available"}',
      retry('2026-01-01T10:00:01.123456789Z'),
      retry('2026-01-01T10:00:06.123456789Z'),
      '{"level":"info","ts":"2026-01-01T10:00:07Z","logger":"pg_basebackup","msg":"pg_basebackup: initiating base backup","pipe":"stderr"}',
      '{"level":"info","ts":"2026-01-01T10:00:36Z","msg":"Waiting for server to be available"}',
      retry('2026-01-01T10:00:36.500Z'),
      retry('2026-01-01T10:00:40.900Z'),
    ];
    expect(currentOutage(log)).toEqual({ firstLine: log[5], retries: 2, loggedMs: 4400 });
    expect(currentOutage(log.slice(0, 4))).toBeUndefined();
    expect(currentOutage(log.slice(0, 3))).toMatchObject({ firstLine: log[1], loggedMs: 5000 });
    expect(currentOutage(['DB not available, will retry (plain text)'])).toMatchObject({ retries: 1, loggedMs: undefined });
  });
  it.each([
    [
      '{"level":"info","logger":"pg_basebackup","msg":"pg_basebackup: error: incompatible server version 17.2","pipe":"stderr"}',
      'version-mismatch',
    ],
    [
      '{"msg":"DB not available, will retry","err":"FATAL: number of requested standby connections exceeds max_wal_senders (currently 2) (SQLSTATE 53300)"}',
      'wal-senders-exhausted',
    ],
    [
      '{"msg":"DB not available, will retry","err":"FATAL: no pg_hba.conf entry for replication connection from host \\"10.1.1.1\\" (SQLSTATE 28000)"}',
      'pg-hba-rejected',
    ],
    ['{"msg":"DB not available, will retry","err":"dial tcp 10.96.0.7:5432: connect: connection refused"}', 'source-unreachable'],
    ['{"logger":"pg_basebackup","msg":"pg_basebackup: error: could not write to file: No space left on device"}', 'disk-full'],
  ])('%s → %s', (line, expected) => {
    expect(classifyPodLog(['{"msg":"Waiting for server to be available"}', line]).class).toBe(expected);
  });
});
