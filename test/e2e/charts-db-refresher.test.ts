/**
 * charts/db-refresher rendered by Helm's engine (Go text/template + sprig, test/charts/render):
 * every document decodes strictly into its Kubernetes type (k8s.io/api's strict decoder, in the
 * renderer) and what the test API server serves is created there with dryRun=All and
 * fieldValidation=Strict; the ConfigMap is a config file db-refresher's own loader accepts; the pod
 * is locked down and its probes, ports, volumes and secret files line up with the config and the
 * Dockerfile; RBAC follows the values.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { buildRenderer, type RenderedManifest, render, renderError, strictDryRunCreate } from '../charts/helpers.js';

const kc = new KubeConfig();
kc.loadFromFile(inject('kubeconfigPath'));
const core = kc.makeApiClient(CoreV1Api);
const server = kc.getCurrentCluster()?.server ?? '';
const suffix = randomBytes(3).toString('hex');
const releaseNs = `dbr-${suffix}`;
const qaNs = `qa-${suffix}`;
const reportingNs = `reporting-${suffix}`;
const SECRETS_DIR = '/etc/db-refresher/secrets';
let tmp: string;

beforeAll(async () => {
  await buildRenderer();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'chart-dbr-'));
  for (const name of [releaseNs, qaNs, reportingNs]) await core.createNamespace({ body: { metadata: { name } } });
}, 600_000);
afterAll(async () => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  for (const name of [releaseNs, qaNs, reportingNs]) await core.deleteNamespace({ name }).catch(() => undefined);
});

let counter = 0;
function valuesFile(text: string): string {
  counter += 1;
  const file = path.join(tmp, `values-${counter}.yaml`);
  writeFileSync(file, text);
  return file;
}

/** A full production-like values file: two cnpg jobs in two namespaces, a local job, tokens, webhooks. */
const FULL = () => `
publicUrl: https://db-refresher.example.com
server:
  tokens:
    - name: ci
      token: { file: ${SECRETS_DIR}/db-refresher-api-tokens/ci }
    - name: dashboard
      token: { env: DASHBOARD_TOKEN }
      readOnly: true
notifications:
  team-chat:
    kind: slack
    url: { file: ${SECRETS_DIR}/db-refresher-webhooks/slack-url }
  audit:
    kind: generic
    url: { env: AUDIT_WEBHOOK_URL }
    secret: { file: ${SECRETS_DIR}/db-refresher-webhooks/audit-signing-key }
secretFiles:
  - name: db-refresher-api-tokens
  - name: db-refresher-webhooks
extraEnv:
  - name: DASHBOARD_TOKEN
    valueFrom: { secretKeyRef: { name: db-refresher-api-tokens, key: dashboard } }
  - name: AUDIT_WEBHOOK_URL
    valueFrom: { secretKeyRef: { name: db-refresher-webhooks, key: audit-url } }
  - name: SOURCE_PASSWORD
    valueFrom: { secretKeyRef: { name: local-source, key: password } }
serviceMonitor: { enabled: true, labels: { release: prometheus } }
persistence: { enabled: true, size: 5Gi }
jobs:
  - name: qa-db
    schedule: "@weekly"
    timezone: Europe/Berlin
    notify: [team-chat, audit]
    target:
      kind: cnpg
      namespace: ${qaNs}
      clusterName: cluster-qa-db
      valuesFile: values-qa.yaml
  - name: qa-db-2
    schedule: "30 2 * * 1-5"
    target:
      kind: cnpg
      namespace: ${qaNs}
      clusterName: cluster-qa-db-2
      valuesFile: values-qa.yaml
  - name: reporting
    schedule: "0 3 * * *"
    target:
      kind: cnpg
      namespace: ${reportingNs}
      clusterName: cluster-reporting
      values:
        instances: 1
        imageName: ghcr.io/cloudnative-pg/postgresql:16.2-3
        storage: { size: 20Gi }
        bootstrapDB: { pg_basebackup: { source: production-db } }
        externalClusters:
          - name: production-db
            connectionParameters: { host: db.example.com, port: 5432, user: streaming_replica }
            password: { name: replica-password, key: password }
  - name: local-copy
    source: { host: db.example.com, user: replicator, password: { env: SOURCE_PASSWORD } }
    target: { kind: local, dataDir: /var/lib/db-refresher/copies/local, port: 6543 }
configFiles:
  values-qa.yaml: |
    instances: 1
    imageName: ghcr.io/cloudnative-pg/postgresql:16.2-3
    storage: { size: 10Gi }
    bootstrapDB: { pg_basebackup: { source: production-db } }
    externalClusters:
      - name: production-db
        connectionParameters: { host: cluster-production-db-rw.production.svc.cluster.local, user: streaming_replica, sslmode: verify-full }
        sslKey: { name: production-db-replication, key: tls.key }
        sslCert: { name: production-db-replication, key: tls.crt }
        sslRootCert: { name: production-db-ca, key: ca.crt }
`;

function byKind(manifests: RenderedManifest[], kind: string): RenderedManifest[] {
  return manifests.filter((m) => m.kind === kind);
}
function one(manifests: RenderedManifest[], kind: string): RenderedManifest {
  const found = byKind(manifests, kind);
  expect(found, `exactly one ${kind}`).toHaveLength(1);
  return found[0] as RenderedManifest;
}

interface Container {
  name: string;
  image: string;
  env?: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }>;
  ports?: Array<{ name: string; containerPort: number }>;
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  startupProbe?: { httpGet?: { path: string; port: string | number } };
  securityContext?: Record<string, unknown>;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface PodSpec {
  serviceAccountName: string;
  automountServiceAccountToken?: boolean;
  securityContext?: Record<string, unknown>;
  containers: Container[];
  volumes?: Array<{ name: string; emptyDir?: Record<string, unknown>; secret?: { secretName: string }; configMap?: { name: string } }>;
}
interface Deployment {
  spec: {
    replicas: number;
    strategy: { type: string };
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
}

function podOf(manifests: RenderedManifest[]): { spec: PodSpec; labels: Record<string, string>; deployment: Deployment } {
  const deployment = one(manifests, 'Deployment').object as unknown as Deployment;
  return { spec: deployment.spec.template.spec, labels: deployment.spec.template.metadata.labels, deployment };
}

describe('the db-refresher chart with a full set of values', () => {
  let manifests: RenderedManifest[];
  beforeAll(async () => {
    ({ manifests } = await render('db-refresher', { valuesFiles: [valuesFile(FULL())], name: 'dbr', namespace: releaseNs }));
  });

  it('renders the expected objects, each decoded strictly into its Kubernetes type', () => {
    const kinds = manifests.map((m) => `${m.kind}/${m.namespace ?? ''}/${m.name}`).sort();
    expect(kinds).toEqual(
      [
        `ConfigMap/${releaseNs}/dbr-db-refresher`,
        `Deployment/${releaseNs}/dbr-db-refresher`,
        `PersistentVolumeClaim/${releaseNs}/dbr-db-refresher-state`,
        `Role/${qaNs}/dbr-db-refresher-target`,
        `Role/${reportingNs}/dbr-db-refresher-target`,
        `Role/${releaseNs}/dbr-db-refresher-history`,
        `RoleBinding/${qaNs}/dbr-db-refresher-target`,
        `RoleBinding/${reportingNs}/dbr-db-refresher-target`,
        `RoleBinding/${releaseNs}/dbr-db-refresher-history`,
        `Service/${releaseNs}/dbr-db-refresher`,
        `ServiceAccount/${releaseNs}/dbr-db-refresher`,
        `ServiceMonitor/${releaseNs}/dbr-db-refresher`,
      ].sort(),
    );
    for (const m of manifests) {
      if (m.kind === 'ServiceMonitor') expect(m.decode).toBe('unregistered');
      else expect(m.decode, `${m.kind} ${m.name}: ${m.decodeError ?? ''}`).toBe('strict');
    }
  });

  it('the API server accepts what it serves with fieldValidation=Strict (dryRun), and the pod template as a Pod', async () => {
    const plural: Record<string, string> = {
      ConfigMap: 'configmaps',
      Service: 'services',
      ServiceAccount: 'serviceaccounts',
      PersistentVolumeClaim: 'persistentvolumeclaims',
    };
    const served = manifests.filter((m) => m.kind in plural);
    expect(served).toHaveLength(4);
    for (const m of served) {
      const created = await strictDryRunCreate(server, m.object as never, plural[m.kind] ?? '');
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect((created.body.metadata as { name: string }).name).toBe(m.name);
    }
    const { spec, labels } = podOf(manifests);
    const created = await strictDryRunCreate(
      server,
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'dbr-pod-template', namespace: releaseNs, labels }, spec } as never,
      'pods',
    );
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const pod = created.body as { spec?: { containers?: unknown[] } };
    expect(pod.spec?.containers).toHaveLength(1);
  });

  it('a misspelled field in the values is caught by the strict decoder and refused by the API server', async () => {
    const bad = await render('db-refresher', {
      valuesFiles: [valuesFile(`${FULL()}\npodSecurityContext: { runAsNonRoot: true, runAsUsr: 10001 }\n`)],
      name: 'dbr',
      namespace: releaseNs,
    });
    const deployment = one(bad.manifests, 'Deployment');
    expect(deployment.decode).toBe('failed');
    expect(deployment.decodeError).toContain('unknown field "spec.template.spec.securityContext.runAsUsr"');
    const { spec, labels } = podOf(bad.manifests);
    const refused = await strictDryRunCreate(
      server,
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'dbr-bad', namespace: releaseNs, labels }, spec } as never,
      'pods',
    );
    expect(refused.status).toBe(400);
    expect(String(refused.body.message)).toContain('unknown field "spec.securityContext.runAsUsr"');
  });

  it("the ConfigMap's config.yaml is a config file db-refresher's loader accepts, secrets and valuesFile included", () => {
    const cm = one(manifests, 'ConfigMap').object as unknown as { data: Record<string, string> };
    expect(Object.keys(cm.data).sort()).toEqual(['config.yaml', 'values-qa.yaml']);
    const { spec } = podOf(manifests);
    const container = spec.containers[0] as Container;
    const configPath = container.env?.find((e) => e.name === 'DB_REFRESHER_CONFIG')?.value;
    expect(configPath).toBe('/etc/db-refresher/config/config.yaml');
    const configMount = container.volumeMounts?.find((m) => m.name === 'config');
    expect(configMount).toMatchObject({ mountPath: path.dirname(configPath ?? ''), readOnly: true });

    // Every {file: ...} reference is a key of a Secret the pod mounts at /etc/db-refresher/secrets/<secret>.
    const text = cm.data['config.yaml'] ?? '';
    const fileRefs = [...text.matchAll(/file: (\S+)/g)].map((m) => m[1] ?? '');
    expect(fileRefs).toHaveLength(3);
    const secretMounts = new Map(
      (container.volumeMounts ?? []).flatMap((m) => {
        const volume = spec.volumes?.find((v) => v.name === m.name);
        return volume?.secret ? [[m.mountPath, volume.secret.secretName] as const] : [];
      }),
    );
    for (const ref of fileRefs) {
      expect(secretMounts.get(path.dirname(ref)), `${ref} is mounted from a Secret`).toBe(path.basename(path.dirname(ref)));
    }
    // Every {env: NAME} reference is set from a Secret.
    const envRefs = [...text.matchAll(/env: (\S+)/g)].map((m) => m[1] ?? '');
    expect(envRefs.sort()).toEqual(['AUDIT_WEBHOOK_URL', 'DASHBOARD_TOKEN', 'SOURCE_PASSWORD']);
    for (const name of envRefs) expect(container.env?.find((e) => e.name === name)?.valueFrom?.secretKeyRef).toBeDefined();

    // The loader reads the mounted files; here they live under a temp dir instead of /etc/db-refresher.
    const dir = path.join(tmp, 'etc-db-refresher');
    mkdirSync(path.join(dir, 'config'), { recursive: true });
    for (const [key, content] of Object.entries(cm.data)) writeFileSync(path.join(dir, 'config', key), content);
    for (const ref of fileRefs) {
      const local = path.join(dir, 'secrets', path.relative(SECRETS_DIR, ref));
      mkdirSync(path.dirname(local), { recursive: true });
      writeFileSync(local, `${'s'.repeat(24)}\n`);
    }
    const config = parseConfig(text.replaceAll(SECRETS_DIR, path.join(dir, 'secrets')), {
      source: 'config.yaml (ConfigMap)',
      baseDir: path.join(dir, 'config'),
      env: { DASHBOARD_TOKEN: 'd'.repeat(24), AUDIT_WEBHOOK_URL: 'https://audit.example.com/hook', SOURCE_PASSWORD: 'x' },
    });
    expect(config.jobs.map((j) => j.name)).toEqual(['qa-db', 'qa-db-2', 'reporting', 'local-copy']);
    expect(config.server.port).toBe(8080);
    expect(config.server.history.kind).toBe('kubernetes');
    expect(config.stateDir).toBe('/var/lib/db-refresher');
    const qa = config.jobs[0]?.target;
    expect(qa?.kind === 'cnpg' && qa.values.externalClusters[0]?.name).toBe('production-db');
    const reporting = config.jobs[2]?.target;
    expect(reporting?.kind === 'cnpg' && reporting.values.externalClusters[0]?.connectionParameters.port).toBe('5432');
  });

  it('the pod is locked down: non-root (the Dockerfile user), read-only root, no capabilities, RuntimeDefault seccomp', () => {
    const { spec } = podOf(manifests);
    const container = spec.containers[0] as Container;
    expect(container.securityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.securityContext).not.toHaveProperty('capabilities.add');
    const dockerUser = /^USER (\d+):(\d+)$/m.exec(readFileSync(path.resolve(import.meta.dirname, '../../Dockerfile'), 'utf8'));
    expect(spec.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: Number(dockerUser?.[1]),
      runAsGroup: Number(dockerUser?.[2]),
      fsGroup: Number(dockerUser?.[2]),
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.resources?.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(container.resources?.limits).toMatchObject({ memory: expect.any(String) });
  });

  it('writable places are exactly /tmp (emptyDir) and stateDir (the PVC); config and secrets are read-only', () => {
    const { spec } = podOf(manifests);
    const container = spec.containers[0] as Container;
    const writable = (container.volumeMounts ?? []).filter((m) => !m.readOnly).map((m) => m.mountPath);
    expect(writable.sort()).toEqual(['/tmp', '/var/lib/db-refresher']);
    const volume = (mountPath: string) =>
      spec.volumes?.find((v) => v.name === container.volumeMounts?.find((m) => m.mountPath === mountPath)?.name);
    expect(volume('/tmp')?.emptyDir).toBeDefined();
    expect(volume('/var/lib/db-refresher')).toMatchObject({ persistentVolumeClaim: { claimName: 'dbr-db-refresher-state' } });
  });

  it('probes hit /healthz and /readyz on the named port that is server.port; the Service forwards to it', () => {
    const { spec, labels } = podOf(manifests);
    const container = spec.containers[0] as Container;
    expect(container.ports).toEqual([{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
    expect(container.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(container.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(container.startupProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
    const service = one(manifests, 'Service').object as unknown as {
      spec: { selector: Record<string, string>; ports: Array<{ port: number; targetPort: string }> };
    };
    expect(service.spec.ports).toEqual([{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }]);
    for (const [k, v] of Object.entries(service.spec.selector)) expect(labels[k]).toBe(v);
  });

  it('one replica, Recreate, the image of the chart appVersion, a token only because the API is used', () => {
    const { spec, deployment, labels } = podOf(manifests);
    expect(deployment.spec.replicas).toBe(1);
    expect(deployment.spec.strategy).toEqual({ type: 'Recreate' });
    for (const [k, v] of Object.entries(deployment.spec.selector.matchLabels)) expect(labels[k]).toBe(v);
    const chart = parseYaml(readFileSync(path.resolve(import.meta.dirname, '../../charts/db-refresher/Chart.yaml'), 'utf8')) as {
      appVersion: string;
    };
    const pkg = JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string };
    expect(chart.appVersion).toBe(pkg.version);
    expect(spec.containers[0]?.image).toBe(`db-refresher:${pkg.version}`);
    expect(spec.automountServiceAccountToken).toBe(true);
    expect(spec.serviceAccountName).toBe('dbr-db-refresher');
  });

  it('the ServiceMonitor scrapes /metrics on the Service port by name, selecting the Service', () => {
    const sm = one(manifests, 'ServiceMonitor').object as unknown as {
      apiVersion: string;
      metadata: { labels: Record<string, string> };
      spec: { selector: { matchLabels: Record<string, string> }; endpoints: Array<Record<string, string | boolean>> };
    };
    const service = one(manifests, 'Service').object as unknown as { metadata: { labels: Record<string, string> } };
    expect(sm.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(sm.metadata.labels.release).toBe('prometheus');
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) expect(service.metadata.labels[k]).toBe(v);
    // honorLabels keeps db-refresher's own `job` label (the refresh job) instead of renaming it exported_job.
    expect(sm.spec.endpoints).toEqual([
      { port: 'http', path: '/metrics', scheme: 'http', interval: '30s', scrapeTimeout: '10s', honorLabels: true },
    ]);
  });

  it("a Role per cnpg target namespace, limited to its Clusters and its own Namespace; the history Role only to the jobs' ConfigMaps", () => {
    const roles = byKind(manifests, 'Role');
    const qa = roles.find((r) => r.namespace === qaNs)?.object as unknown as { rules: Array<Record<string, string[]>> };
    expect(qa.rules).toContainEqual({
      apiGroups: ['postgresql.cnpg.io'],
      resources: ['clusters'],
      resourceNames: ['cluster-qa-db', 'cluster-qa-db-2'],
      verbs: ['get', 'list', 'watch', 'delete', 'patch'],
    });
    expect(qa.rules).toContainEqual({ apiGroups: [''], resources: ['namespaces'], resourceNames: [qaNs], verbs: ['get'] });
    expect(qa.rules.flatMap((r) => r.verbs)).not.toContain('*');
    expect(qa.rules.flatMap((r) => r.resources)).not.toContain('*');
    const history = roles.find((r) => r.name === 'dbr-db-refresher-history')?.object as unknown as { rules: unknown[] };
    expect(history.rules).toEqual([
      { apiGroups: [''], resources: ['configmaps'], verbs: ['list', 'create'] },
      {
        apiGroups: [''],
        resources: ['configmaps'],
        resourceNames: [
          'db-refresher-runs-qa-db',
          'db-refresher-runs-qa-db-2',
          'db-refresher-runs-reporting',
          'db-refresher-runs-local-copy',
        ],
        verbs: ['get', 'update'],
      },
    ]);
    for (const binding of byKind(manifests, 'RoleBinding')) {
      const b = binding.object as unknown as { roleRef: { kind: string; name: string }; subjects: unknown[] };
      expect(roles.some((r) => r.namespace === binding.namespace && r.name === b.roleRef.name && b.roleRef.kind === 'Role')).toBe(true);
      expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: 'dbr-db-refresher', namespace: releaseNs }]);
    }
    expect(byKind(manifests, 'ClusterRole')).toHaveLength(0);
  });
});

describe('db-refresher chart options', () => {
  const minimal = (extra = '') => `
jobs:
  - name: qa-db
    target:
      kind: cnpg
      namespace: ${qaNs}
      clusterName: cluster-qa-db
      values:
        storage: { size: 1Gi }
        bootstrapDB: { pg_basebackup: { source: src } }
        externalClusters: [{ name: src, connectionParameters: { host: db.example.com, user: r } }]
${extra}`;

  it('rbac.clusterWide: one ClusterRole and ClusterRoleBinding instead of the per-namespace Roles', async () => {
    const { manifests } = await render('db-refresher', {
      valuesFiles: [valuesFile(minimal('rbac: { clusterWide: true }\n'))],
      name: 'dbr',
      namespace: releaseNs,
    });
    const kinds = manifests.map((m) => m.kind);
    expect(kinds.filter((k) => k === 'ClusterRole' || k === 'ClusterRoleBinding')).toEqual(['ClusterRole', 'ClusterRoleBinding']);
    expect(byKind(manifests, 'Role').map((r) => r.name)).toEqual(['dbr-db-refresher-history']);
    for (const m of manifests) expect(m.decode, `${m.kind}: ${m.decodeError ?? ''}`).toBe('strict');
    const role = one(manifests, 'ClusterRole').object as unknown as { rules: Array<Record<string, string[]>> };
    expect(role.rules).toContainEqual({ apiGroups: [''], resources: ['namespaces'], resourceNames: [qaNs], verbs: ['get'] });
  });

  it('local jobs with file history: no Roles, and no service account token in the pod', async () => {
    const { manifests } = await render('db-refresher', {
      valuesFiles: [
        valuesFile(`
server: { history: { kind: file } }
persistence: { enabled: true, existingClaim: dbr-data }
jobs:
  - name: local
    source: { host: db.example.com, user: replicator }
    target: { kind: local, dataDir: /var/lib/db-refresher/copies/local, port: 6543 }
`),
      ],
      name: 'dbr',
      namespace: releaseNs,
    });
    expect(manifests.map((m) => m.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'Service', 'ServiceAccount']);
    const { spec } = podOf(manifests);
    expect(spec.automountServiceAccountToken).toBe(false);
    expect(spec.volumes?.find((v) => v.name === 'state')).toEqual({ name: 'state', persistentVolumeClaim: { claimName: 'dbr-data' } });
  });

  it('a cnpg job with its own kubeconfig needs no Role for its namespace', async () => {
    const { manifests } = await render('db-refresher', {
      valuesFiles: [
        valuesFile(
          minimal().replace(
            'clusterName: cluster-qa-db',
            'clusterName: cluster-qa-db\n      kubeconfig: /etc/db-refresher/secrets/kube/config',
          ),
        ),
      ],
      name: 'dbr',
      namespace: releaseNs,
    });
    expect(byKind(manifests, 'Role').map((r) => r.namespace)).toEqual([releaseNs]);
  });

  it('leaderElection.enabled adds a Role for one Lease; a second replica is refused either way', async () => {
    const { manifests } = await render('db-refresher', {
      valuesFiles: [valuesFile(minimal('leaderElection: { enabled: true }\n'))],
      name: 'dbr',
      namespace: releaseNs,
    });
    const lease = manifests.find((m) => m.name === 'dbr-db-refresher-leader-election' && m.kind === 'Role')?.object as unknown as {
      rules: unknown[];
    };
    expect(lease.rules).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['dbr-db-refresher'], verbs: ['get', 'update'] },
    ]);
    // Two replicas need leader election (and the Kubernetes history, the chart's default).
    const two = await render('db-refresher', {
      valuesFiles: [valuesFile(minimal('replicaCount: 2\nleaderElection: { enabled: true }\n'))],
      name: 'dbr',
      namespace: releaseNs,
    });
    expect(two.manifests.some((m) => m.kind === 'PodDisruptionBudget')).toBe(true);
    const error = await renderError('db-refresher', {
      valuesFiles: [valuesFile(minimal('replicaCount: 2\n'))],
      name: 'dbr',
      namespace: releaseNs,
    });
    expect(error).toMatch(/leaderElection/);
  });

  it('server.port and shutdownGraceSeconds flow into the container port and the termination grace period', async () => {
    const { manifests } = await render('db-refresher', {
      valuesFiles: [valuesFile(minimal('server: { port: 9090, shutdownGraceSeconds: 0 }\nservice: { port: 8080 }\n'))],
      name: 'dbr',
      namespace: releaseNs,
    });
    const { spec } = podOf(manifests);
    expect(spec.containers[0]?.ports?.[0]?.containerPort).toBe(9090);
    expect((spec as unknown as { terminationGracePeriodSeconds: number }).terminationGracePeriodSeconds).toBe(30);
    // server.history stays what values.yaml says, merged under the user's server keys, as Helm coalesces.
    const cm = one(manifests, 'ConfigMap').object as unknown as { data: Record<string, string> };
    expect(parseYaml(cm.data['config.yaml'] ?? '')).toMatchObject({
      server: { port: 9090, shutdownGraceSeconds: 0, history: { kind: 'kubernetes' } },
    });
  });

  it.each([
    ['no jobs', 'jobs: []\n', /jobs: at least one job is required/],
    ['an unknown chart key', `${minimal()}bogus: true\n`, /additional properties 'bogus' not allowed/],
    ['port 0', `${minimal()}server: { port: 0 }\n`, /at '\/server\/port'/],
    ['a loopback listen address', `${minimal()}server: { host: 127.0.0.1 }\n`, /server\.host/],
    ['a relative stateDir', `${minimal()}stateDir: state\n`, /at '\/stateDir'/],
    ['two replicas without leader election', `${minimal()}replicaCount: 2\n`, /leaderElection/],
    ['config.yaml in configFiles', `${minimal()}configFiles: { config.yaml: "x" }\n`, /configFiles: "config.yaml" is the config file/],
  ])('refuses %s', async (_what, text, message) => {
    expect(await renderError('db-refresher', { valuesFiles: [valuesFile(text)], name: 'dbr', namespace: releaseNs })).toMatch(message);
  });
});
