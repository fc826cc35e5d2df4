import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { sqlEndpoint } from '../../checks/source.js';
import { formatBytes } from '../../config/byte-size.js';
import { sourceCluster } from '../../config/cnpg-values.js';
import type { CnpgValues, SecretKeySelector } from '../../config/schema-cnpg.js';
import { Secret } from '../../config/secret.js';
import type { CnpgTargetConfig, JobConfig, PgEndpoint, SourceConfig } from '../../config/types.js';
import { PhaseFailure } from '../../errors.js';
import { FAILURE_HINTS } from '../../failures.js';
import type { Kube } from '../../kube/client.js';
import { loadKube } from '../../kube/load.js';
import { isNotFound, type KubeList, type KubeObject, withRetry } from '../../kube/retry.js';
import type { OwnerLogin, PhaseContext, SqlConnector, Target } from '../../ports.js';
import type { Check, SourceFacts } from '../../run/facts.js';
import type { PhaseDetail, RunRecord, TargetDescription } from '../../run/record.js';
import { configRefusals, ownershipRefusal, sourceResolvesToTarget } from './guard.js';
import {
  ANNOTATIONS,
  buildCluster,
  CLUSTER_GROUP,
  CLUSTER_PLURAL,
  CLUSTER_VERSION,
  CNPG_DEFAULT_IMAGE,
  generatedSecretNames,
  imageMajorVersion,
  quantityToBytes,
  readWriteServiceHost,
} from './manifests.js';
import { classifyPodLog, isWaitingForSource, readableLine } from './pod-log.js';
import { ResourceSet, WaitTimeout, waitUntil } from './watch.js';

/** CNPG's status strings (BEHAVIOUR.md §1.1), kept in one place. */
export const PHASE_HEALTHY = 'Cluster in healthy state';
export const PHASE_UNRECOVERABLE = 'Cluster is unrecoverable and needs manual intervention';

/** Room on the PVC beyond the source's size, for WAL streamed during the copy. */
const ROOM_FACTOR = 1.1;

export type CnpgJob = JobConfig & { target: CnpgTargetConfig };

export function asCnpgJob(job: JobConfig): CnpgJob {
  if (job.target.kind !== 'cnpg') throw new Error(`job "${job.name}" has a ${job.target.kind} target, not cnpg`);
  return { ...job, target: job.target };
}

interface ClusterObject extends KubeObject {
  spec?: { instances?: number };
  status?: {
    phase?: string;
    phaseReason?: string;
    readyInstances?: number;
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
  };
}

interface JobObject extends KubeObject {
  status?: {
    active?: number;
    failed?: number;
    succeeded?: number;
    startTime?: string;
    conditions?: Array<{ type: string; status: string; reason?: string }>;
  };
}

export interface CnpgTargetOptions {
  job: CnpgJob;
  jobPath: string;
  sql: SqlConnector;
  /** Injected for tests; by default built from target.kubeconfig, in-cluster config or $KUBECONFIG. */
  kube?: Kube;
}

export class CnpgTarget implements Target {
  readonly #job: CnpgJob;
  readonly #target: CnpgTargetConfig;
  readonly #values: CnpgValues;
  readonly #jobPath: string;
  readonly #sql: SqlConnector;
  #kube: Kube | undefined;

  constructor(options: CnpgTargetOptions) {
    this.#job = options.job;
    this.#target = options.job.target;
    this.#values = options.job.target.values;
    this.#jobPath = options.jobPath;
    this.#sql = options.sql;
    this.#kube = options.kube;
  }

  /** Loads the Kubernetes client on first use; every public method that talks to the API awaits it. */
  async #connect(): Promise<void> {
    this.#kube ??= await loadKube(this.#target.kubeconfig);
  }

  get #api(): Kube {
    if (!this.#kube) throw new Error('the Kubernetes client is not loaded yet');
    return this.#kube;
  }

  get #name(): string {
    return this.#target.clusterName;
  }

  get #namespace(): string {
    return this.#target.namespace;
  }

  describe(): TargetDescription {
    const where = `${this.#namespace}/${this.#name}`;
    return {
      kind: 'cnpg',
      summary: `CloudNativePG Cluster ${where} (${this.#values.instances} instance${this.#values.instances === 1 ? '' : 's'}, ${this.#values.imageName ?? `operator default image`})`,
      details: {
        namespace: this.#namespace,
        clusterName: this.#name,
        connect: this.#connectHost(),
        manifest: buildCluster({ name: this.#name, namespace: this.#namespace, values: this.#values }),
      },
      steps: {
        teardown: `delete Cluster ${where} (only if db-refresher created it for this job${this.#target.adopt ? ', or adopt it' : ''}) and wait until its pods, PVCs, jobs and generated secrets are gone`,
        clone: `CHECKPOINT on the source (when the role may), then create Cluster ${where} bootstrapped with pg_basebackup from "${this.#values.bootstrapDB.pg_basebackup.source}"`,
        start: `watch until the Cluster is "${PHASE_HEALTHY}" with Ready=True and ${this.#values.instances} ready instance(s); fail fast on a failed clone Job or a source that stays unavailable`,
      },
    };
  }

  #connectHost(): string {
    const connect = this.#target.connect;
    return connect ? `${connect.host}:${connect.port}` : `${readWriteServiceHost(this.#name, this.#namespace)}:5432`;
  }

  endpoint(database: string, login?: OwnerLogin): PgEndpoint {
    const { owner } = this.#values.bootstrapDB.pg_basebackup;
    return {
      host: this.#target.connect?.host ?? readWriteServiceHost(this.#name, this.#namespace),
      port: this.#target.connect?.port ?? 5432,
      user: owner,
      password: login?.password,
      dbname: database,
      // CNPG serves TLS with its own CA; encrypt when offered, the name check needs the cluster's CA.
      sslmode: 'prefer',
    };
  }

  async defaultOwner(): Promise<OwnerLogin | undefined> {
    await this.#connect();
    const { owner, database } = this.#values.bootstrapDB.pg_basebackup;
    const password = await this.#ownerSecret();
    return password ? { user: owner, database, password } : undefined;
  }

  async #readSecretKey(selector: SecretKeySelector): Promise<{ value?: string; problem?: string }> {
    try {
      const secret = await withRetry(`read Secret ${this.#namespace}/${selector.name}`, () =>
        this.#api.core.readNamespacedSecret({ name: selector.name, namespace: this.#namespace }),
      );
      const raw = secret.data?.[selector.key];
      if (raw === undefined) {
        return {
          problem: `Secret ${this.#namespace}/${selector.name} has no key "${selector.key}" (it has: ${Object.keys(secret.data ?? {}).join(', ') || 'no keys'})`,
        };
      }
      return { value: Buffer.from(raw, 'base64').toString('utf8') };
    } catch (error) {
      const cause = (error as { cause?: unknown }).cause;
      if (isNotFound(cause) || isNotFound(error)) {
        return {
          problem: `Secret ${this.#namespace}/${selector.name} does not exist; create it in the target namespace (see the guide's "Create the Password Secret" / "Copy Certificates")`,
        };
      }
      return { problem: `cannot read Secret ${this.#namespace}/${selector.name}: ${(error as Error).message}` };
    }
  }

  async resolveSource(source: SourceConfig): Promise<{ source: SourceConfig; checks: Check[] }> {
    await this.#connect();
    const external = sourceCluster(this.#values);
    const checks: Check[] = [];
    const resolved: SourceConfig = { ...source };
    const fields = ['password', 'sslCert', 'sslKey', 'sslRootCert'] as const;
    for (const field of fields) {
      const selector = external[field];
      if (!selector) continue;
      const result = await this.#readSecretKey(selector);
      if (result.problem) {
        checks.push({
          name: 'referenced secrets exist',
          ok: false,
          failureClass: 'authentication-failed',
          message: `externalClusters "${external.name}" ${field}: ${result.problem}`,
        });
      } else if (resolved[field] === undefined && result.value !== undefined) {
        resolved[field] = new Secret(result.value, `k8s:${this.#namespace}/${selector.name}/${selector.key}`);
      }
    }
    // The SQL role defaults to the replication role, and so does its password.
    if (resolved.sql.password === undefined && resolved.sql.user === resolved.user)
      resolved.sql = { ...resolved.sql, password: resolved.password };

    const appSecret = this.#values.bootstrapDB.pg_basebackup.secret;
    if (appSecret) {
      const { owner } = this.#values.bootstrapDB.pg_basebackup;
      const username = await this.#readSecretKey({ name: appSecret.name, key: 'username' });
      const password = await this.#readSecretKey({ name: appSecret.name, key: 'password' });
      const problem = username.problem ?? password.problem;
      if (problem) {
        checks.push({
          name: 'referenced secrets exist',
          ok: false,
          failureClass: 'authentication-failed',
          message: `bootstrapDB.pg_basebackup.secret: ${problem}`,
        });
      } else if (username.value !== owner) {
        checks.push({
          name: 'referenced secrets exist',
          ok: false,
          failureClass: 'authentication-failed',
          message: `Secret ${this.#namespace}/${appSecret.name} has username "${username.value}", but the owner is "${owner}"; CNPG would fail with "wrong username '${username.value}' in secret, expected '${owner}'"`,
        });
      }
    }
    if (checks.length === 0)
      checks.push({ name: 'referenced secrets exist', ok: true, message: 'every Secret the values name exists and has its keys' });
    return { source: resolved, checks };
  }

  async #getCluster(): Promise<ClusterObject | undefined> {
    try {
      return (await withRetry(`read Cluster ${this.#namespace}/${this.#name}`, () =>
        this.#api.custom.getNamespacedCustomObject({
          group: CLUSTER_GROUP,
          version: CLUSTER_VERSION,
          namespace: this.#namespace,
          plural: CLUSTER_PLURAL,
          name: this.#name,
        }),
      )) as ClusterObject;
    } catch (error) {
      if (isNotFound((error as { cause?: unknown }).cause)) return undefined;
      throw error;
    }
  }

  async preflight(source: SourceFacts | undefined): Promise<Check[]> {
    await this.#connect();
    const checks: Check[] = [];
    const refusals = configRefusals({
      target: this.#target,
      sourceHost: this.#job.source.host,
      sourceClusterName: sourceCluster(this.#values).name,
    });
    checks.push(
      refusals.length === 0
        ? { name: 'target may be replaced', ok: true, message: `${this.#namespace}/${this.#name} is allowed and not protected` }
        : { name: 'target may be replaced', ok: false, failureClass: 'unsafe-target', message: refusals.join('; ') },
    );

    try {
      await withRetry(`read Namespace ${this.#namespace}`, () => this.#api.core.readNamespace({ name: this.#namespace }));
      checks.push({ name: 'target namespace exists', ok: true, message: `namespace ${this.#namespace} exists` });
    } catch (error) {
      checks.push({
        name: 'target namespace exists',
        ok: false,
        failureClass: 'unsafe-target',
        message: isNotFound((error as { cause?: unknown }).cause)
          ? `namespace ${this.#namespace} does not exist; create it (kubectl create namespace ${this.#namespace}) and the Secrets the values name`
          : (error as Error).message,
      });
    }

    const { existing, refusal } = await this.#ownership();
    checks.push(
      refusal
        ? { name: 'target is ours to replace', ok: false, failureClass: 'unsafe-target', message: refusal }
        : {
            name: 'target is ours to replace',
            ok: true,
            message: existing
              ? `Cluster ${this.#namespace}/${this.#name} was created by db-refresher for this job`
              : 'no Cluster exists yet',
          },
    );

    const orphans = await this.#orphanPvcs();
    if (orphans.length > 0)
      checks.push({ name: 'no orphaned volumes', ok: false, failureClass: 'unsafe-target', message: this.#orphanMessage(orphans) });

    if (source) checks.push(...this.#sourceFitChecks(source));

    const resolvesToSelf = await this.#sourceResolvesToTarget();
    if (resolvesToSelf)
      checks.push({ name: 'source is not the target', ok: false, failureClass: 'unsafe-target', message: resolvesToSelf });
    return checks;
  }

  /** Checks that compare the source with what the values ask for: version and size. */
  #sourceFitChecks(source: SourceFacts): Check[] {
    const checks: Check[] = [];
    const image = this.#values.imageName ?? CNPG_DEFAULT_IMAGE;
    const imageMajor = imageMajorVersion(image);
    checks.push(
      imageMajor === source.majorVersion
        ? { name: 'same major version', ok: true, message: `source and image ${image} are both PostgreSQL ${source.majorVersion}` }
        : {
            name: 'same major version',
            ok: false,
            failureClass: 'version-mismatch',
            message: `the source runs PostgreSQL ${source.majorVersion} but imageName ${image}${this.#values.imageName ? '' : ' (the operator default, as the values name no image)'} is PostgreSQL ${imageMajor ?? 'unknown'}; source and target must have same PostgreSQL version. Set imageName to a ${source.majorVersion}.x image, e.g. ghcr.io/cloudnative-pg/postgresql:${source.majorVersion}.x-y`,
          },
    );

    const capacity = quantityToBytes(this.#values.storage.size);
    if (source.totalSizeBytes === undefined || capacity === undefined) {
      checks.push({
        name: 'source fits storage.size',
        ok: true,
        severity: 'warning',
        message: "cannot compare: the source's size is not readable by the SQL role",
      });
    } else {
      const needed = Math.ceil(source.totalSizeBytes * ROOM_FACTOR);
      const text = `storage.size ${this.#values.storage.size} (${formatBytes(capacity)}); the source uses ${formatBytes(source.totalSizeBytes)}, about ${formatBytes(needed)} with WAL`;
      checks.push(
        needed <= capacity
          ? { name: 'source fits storage.size', ok: true, message: text }
          : { name: 'source fits storage.size', ok: false, failureClass: 'insufficient-space', message: `${text}; raise storage.size` },
      );
    }

    return checks;
  }

  async #sourceResolvesToTarget(): Promise<string | undefined> {
    let addresses: string[];
    try {
      addresses = (await lookup(this.#job.source.host, { all: true })).map((a) => a.address);
    } catch {
      return undefined;
    }
    const services = await withRetry('list Services', () => this.#api.core.listNamespacedService({ namespace: this.#namespace }));
    const ips = services.items
      .filter((s) => [`${this.#name}-rw`, `${this.#name}-ro`, `${this.#name}-r`].includes(s.metadata?.name ?? ''))
      .flatMap((s) => [s.spec?.clusterIP, ...(s.spec?.clusterIPs ?? [])])
      .filter((ip): ip is string => typeof ip === 'string' && ip !== '' && ip !== 'None');
    return sourceResolvesToTarget(addresses, ips);
  }

  async #orphanPvcs(): Promise<string[]> {
    const pvcs = await withRetry('list PersistentVolumeClaims', () =>
      this.#api.core.listNamespacedPersistentVolumeClaim({ namespace: this.#namespace, labelSelector: `cnpg.io/cluster=${this.#name}` }),
    );
    return pvcs.items
      .filter((p) => !p.metadata?.deletionTimestamp && !(p.metadata?.ownerReferences?.length ?? 0))
      .map((p) => p.metadata?.name ?? '');
  }

  #orphanMessage(names: string[]): string {
    return `PVC ${names.join(', ')} in ${this.#namespace} carries cnpg.io/cluster=${this.#name} but no owner (left by kubectl delete --cascade=orphan?); CloudNativePG would adopt it and reuse its old data instead of cloning. If it is disposable, delete it: kubectl delete pvc ${names.join(' ')} -n ${this.#namespace}`;
  }

  #sets() {
    const ns = this.#namespace;
    const selector = `cnpg.io/cluster=${this.#name}`;
    const api = this.#api;
    const list = <T>(what: string, fn: () => Promise<T>) => withRetry(what, fn) as unknown as Promise<KubeList<KubeObject>>;
    return {
      cluster: new ResourceSet<ClusterObject>(api, {
        path: `/apis/${CLUSTER_GROUP}/${CLUSTER_VERSION}/namespaces/${ns}/${CLUSTER_PLURAL}`,
        fieldSelector: `metadata.name=${this.#name}`,
        list: () =>
          list('list Clusters', () =>
            api.custom.listNamespacedCustomObject({
              group: CLUSTER_GROUP,
              version: CLUSTER_VERSION,
              namespace: ns,
              plural: CLUSTER_PLURAL,
              fieldSelector: `metadata.name=${this.#name}`,
            }),
          ) as Promise<KubeList<ClusterObject>>,
      }),
      pods: new ResourceSet(api, {
        path: `/api/v1/namespaces/${ns}/pods`,
        labelSelector: selector,
        list: () => list('list Pods', () => api.core.listNamespacedPod({ namespace: ns, labelSelector: selector })),
      }),
      pvcs: new ResourceSet(api, {
        path: `/api/v1/namespaces/${ns}/persistentvolumeclaims`,
        labelSelector: selector,
        list: () => list('list PVCs', () => api.core.listNamespacedPersistentVolumeClaim({ namespace: ns, labelSelector: selector })),
      }),
      jobs: new ResourceSet<JobObject>(api, {
        path: `/apis/batch/v1/namespaces/${ns}/jobs`,
        labelSelector: selector,
        list: () =>
          list('list Jobs', () => api.batch.listNamespacedJob({ namespace: ns, labelSelector: selector })) as Promise<KubeList<JobObject>>,
      }),
      services: new ResourceSet(api, {
        path: `/api/v1/namespaces/${ns}/services`,
        list: () => list('list Services', () => api.core.listNamespacedService({ namespace: ns })),
      }),
    };
  }

  /** The Cluster as it is now, and why it may not be replaced (undefined when it may). */
  async #ownership(): Promise<{ existing: ClusterObject | undefined; refusal: string | undefined }> {
    const existing = await this.#getCluster();
    const refusal = ownershipRefusal({
      job: this.#job.name,
      jobPath: this.#jobPath,
      existing: existing ? { labels: existing.metadata?.labels ?? {}, annotations: existing.metadata?.annotations ?? {} } : undefined,
      adopt: this.#target.adopt,
      name: this.#name,
      namespace: this.#namespace,
    });
    return { existing, refusal };
  }

  /** Generated Secrets (BEHAVIOUR.md §4.1) that still exist with an ownerReference to this Cluster. */
  async #ownedSecretsLeft(): Promise<string[]> {
    const left: string[] = [];
    for (const name of generatedSecretNames(this.#name)) {
      try {
        const secret = await withRetry(`read Secret ${this.#namespace}/${name}`, () =>
          this.#api.core.readNamespacedSecret({ name, namespace: this.#namespace }),
        );
        if (this.#ownedByCluster(secret as KubeObject)) left.push(name);
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
    return left;
  }

  #ownedByCluster(object: KubeObject): boolean {
    return (object.metadata?.ownerReferences ?? []).some((ref) => ref.kind === 'Cluster' && ref.name === this.#name);
  }

  async teardown(ctx: PhaseContext): Promise<PhaseDetail> {
    await this.#connect();
    const { existing, refusal } = await this.#ownership();
    // Checked again here, not only in preflight: the Cluster may have been replaced since.
    if (refusal) throw new PhaseFailure('unsafe-target', refusal);
    if (existing) {
      ctx.log.info({ cluster: `${this.#namespace}/${this.#name}` }, 'deleting the Cluster');
      try {
        await withRetry(`delete Cluster ${this.#namespace}/${this.#name}`, () =>
          this.#api.custom.deleteNamespacedCustomObject({
            group: CLUSTER_GROUP,
            version: CLUSTER_VERSION,
            namespace: this.#namespace,
            plural: CLUSTER_PLURAL,
            name: this.#name,
            propagationPolicy: 'Background',
          }),
        );
      } catch (error) {
        if (!isNotFound((error as { cause?: unknown }).cause)) throw error;
      }
    }
    const started = Date.now();
    const sets = this.#sets();
    const all = Object.values(sets) as ResourceSet<KubeObject>[];
    await Promise.all(all.map((s) => s.start()));
    // Secrets are read by name, not watched: the service's Role may then `get` Secrets, never list them all.
    let ownedSecrets: string[] = generatedSecretNames(this.#name);
    const leftovers = () => [
      ...sets.cluster.items.map((o) => `Cluster ${o.metadata?.name}`),
      ...sets.pods.items.map((o) => `Pod ${o.metadata?.name}`),
      ...sets.pvcs.items.map((o) => `PVC ${o.metadata?.name}`),
      ...sets.jobs.items.map((o) => `Job ${o.metadata?.name}`),
      ...sets.services.items.filter((o) => this.#ownedByCluster(o)).map((o) => `Service ${o.metadata?.name}`),
      ...ownedSecrets.map((name) => `Secret ${name}`),
    ];
    try {
      await waitUntil({
        sets: all,
        signal: ctx.signal,
        timeoutMs: this.#target.teardownTimeoutSeconds * 1000,
        timeoutMessage: () =>
          `the old Cluster's objects were still there after ${this.#target.teardownTimeoutSeconds} s: ${leftovers().join(', ')}. CloudNativePG would adopt leftover volumes instead of cloning, so db-refresher does not recreate the Cluster yet. Check for finalizers or a stuck garbage collector`,
        check: async () => {
          const orphans = sets.pvcs.items.filter((p) => !p.metadata?.deletionTimestamp && !(p.metadata?.ownerReferences?.length ?? 0));
          if (orphans.length > 0) throw new PhaseFailure('unsafe-target', this.#orphanMessage(orphans.map((p) => p.metadata?.name ?? '')));
          if (leftovers().length > ownedSecrets.length) return undefined;
          ownedSecrets = await this.#ownedSecretsLeft();
          return ownedSecrets.length === 0 ? true : undefined;
        },
      });
    } catch (error) {
      if (error instanceof WaitTimeout) throw new PhaseFailure('timeout', error.message);
      throw error;
    } finally {
      await Promise.all(all.map((s) => s.stop()));
    }
    return {
      deleted: Boolean(existing),
      waitedMs: Date.now() - started,
      previousRun: existing?.metadata?.annotations?.[ANNOTATIONS.runId],
    };
  }

  async clone(ctx: PhaseContext): Promise<PhaseDetail> {
    await this.#connect();
    const checkpoint = await this.#checkpointSource(ctx);
    const manifest = buildCluster({
      name: this.#name,
      namespace: this.#namespace,
      values: this.#values,
      metadata: {
        job: this.#job.name,
        runId: ctx.runId,
        refreshedAt: new Date().toISOString(),
        sourceSnapshotAt: ctx.run.snapshot?.takenAt,
      },
    });
    let created: ClusterObject;
    try {
      created = (await withRetry(`create Cluster ${this.#namespace}/${this.#name}`, () =>
        this.#api.custom.createNamespacedCustomObject({
          group: CLUSTER_GROUP,
          version: CLUSTER_VERSION,
          namespace: this.#namespace,
          plural: CLUSTER_PLURAL,
          body: manifest,
          fieldValidation: 'Strict',
        }),
      )) as ClusterObject;
    } catch (error) {
      throw new PhaseFailure('unknown', `the Kubernetes API rejected the new Cluster: ${(error as Error).message}`, {
        hint: 'The values produce a Cluster the CRD refuses; run `db-refresher plan` to see the manifest and compare it with the CNPG documentation.',
      });
    }
    const uid = created.metadata?.uid;
    await this.#event(
      'RefreshStarted',
      'Normal',
      `db-refresher job ${this.#job.name} (run ${ctx.runId}) is cloning this Cluster from ${this.#job.source.host}`,
      uid,
    );
    return { cluster: `${this.#namespace}/${this.#name}`, uid, checkpoint };
  }

  /** CNPG's pg_basebackup waits for a spread checkpoint (BEHAVIOUR.md §2.3); one issued now makes that wait short. */
  async #checkpointSource(ctx: PhaseContext): Promise<string> {
    if (!ctx.facts?.canCheckpoint) return 'skipped: the SQL role is neither superuser nor member of pg_checkpoint';
    try {
      await this.#sql.withSession(sqlEndpoint(this.#job.source), this.#job.source.dbname, (session) => session.query('CHECKPOINT'));
      return 'issued';
    } catch (error) {
      ctx.log.warn({ err: error }, 'CHECKPOINT on the source failed; the clone may wait for a spread checkpoint');
      return `failed: ${(error as Error).message}`;
    }
  }

  async start(ctx: PhaseContext): Promise<PhaseDetail> {
    await this.#connect();
    const started = Date.now();
    const sets = this.#sets();
    const watched = [sets.cluster, sets.jobs] as ResourceSet<KubeObject>[];
    await Promise.all(watched.map((s) => s.start()));
    const jobName = `${this.#name}-1-pgbasebackup`;
    const grace = this.#target.sourceUnavailableGraceSeconds * 1000;
    let lastPhase = '';
    try {
      await waitUntil({
        sets: watched,
        signal: ctx.signal,
        tickMs: 1000,
        timeoutMs: this.#target.readyTimeoutSeconds * 1000,
        timeoutMessage: () =>
          `the Cluster did not become healthy within ${this.#target.readyTimeoutSeconds} s (last phase: "${lastPhase || 'none'}")`,
        check: async () => {
          const cluster = sets.cluster.items[0];
          if (!cluster)
            throw new PhaseFailure('unknown', `Cluster ${this.#namespace}/${this.#name} disappeared while db-refresher waited for it`);
          const status = cluster.status ?? {};
          if (status.phase && status.phase !== lastPhase) {
            lastPhase = status.phase;
            ctx.progress({ phase: status.phase });
            ctx.log.info({ clusterPhase: status.phase, reason: status.phaseReason }, 'Cluster phase changed');
          }
          const job = sets.jobs.items.find((j) => j.metadata?.name === jobName);
          const jobFailed = job?.status?.conditions?.some((c) => c.type === 'Failed' && c.status === 'True');
          if (status.phase === PHASE_UNRECOVERABLE || jobFailed) {
            throw await this.#explainFailure(
              jobName,
              `${status.phase ?? 'the clone Job failed'}${status.phaseReason ? `: ${status.phaseReason}` : ''}`,
            );
          }
          if (job && (job.status?.active ?? 0) > 0) {
            const since = Date.parse(String(job.status?.startTime ?? job.metadata?.creationTimestamp ?? ''));
            if (Number.isFinite(since) && Date.now() - since > grace) {
              const lines = await this.#jobLog(jobName);
              if (isWaitingForSource(lines)) {
                throw await this.#explainFailure(
                  jobName,
                  `the clone Job has been logging "DB not available, will retry" for more than ${this.#target.sourceUnavailableGraceSeconds} s`,
                  lines,
                );
              }
            }
          }
          const ready = status.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
          const wanted = cluster.spec?.instances ?? this.#values.instances;
          return status.phase === PHASE_HEALTHY && ready && status.readyInstances === wanted ? true : undefined;
        },
      });
    } catch (error) {
      if (error instanceof WaitTimeout) throw await this.#explainFailure(jobName, error.message, undefined, 'timeout');
      throw error;
    } finally {
      await Promise.all(watched.map((s) => s.stop()));
    }
    return { healthyAfterMs: Date.now() - started, connect: this.#connectHost() };
  }

  async #ownerSecret(): Promise<Secret | undefined> {
    const name = this.#values.bootstrapDB.pg_basebackup.secret?.name ?? `${this.#name}-app`;
    const result = await this.#readSecretKey({ name, key: 'password' });
    return result.value === undefined ? undefined : new Secret(result.value, `k8s:${this.#namespace}/${name}/password`);
  }

  /** The clone Job's pod logs, oldest pod first, as the kubelet would serve them. */
  async #jobLog(jobName: string): Promise<string[]> {
    const pods = await withRetry('list Job pods', () =>
      this.#api.core.listNamespacedPod({ namespace: this.#namespace, labelSelector: `job-name=${jobName}` }),
    );
    const lines: string[] = [];
    const sorted = [...pods.items].sort((a, b) =>
      String(a.metadata?.creationTimestamp).localeCompare(String(b.metadata?.creationTimestamp)),
    );
    for (const pod of sorted) {
      try {
        const text = await withRetry('read pod log', () =>
          this.#api.core.readNamespacedPodLog({ name: pod.metadata?.name ?? '', namespace: this.#namespace, tailLines: 200 }),
        );
        lines.push(...String(text).split('\n').filter(Boolean));
      } catch {
        // A pod without a log yet has nothing to add.
      }
    }
    return lines.slice(-200);
  }

  async #explainFailure(jobName: string, what: string, known?: string[], forced?: 'timeout'): Promise<PhaseFailure> {
    const lines = known ?? (await this.#jobLog(jobName).catch(() => []));
    const { class: failureClass, evidence } = classifyPodLog(lines);
    const relevant = lines.slice(-10).map(readableLine);
    return new PhaseFailure(forced ?? failureClass, `${what}${evidence.length ? ` — ${evidence.join(' | ')}` : ''}`, {
      details: relevant,
      // A timeout whose logs name a cause: the cause's hint helps more than "raise the timeout".
      ...(forced && failureClass !== 'unknown'
        ? { hint: `The clone Job's log points at ${failureClass}: ${FAILURE_HINTS[failureClass]}` }
        : {}),
    });
  }

  async #event(reason: string, type: 'Normal' | 'Warning', message: string, uid: string | undefined): Promise<void> {
    const now = new Date();
    await withRetry('create Event', () =>
      this.#api.core.createNamespacedEvent({
        namespace: this.#namespace,
        body: {
          // Named like kubectl's events: <object>.<unique hex>.
          metadata: { name: `${this.#name}.${now.getTime().toString(16)}${randomBytes(2).toString('hex')}` },
          involvedObject: {
            apiVersion: `${CLUSTER_GROUP}/${CLUSTER_VERSION}`,
            kind: 'Cluster',
            name: this.#name,
            namespace: this.#namespace,
            ...(uid ? { uid } : {}),
          },
          reason,
          message,
          type,
          source: { component: 'db-refresher' },
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      }),
    ).catch(() => undefined);
  }

  async recordOutcome(run: RunRecord): Promise<void> {
    await this.#connect();
    const cluster = await this.#getCluster();
    if (!cluster || cluster.metadata?.annotations?.[ANNOTATIONS.runId] !== run.id) return;
    const message =
      run.status === 'succeeded'
        ? `refreshed and verified in ${Math.round((run.durationMs ?? 0) / 1000)} s`
        : `${run.error?.phase}: ${run.error?.class}: ${run.error?.message ?? ''}`.slice(0, 1000);
    await withRetry('annotate Cluster', () =>
      this.#api.custom.patchNamespacedCustomObject(
        {
          group: CLUSTER_GROUP,
          version: CLUSTER_VERSION,
          namespace: this.#namespace,
          plural: CLUSTER_PLURAL,
          name: this.#name,
          body: { metadata: { annotations: { [ANNOTATIONS.outcome]: run.status, [ANNOTATIONS.outcomeMessage]: message } } },
        },
        this.#api.mergePatch,
      ),
    );
    await this.#event(
      run.status === 'succeeded' ? 'RefreshSucceeded' : 'RefreshFailed',
      run.status === 'succeeded' ? 'Normal' : 'Warning',
      message,
      cluster.metadata?.uid,
    );
  }
}
