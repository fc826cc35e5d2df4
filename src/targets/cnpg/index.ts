import { sqlEndpoint } from '../../checks/source.js';
import { systemClock } from '../../clock.js';
import { sourceCluster } from '../../config/cnpg-values.js';
import type { JobConfig, PgEndpoint, SourceConfig } from '../../config/types.js';
import { PhaseFailure } from '../../errors.js';
import type { Kube } from '../../kube/client.js';
import type { Clock, OwnerLogin, PhaseContext, PrivateAccess, SqlConnector, Target } from '../../ports.js';
import type { Check, SourceFacts } from '../../run/facts.js';
import type { PhaseDetail, RunRecord, TargetDescription } from '../../run/record.js';
import { needsPrivateWindow } from '../../safe-copy/plan.js';
import { ClusterApi } from './cluster-api.js';
import { ANNOTATIONS, buildCluster, type RenderedCluster, readWriteServiceHost, renderCluster } from './manifests.js';
import { type CnpgJob, cnpgPreflight, readOwnership } from './preflight.js';
import { withPrivateWindow } from './private-window.js';
import { BASEBACKUP_APPLICATION, type ProgressWatch, watchCloneProgress } from './progress.js';
import { PHASE } from './readiness.js';
import { ownerPassword, resolveSourceSecrets } from './source-secrets.js';
import { waitUntilGone } from './wait-gone.js';
import { waitUntilReady } from './wait-ready.js';
import { OPERATOR_ROLES, openWindow, privateAccess, type WindowInput } from './window.js';

/**
 * A CloudNativePG Cluster as a target: deleted and recreated as a
 * `bootstrap.pg_basebackup` clone. This class only sequences the phases; the
 * API calls live in cluster-api.ts, the checks in preflight.ts, the status
 * decision in readiness.ts and the waits in wait-gone.ts and wait-ready.ts.
 */

export type { CnpgJob } from './preflight.js';

export function asCnpgJob(job: JobConfig): CnpgJob {
  if (job.target.kind !== 'cnpg') throw new Error(`job "${job.name}" has a ${job.target.kind} target, not cnpg`);
  return { ...job, target: job.target };
}

export interface CnpgTargetOptions {
  job: CnpgJob;
  jobPath: string;
  sql: SqlConnector;
  /** Default: the system clock. */
  clock?: Clock;
  /** Injected for tests; by default built from target.kubeconfig, in-cluster config or $KUBECONFIG. */
  kube?: Kube;
}

export class CnpgTarget implements Target {
  readonly #job: CnpgJob;
  readonly #jobPath: string;
  readonly #sql: SqlConnector;
  readonly #clock: Clock;
  readonly #api: ClusterApi;
  readonly #rendered: RenderedCluster;

  constructor(options: CnpgTargetOptions) {
    const { target } = options.job;
    this.#job = options.job;
    this.#jobPath = options.jobPath;
    this.#sql = options.sql;
    this.#clock = options.clock ?? systemClock;
    this.#api = new ClusterApi({
      namespace: target.namespace,
      name: target.clusterName,
      kubeconfig: target.kubeconfig,
      clock: this.#clock,
      kube: options.kube,
    });
    this.#rendered = renderCluster(target.values, target.cluster);
  }

  describe(): TargetDescription {
    const where = this.#api.where;
    const { instances, image, imageIsDefault } = this.#rendered;
    return {
      kind: 'cnpg',
      summary: `CloudNativePG Cluster ${where} (${instances} instance${instances === 1 ? '' : 's'}, ${imageIsDefault ? 'operator default image' : image})`,
      details: {
        namespace: this.#api.namespace,
        clusterName: this.#api.name,
        connect: this.#connectHost(),
        manifest: buildCluster({ name: this.#api.name, namespace: this.#api.namespace, spec: this.#createdSpec() }),
      },
      steps: {
        teardown: `delete Cluster ${where} (only if db-refresher created it for this job${this.#job.target.adopt ? ', or adopt it' : ''}; exactly the one checked, by uid) and wait until its pods, PVCs, jobs and generated secrets are gone`,
        clone: `CHECKPOINT on the source (when the role may), then create Cluster ${where} bootstrapped with pg_basebackup from "${this.#job.target.values.bootstrapDB.pg_basebackup.source}"`,
        start: `watch until the Cluster is "${PHASE.healthy}" with Ready=True and ${instances} ready instance(s); fail fast on a phase that needs a person, a failed clone Job, or a source that stays unavailable, and then ${this.#job.target.keepFailedCluster ? 'keep the half-made Cluster' : 'delete the half-made Cluster'}`,
      },
    };
  }

  /** The spec the Cluster is created with: closed to everyone but db-refresher when the job has work for the private window. */
  #createdSpec(): Record<string, unknown> {
    return needsPrivateWindow(this.#job) ? withPrivateWindow(this.#rendered.spec, this.#job.neutralise) : this.#rendered.spec;
  }

  #window(): WindowInput {
    const endpoint = this.endpoint(this.#rendered.database);
    return {
      api: this.#api,
      sql: this.#sql,
      clock: this.#clock,
      userSpec: this.#rendered.spec,
      settings: this.#job.neutralise,
      host: endpoint.host,
      port: endpoint.port,
      timeoutSeconds: this.#job.target.readyTimeoutSeconds,
    };
  }

  async privateAccess(ctx?: PhaseContext): Promise<PrivateAccess> {
    return privateAccess(this.#window(), ctx);
  }

  async open(ctx: PhaseContext): Promise<PhaseDetail> {
    return openWindow(this.#window(), ctx);
  }

  reservedRoles(): string[] {
    return [...OPERATOR_ROLES];
  }

  #connectHost(): string {
    const connect = this.#job.target.connect;
    return connect ? `${connect.host}:${connect.port}` : `${readWriteServiceHost(this.#api.name, this.#api.namespace)}:5432`;
  }

  endpoint(database: string, login?: OwnerLogin): PgEndpoint {
    const { connect } = this.#job.target;
    return {
      host: connect?.host ?? readWriteServiceHost(this.#api.name, this.#api.namespace),
      port: connect?.port ?? 5432,
      user: this.#rendered.owner,
      password: login?.password,
      dbname: database,
      // CNPG serves TLS with its own CA; encrypt when offered, the name check needs the cluster's CA.
      sslmode: 'prefer',
    };
  }

  async defaultOwner(): Promise<OwnerLogin | undefined> {
    const { owner: user, database } = this.#rendered;
    const password = await ownerPassword(this.#api, this.#job.target.values);
    return password ? { user, database, password } : undefined;
  }

  async resolveSource(source: SourceConfig): Promise<{ source: SourceConfig; checks: Check[] }> {
    return resolveSourceSecrets(this.#api, this.#job.target.values, source);
  }

  async preflight(source: SourceFacts | undefined): Promise<Check[]> {
    return cnpgPreflight({ job: this.#job, jobPath: this.#jobPath, api: this.#api, rendered: this.#rendered }, source);
  }

  async teardown(ctx: PhaseContext): Promise<PhaseDetail> {
    const { existing, refusal } = await readOwnership(this.#api, this.#job, this.#jobPath);
    // Checked again here, not only in preflight: the Cluster may have been replaced since.
    if (refusal) throw new PhaseFailure('unsafe-target', refusal);
    const uid = existing?.metadata?.uid;
    if (uid) {
      ctx.log.info({ cluster: this.#api.where, uid }, 'deleting the Cluster');
      if ((await this.#api.deleteCluster(uid)) === 'replaced') {
        throw new PhaseFailure(
          'unsafe-target',
          `Cluster ${this.#api.where} was replaced between the check and the delete (it is no longer uid ${uid}); nothing was deleted. Run the job again to check the Cluster that is there now`,
        );
      }
    }
    const started = this.#clock.now().getTime();
    await waitUntilGone({ api: this.#api, ctx, timeoutSeconds: this.#job.target.teardownTimeoutSeconds });
    return {
      deleted: Boolean(uid),
      waitedMs: this.#clock.now().getTime() - started,
      previousRun: existing?.metadata?.annotations?.[ANNOTATIONS.runId],
    };
  }

  async clone(ctx: PhaseContext): Promise<PhaseDetail> {
    const checkpoint = await this.#checkpointSource(ctx);
    const manifest = buildCluster({
      name: this.#api.name,
      namespace: this.#api.namespace,
      spec: this.#createdSpec(),
      metadata: {
        job: this.#job.name,
        runId: ctx.runId,
        refreshedAt: this.#clock.now().toISOString(),
        sourceSnapshotAt: ctx.run.snapshot?.takenAt,
      },
    });
    let uid: string | undefined;
    try {
      uid = (await this.#api.createCluster(manifest)).metadata?.uid;
    } catch (error) {
      throw new PhaseFailure('unknown', `the Kubernetes API rejected the new Cluster: ${(error as Error).message}`, {
        hint: 'The values (and cluster:) produce a Cluster the CRD refuses; run `db-refresher plan` to see the manifest and compare it with the CNPG documentation.',
      });
    }
    await this.#api.event({
      reason: 'RefreshStarted',
      type: 'Normal',
      message: `db-refresher job ${this.#job.name} (run ${ctx.runId}) is cloning this Cluster from ${this.#job.source.host}`,
      uid,
    });
    return { cluster: this.#api.where, uid, checkpoint };
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
    const started = this.#clock.now().getTime();
    const { target } = this.#job;
    try {
      const progress = this.#watchCloneProgress(ctx);
      try {
        await waitUntilReady({
          api: this.#api,
          clock: this.#clock,
          ctx,
          instances: this.#rendered.instances,
          readyTimeoutSeconds: target.readyTimeoutSeconds,
          sourceUnavailableGraceSeconds: target.sourceUnavailableGraceSeconds,
        });
      } finally {
        await progress.stop();
      }
    } catch (error) {
      // A run paused or aborted from outside resumes later; only a refresh that gave up cleans up.
      if (error instanceof PhaseFailure && !ctx.signal.aborted) throw await this.#giveUp(ctx, error);
      throw error;
    }
    return { healthyAfterMs: this.#clock.now().getTime() - started, connect: this.#connectHost() };
  }

  /** The clone's percentage, bytes and ETA from the source's pg_stat_progress_basebackup, while the start phase waits (progress.ts). */
  #watchCloneProgress(ctx: PhaseContext): ProgressWatch {
    const params = sourceCluster(this.#job.target.values).connectionParameters;
    return watchCloneProgress({
      sql: this.#sql,
      // The SQL role's password may live in the Secret the values name, like the clone's.
      endpoint: async () => {
        const resolved = await this.resolveSource(this.#job.source).catch(() => undefined);
        return sqlEndpoint(resolved?.source ?? this.#job.source);
      },
      backup: { user: params.user ?? this.#job.source.user, applicationName: params.application_name ?? BASEBACKUP_APPLICATION },
      clusterCreatedMs: async () => {
        const cluster = await this.#api.getCluster().catch(() => undefined);
        const created = Date.parse(String(cluster?.metadata?.creationTimestamp ?? ''));
        return Number.isNaN(created) ? undefined : created;
      },
      ctx,
      clock: this.#clock,
    });
  }

  /**
   * CloudNativePG retries a half-made Cluster forever (a Job that waits for
   * the source, a phase that waits for a person), so a copy could come up
   * later, unverified. Unless the job keeps it for debugging, the Cluster
   * this run created (and only that one, by uid) is deleted; the run record
   * keeps its last status and the clone Job's log.
   */
  async #giveUp(ctx: PhaseContext, failure: PhaseFailure): Promise<PhaseFailure> {
    if (this.#job.target.keepFailedCluster) return failure;
    const cluster = await this.#api.getCluster().catch(() => undefined);
    const uid = cluster?.metadata?.uid;
    if (!uid || cluster?.metadata?.annotations?.[ANNOTATIONS.runId] !== ctx.runId) return failure;
    await this.#api.event({
      reason: 'RefreshFailed',
      type: 'Warning',
      message:
        `db-refresher gave up on run ${ctx.runId} and deletes this Cluster so CloudNativePG stops retrying it: ${failure.message}`.slice(
          0,
          1000,
        ),
      uid,
    });
    const outcome = await this.#api.deleteCluster(uid).catch((error: Error) => error);
    ctx.log.warn({ cluster: this.#api.where, uid, outcome: String(outcome) }, 'deleted the half-made Cluster');
    const note =
      outcome === 'deleted'
        ? `db-refresher deleted the half-made Cluster ${this.#api.where} so that CloudNativePG stops retrying it (set target.keepFailedCluster: true to keep it for debugging)`
        : `deleting the half-made Cluster ${this.#api.where} failed (${outcome instanceof Error ? outcome.message : outcome}); delete it by hand, or CloudNativePG keeps retrying it`;
    return new PhaseFailure(failure.failureClass, `${failure.message}. ${note}`, {
      details: failure.details,
      ...(failure.hint ? { hint: failure.hint } : {}),
    });
  }

  async recordOutcome(run: RunRecord): Promise<void> {
    const cluster = await this.#api.getCluster();
    if (!cluster || cluster.metadata?.annotations?.[ANNOTATIONS.runId] !== run.id) return;
    const message =
      run.status === 'succeeded'
        ? `refreshed and verified in ${Math.round((run.durationMs ?? 0) / 1000)} s`
        : `${run.error?.phase}: ${run.error?.class}: ${run.error?.message ?? ''}`.slice(0, 1000);
    await this.#api.annotateCluster({ [ANNOTATIONS.outcome]: run.status, [ANNOTATIONS.outcomeMessage]: message });
    await this.#api.event({
      reason: run.status === 'succeeded' ? 'RefreshSucceeded' : 'RefreshFailed',
      type: run.status === 'succeeded' ? 'Normal' : 'Warning',
      message,
      uid: cluster.metadata?.uid,
    });
  }
}
