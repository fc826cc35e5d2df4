/**
 * Helpers for tests that use the simulated operator: namespaces, source servers made with
 * scripts/pg-sandbox.ts, Cluster manifests in the guide's shape, polling, and recorders that keep every
 * state an object went through (a Job is deleted once the Cluster is healthy, so its labels and status
 * are checked from the recording).
 */
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import type { Sandbox, SandboxCluster } from '../../scripts/pg-sandbox.js';
import { findPgBinDir } from '../../src/postgres/binaries.js';
import { CLUSTER_API_VERSION } from './constants.js';
import { Informer } from './informer.js';
import type { Kind, Kube, Obj } from './kube.js';

export { type Kind, Kube, type Obj } from './kube.js';

export function loadKubeConfig(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

export async function createNamespace(kube: Kube, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  await kube.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } } });
  return name;
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
}

/** Polls `probe` until it returns something other than undefined/false; the last result explains a timeout. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  opts: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what}${lastError ? `: ${lastError instanceof Error ? lastError.message : String(lastError)}` : ''}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, opts.intervalMs ?? 100));
  }
}

/** The major version of the local PostgreSQL binaries (the sources' version). */
export function localPgMajor(): number {
  const found = findPgBinDir(undefined, process.env, ['pg_ctl', 'postgres', 'pg_basebackup']);
  if (!found) throw new Error('no PostgreSQL binaries');
  return found.major;
}

/** A CNPG operand image whose tag says `major` (e.g. `ghcr.io/cloudnative-pg/postgresql:15.10-3`). */
export function imageFor(major: number): string {
  return `ghcr.io/cloudnative-pg/postgresql:${major}.10-3`;
}

export interface SourceServer {
  server: SandboxCluster;
  /** The replication role (REPLICATION LOGIN) and its password. */
  user: string;
  password: string;
}

/**
 * A production stand-in: a sandbox server with a REPLICATION role, database `app` owned by `legacy`
 * (so the clone shows that CNPG does not change an existing database's owner) and a table `orders`
 * that everybody may read but only `legacy` may write.
 * Ends with CHECKPOINT: pg_basebackup runs without `-c fast`, and a spread checkpoint with dirty
 * buffers takes up to 4.5 min (BEHAVIOUR.md §2.3).
 */
export async function createSource(
  sandbox: Sandbox,
  name: string,
  opts: { settings?: Record<string, string>; hba?: string[]; tls?: { cert: string; key: string; ca: string }; rows?: number } = {},
): Promise<SourceServer> {
  // Real PostgreSQL behaviour that concurrent clones of one idle source run into, not simulator flaws:
  // - WAL recycling races ("requested WAL segment ... has already been removed"): wal_keep_size;
  // - each clone holds three walsenders while pg_basebackup runs (the probe's, which CNPG's pool keeps
  //   open, the backup's and the WAL stream's), so 4 clones need 12: max_wal_senders.
  const settings = { wal_keep_size: "'128MB'", max_wal_senders: '20', ...opts.settings };
  const server = await sandbox.createCluster({
    name,
    settings,
    ...(opts.hba ? { hba: opts.hba } : {}),
    ...(opts.tls ? { tls: opts.tls } : {}),
  });
  const password = randomBytes(12).toString('hex');
  await server.sql(`CREATE ROLE streaming_replica WITH REPLICATION LOGIN PASSWORD '${password}'`);
  await server.sql('CREATE ROLE legacy LOGIN');
  await server.sql('CREATE DATABASE app OWNER legacy');
  await server.sql(
    `CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL);
     INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, ${opts.rows ?? 100}) g;
     ALTER TABLE orders OWNER TO legacy;
     GRANT SELECT ON orders TO PUBLIC;`,
    'app',
  );
  await server.sql('CHECKPOINT');
  return { server, user: 'streaming_replica', password };
}

export async function createSecret(
  kube: Kube,
  namespace: string,
  name: string,
  stringData: Record<string, string>,
  type = 'Opaque',
): Promise<Obj> {
  return kube.create('secrets', namespace, { apiVersion: 'v1', kind: 'Secret', type, metadata: { name, namespace }, stringData });
}

export interface ClusterOptions {
  imageName?: string;
  instances?: number;
  storageSize?: string | null;
  source?: string;
  database?: string;
  owner?: string;
  appSecret?: string;
  enableSuperuserAccess?: boolean;
  /** The externalClusters entry (name defaults to `source`). */
  external: Obj;
  extraSpec?: Obj;
  annotations?: Record<string, string>;
}

/** A Cluster in the shape the guide's chart renders (bootstrap.pg_basebackup + externalClusters). */
export function clusterManifest(namespace: string, name: string, o: ClusterOptions): Obj {
  const source = o.source ?? o.external.name ?? 'source';
  const basebackup: Obj = { source };
  if (o.database) basebackup.database = o.database;
  if (o.owner) basebackup.owner = o.owner;
  if (o.appSecret) basebackup.secret = { name: o.appSecret };
  return {
    apiVersion: CLUSTER_API_VERSION,
    kind: 'Cluster',
    metadata: { name, namespace, ...(o.annotations ? { annotations: o.annotations } : {}) },
    spec: {
      instances: o.instances ?? 1,
      ...(o.imageName ? { imageName: o.imageName } : {}),
      ...(o.storageSize === null ? { storage: {} } : { storage: { size: o.storageSize ?? '1Gi' } }),
      ...(o.enableSuperuserAccess !== undefined ? { enableSuperuserAccess: o.enableSuperuserAccess } : {}),
      bootstrap: { pg_basebackup: basebackup },
      externalClusters: [{ name: source, ...o.external }],
      ...(o.extraSpec ?? {}),
    },
  };
}

/** The externalClusters entry for a password-authenticated source. */
export function passwordExternal(source: SourceServer, secretName: string, extra: Record<string, string> = {}): Obj {
  return {
    connectionParameters: { host: source.server.host, port: String(source.server.port), user: source.user, dbname: 'postgres', ...extra },
    password: { name: secretName, key: 'password' },
  };
}

export interface Recorded {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  obj: Obj;
  at: number;
}

/** Keeps every event of one kind in one namespace, from the moment it starts. */
export class Recorder {
  readonly events: Recorded[] = [];
  readonly #informer: Informer;

  private constructor(kube: Kube, kind: Kind, namespace: string) {
    this.#informer = new Informer(kube, {
      kind,
      namespace,
      onEvent: (type, obj) => {
        this.events.push({ type, obj, at: Date.now() });
      },
    });
  }

  static async start(kube: Kube, kind: Kind, namespace: string): Promise<Recorder> {
    const recorder = new Recorder(kube, kind, namespace);
    await recorder.#informer.start();
    return recorder;
  }

  of(name: string): Recorded[] {
    return this.events.filter((e) => e.obj.metadata?.name === name);
  }

  /** Objects whose name starts with `prefix`, in their last recorded state. */
  latestByName(prefix = ''): Map<string, Obj> {
    const out = new Map<string, Obj>();
    for (const e of this.events) if (String(e.obj.metadata?.name).startsWith(prefix)) out.set(e.obj.metadata.name, e.obj);
    return out;
  }

  stop(): Promise<void> {
    return this.#informer.stop();
  }
}

export interface PhaseStep {
  phase: string | undefined;
  reason: string | undefined;
  ready: { status: string; reason: string; message: string } | undefined;
}

/** The distinct (phase, phaseReason, Ready) states a Cluster went through, in order. */
export function phaseSteps(recorder: Recorder, name: string): PhaseStep[] {
  const steps: PhaseStep[] = [];
  for (const e of recorder.of(name)) {
    if (e.type === 'DELETED') continue;
    const status = (e.obj.status ?? {}) as Obj;
    const ready = ((status.conditions ?? []) as Obj[]).find((c) => c.type === 'Ready');
    const step: PhaseStep = {
      phase: status.phase,
      reason: status.phaseReason,
      ready: ready ? { status: ready.status, reason: ready.reason, message: ready.message } : undefined,
    };
    const last = steps[steps.length - 1];
    if (!last || JSON.stringify(last) !== JSON.stringify(step)) steps.push(step);
  }
  return steps;
}

/**
 * The recorder's watch sees a change a moment after a GET does: waits until the
 * steps it recorded end in `phase`, so a test that saw the phase by GET does
 * not read the recording too early.
 */
export function recordedPhaseSteps(recorder: Recorder, name: string, phase: string): Promise<PhaseStep[]> {
  return waitFor(
    `the watch to record ${name} reaching "${phase}"`,
    () => {
      const steps = phaseSteps(recorder, name);
      return steps.at(-1)?.phase === phase ? steps : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 20 },
  );
}

export async function getCluster(kube: Kube, namespace: string, name: string): Promise<Obj | null> {
  return kube.getOrNull('clusters', namespace, name);
}

export async function waitForPhase(kube: Kube, namespace: string, name: string, phase: string, opts: WaitOptions = {}): Promise<Obj> {
  let last: string | undefined;
  return waitFor(
    `Cluster ${namespace}/${name} to reach phase "${phase}"`,
    async () => {
      const cluster = await kube.getOrNull('clusters', namespace, name);
      last = cluster?.status?.phase;
      if (cluster?.status?.phase === phase) return cluster;
      return undefined;
    },
    { timeoutMs: 90_000, ...opts },
  ).catch((err: unknown) => {
    throw new Error(`${err instanceof Error ? err.message : String(err)} (last phase: ${last ?? 'none'})`);
  });
}

/** Reads a Pod's log through the API (GET .../pods/{name}/log), as a product on a real cluster does. */
export async function readPodLog(kube: Kube, namespace: string, pod: string): Promise<string> {
  const cluster = kube.kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('no cluster');
  const { HttpMethod, IsomorphicFetchHttpLibrary, RequestContext } = await import('@kubernetes/client-node');
  const ctx = new RequestContext(`${cluster.server}/api/v1/namespaces/${namespace}/pods/${pod}/log`, HttpMethod.GET);
  await kube.kubeConfig.applySecurityAuthentication(ctx);
  const res = await new IsomorphicFetchHttpLibrary().send(ctx).toPromise();
  const text = await res.body.text();
  if (res.httpStatusCode !== 200) throw new Error(`pod log ${namespace}/${pod}: HTTP ${res.httpStatusCode}: ${text}`);
  return text;
}

/** The JSON lines of a pod log. */
export function logLines(text: string): Obj[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Obj);
}

export const decodeSecret = (secret: Obj): Record<string, string> =>
  Object.fromEntries(
    Object.entries((secret.data ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
  );

/**
 * Simulator timings for tests: CNPG's probe loop, steps and garbage collection shortened, and a
 * transient failure (the machine may be busy) costs a short retry, not Kubernetes' 10 s back-off.
 */
export const FAST_TIMINGS = {
  probeRetryMs: 200,
  phaseStepMs: 100,
  deletionDelayMs: 200,
  podTerminationMs: 100,
  podRetryDelayMs: 200,
} as const;
