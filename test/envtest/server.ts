/**
 * A real Kubernetes API server for tests: etcd plus kube-apiserver-lite (or a real kube-apiserver from
 * KUBEBUILDER_ASSETS) on loopback ports, with the CloudNativePG Cluster CRD installed.
 *
 *   const api = await startTestApiServer();
 *   try { ...use api.kubeConfig or api.kubeconfigPath... } finally { await api.stop(); }
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ApiException,
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  loadYaml,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { type Binaries, ensureBinaries } from './binaries.js';
import { type ManagedProcess, removeTempDir, spawnManaged, trackTempDir } from './processes.js';

export interface TestApiServerOptions {
  /**
   * Folder the server serves pod logs from: GET .../pods/{name}/log returns `<logDir>/<namespace>/<name>.log`.
   * Default: a fresh temp folder, removed by stop(). A folder passed here is left in place.
   */
  logDir?: string;
  /** CRD manifests (YAML files, one CRD each) to install; default: the CNPG Cluster CRD. */
  crdFiles?: readonly string[];
  /** Limit for the whole start, build excluded. Default 60 s. */
  startTimeoutMs?: number;
}

export interface TestApiServer {
  /** A kubeconfig file for this server (any client, kubectl included). */
  kubeconfigPath: string;
  /** https://127.0.0.1:<port> */
  server: URL;
  /** Loaded from kubeconfigPath. */
  kubeConfig: KubeConfig;
  /** Where pod logs are read from (see TestApiServerOptions.logDir). */
  logDir: string;
  /** The server's self-signed serving certificate and key (PEM files), e.g. for a TLS fault proxy. */
  tls: { certFile: string; keyFile: string };
  /** 'lite' is test/envtest/apiserver; 'kube-apiserver' came from KUBEBUILDER_ASSETS and serves no pod logs. */
  flavor: Binaries['flavor'];
  /** Stops both processes and removes the temp folders. Safe to call more than once. */
  stop(): Promise<void>;
}

export const cnpgCrdFile = fileURLToPath(new URL('../fixtures/cnpg/postgresql.cnpg.io_clusters.yaml', import.meta.url));

const MAX_ATTEMPTS = 3;
const POLL_MS = 100;

export async function startTestApiServer(opts: TestApiServerOptions = {}): Promise<TestApiServer> {
  const binaries = await ensureBinaries();
  let lastError: unknown;
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    try {
      return await startOnce(binaries, opts);
    } catch (err) {
      lastError = err;
      // Free ports are picked before the processes bind them; another process can win that race.
      if (!(err instanceof PortInUseError)) {
        throw err;
      }
    }
  }
  throw lastError;
}

class PortInUseError extends Error {}

async function startOnce(binaries: Binaries, opts: TestApiServerOptions): Promise<TestApiServer> {
  const deadline = Date.now() + (opts.startTimeoutMs ?? 60_000);
  const workDir = mkdtempSync(join(tmpdir(), 'db-refresher-envtest-'));
  trackTempDir(workDir);
  const logDir = opts.logDir ?? join(workDir, 'pod-logs');
  mkdirSync(logDir, { recursive: true });

  const processes: ManagedProcess[] = [];
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    // The API server first: it would otherwise log etcd connection errors while shutting down.
    stopping ??= (async () => {
      for (const p of [...processes].reverse()) {
        await p.stop();
      }
      removeTempDir(workDir);
    })();
    return stopping;
  };

  try {
    const { etcdClientPort, etcdPeerPort, apiPort } = await freePorts(['etcdClientPort', 'etcdPeerPort', 'apiPort']);
    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const etcd = spawnManaged('etcd', binaries.etcd, etcdArgs(workDir, etcdUrl, etcdPeerPort), join(workDir, 'etcd.log'));
    processes.push(etcd);
    await waitFor(etcd, deadline, async () => (await get(`${etcdUrl}/health`)).body.includes('"health":"true"'));

    const server = new URL(`https://127.0.0.1:${apiPort}`);
    const apiArgs = binaries.flavor === 'lite' ? liteArgs(workDir, etcdUrl, apiPort, logDir) : kubeApiServerArgs(workDir, etcdUrl, apiPort);
    const api = spawnManaged('kube-apiserver', binaries.apiServer, apiArgs, join(workDir, 'apiserver.log'));
    processes.push(api);
    await waitFor(api, deadline, async () => {
      const res = await get(new URL('/readyz', server).href);
      return res.status === 200;
    });

    const kubeconfigPath = join(workDir, 'kubeconfig');
    const kubeConfig = writeKubeconfig(kubeconfigPath, server);
    if (binaries.flavor === 'lite') {
      await createSystemNamespaces(kubeConfig);
    }
    for (const file of opts.crdFiles ?? [cnpgCrdFile]) {
      await installCrd(kubeConfig, file, api, deadline);
    }
    const certDir = join(workDir, 'certs');
    const tls = { certFile: join(certDir, 'apiserver.crt'), keyFile: join(certDir, 'apiserver.key') };
    return { kubeconfigPath, server, kubeConfig, logDir, tls, flavor: binaries.flavor, stop };
  } catch (err) {
    const inUse = processes.some((p) => /address already in use/i.test(p.logTail(50)));
    await stop();
    if (inUse) {
      throw new PortInUseError(`a port was taken while starting: ${(err as Error).message}`, { cause: err });
    }
    throw err;
  }
}

function etcdArgs(workDir: string, clientUrl: string, peerPort: number): string[] {
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  return [
    '--name=envtest',
    `--data-dir=${join(workDir, 'etcd')}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=envtest=${peerUrl}`,
    // The data dies with the test run; fsync only costs time.
    '--unsafe-no-fsync',
    // Progress notifications carry etcd's revision to every watch cache even when its resource is idle,
    // which is what lets the API server send watch bookmarks (kubeadm clusters use 5 s).
    '--experimental-watch-progress-notify-interval=1s',
    '--log-level=warn',
  ];
}

function liteArgs(workDir: string, etcdUrl: string, port: number, logDir: string): string[] {
  return [
    `--etcd-servers=${etcdUrl}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${port}`,
    `--cert-dir=${join(workDir, 'certs')}`,
    `--pod-log-dir=${logDir}`,
  ];
}

/** Flags in the spirit of controller-runtime's envtest, for a real kube-apiserver binary. */
function kubeApiServerArgs(workDir: string, etcdUrl: string, port: number): string[] {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyFile = join(workDir, 'sa.key');
  const pubFile = join(workDir, 'sa.pub');
  writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(pubFile, publicKey.export({ type: 'spki', format: 'pem' }));
  return [
    `--etcd-servers=${etcdUrl}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${port}`,
    `--cert-dir=${join(workDir, 'certs')}`,
    '--service-cluster-ip-range=10.96.0.0/16',
    '--authorization-mode=AlwaysAllow',
    '--anonymous-auth=true',
    // Pods would need a "default" ServiceAccount that only a controller creates.
    '--disable-admission-plugins=ServiceAccount',
    '--service-account-issuer=https://kubernetes.default.svc',
    `--service-account-key-file=${pubFile}`,
    `--service-account-signing-key-file=${keyFile}`,
  ];
}

function writeKubeconfig(path: string, server: URL): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'envtest', server: server.origin, skipTLSVerify: true }],
    // Authentication is anonymous; a token is there only for clients that insist on credentials.
    users: [{ name: 'envtest', token: 'envtest' }],
    contexts: [{ name: 'envtest', cluster: 'envtest', user: 'envtest', namespace: 'default' }],
    currentContext: 'envtest',
  });
  writeFileSync(path, kc.exportConfig(), { mode: 0o600 });
  const loaded = new KubeConfig();
  loaded.loadFromFile(path);
  return loaded;
}

/** kube-apiserver creates these itself at start; clients and kubectl expect `default` at least. */
async function createSystemNamespaces(kc: KubeConfig): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
    try {
      await core.createNamespace({ body: { metadata: { name } } });
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 409)) {
        throw new Error(`creating namespace ${name}: ${describe(err)}`, { cause: err });
      }
    }
  }
}

/**
 * Creates the CRD and returns once its resource can be listed. The typed client must be given
 * loadYaml() output: a plain object passes through its serializer without the x-kubernetes-* keys.
 */
async function installCrd(kc: KubeConfig, file: string, api: ManagedProcess, deadline: number): Promise<void> {
  const crd = loadYaml<V1CustomResourceDefinition>(readFileSync(file, 'utf8'));
  const name = crd.metadata?.name;
  const storage = crd.spec.versions.find((v) => v.storage) ?? crd.spec.versions[0];
  if (!name || !storage) {
    throw new Error(`${file} is not a CustomResourceDefinition with a name and a version`);
  }
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  try {
    await ext.createCustomResourceDefinition({ body: crd });
  } catch (err) {
    if (!(err instanceof ApiException && err.code === 409)) {
      throw new Error(`creating CRD ${name} from ${file}: ${describe(err)}`, { cause: err });
    }
  }
  await waitFor(api, deadline, async () => {
    const current = await ext.readCustomResourceDefinition({ name });
    return (current.status?.conditions ?? []).some((c) => c.type === 'Established' && c.status === 'True');
  });
  // Established comes first; the resource then answers 429 "storage is (re)initializing" for about a second.
  const objects = kc.makeApiClient(CustomObjectsApi);
  const { group, names, scope } = crd.spec;
  await waitFor(api, deadline, async () => {
    try {
      await objects.listClusterCustomObject({ group, version: storage.name, plural: names.plural, limit: 1 });
      return true;
    } catch (err) {
      if (err instanceof ApiException && (err.code === 429 || err.code === 404 || err.code === 503)) {
        return false;
      }
      throw err;
    }
  });
  // The first write to a resource builds its validators (CEL programs included): about 2 s for the CNPG
  // CRD. A dry-run create pays that here, so no test's first create is slow. Its answer does not
  // matter (the bare object is usually invalid).
  const probe = { apiVersion: `${group}/${storage.name}`, kind: names.kind, metadata: { name: 'envtest-warmup' } };
  try {
    if (scope === 'Namespaced') {
      await objects.createNamespacedCustomObject({
        group,
        version: storage.name,
        plural: names.plural,
        namespace: 'default',
        body: probe,
        dryRun: 'All',
      });
    } else {
      await objects.createClusterCustomObject({ group, version: storage.name, plural: names.plural, body: probe, dryRun: 'All' });
    }
  } catch (err) {
    if (!(err instanceof ApiException)) {
      throw err;
    }
  }
}

/** Polls `ready` until it returns true; fails fast if `proc` exits, and at the deadline. */
async function waitFor(proc: ManagedProcess, deadline: number, ready: () => Promise<boolean>): Promise<void> {
  let lastProblem = '';
  for (;;) {
    if (!proc.running()) {
      const exit = await proc.exited;
      throw new Error(`${proc.name} exited (${exit.signal ?? `code ${exit.code}`}) while starting; last output:\n${proc.logTail()}`);
    }
    try {
      if (await ready()) {
        return;
      }
      lastProblem = '';
    } catch (err) {
      lastProblem = describe(err);
    }
    if (Date.now() > deadline) {
      throw new Error(`${proc.name} not ready in time${lastProblem ? ` (${lastProblem})` : ''}; last output:\n${proc.logTail()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function describe(err: unknown): string {
  if (err instanceof ApiException) {
    return `HTTP ${err.code}: ${typeof err.body === 'string' ? err.body.slice(0, 300) : String(err.body)}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** Ports free right now on 127.0.0.1, all distinct (they are held open together while picked). */
async function freePorts<K extends string>(names: readonly K[]): Promise<Record<K, number>> {
  const servers: Server[] = [];
  try {
    const ports = {} as Record<K, number>;
    for (const name of names) {
      const srv = createServer();
      servers.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', resolve);
      });
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        throw new Error('unexpected listener address');
      }
      ports[name] = addr.port;
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

/** A GET that accepts the server's self-signed certificate (the probes run before any kubeconfig exists). */
function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage): void => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    };
    const req = url.startsWith('https:')
      ? httpsRequest(url, { rejectUnauthorized: false, timeout: 2000 }, onResponse)
      : httpRequest(url, { timeout: 2000 }, onResponse);
    req.on('timeout', () => req.destroy(new Error(`timeout: GET ${url}`)));
    req.on('error', reject);
    req.end();
  });
}
