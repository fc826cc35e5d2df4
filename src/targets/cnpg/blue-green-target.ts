import type { BlueGreenConfig } from '../../config/schema-strategy.js';
import type { PgEndpoint, SourceConfig } from '../../config/types.js';
import { PhaseFailure } from '../../errors.js';
import type { Kube } from '../../kube/client.js';
import { loadKube } from '../../kube/load.js';
import type { BlueGreenTarget, OwnerLogin, PhaseContext, PrivateAccess, SqlConnector } from '../../ports.js';
import type { Check, SourceFacts } from '../../run/facts.js';
import type { PhaseDetail, RunRecord, TargetDescription } from '../../run/record.js';
import {
  activeSlot,
  BLUE_GREEN_ANNOTATIONS,
  type CnpgBlueGreenView,
  type CnpgSlot,
  legacyCluster,
  otherSlot,
  outgoingCluster,
  planAfterFailure,
  planCleanup,
  planLegacyCleanup,
  planPrepare,
  planRollback,
  quotaShortfall,
  serviceRefusal,
  slotClusterName,
} from './blue-green.js';
import { type CnpgJob, CnpgTarget } from './index.js';
import { StableService } from './stable-service.js';
import { OPERATOR_ROLES } from './window.js';

/**
 * A CNPG target refreshed blue/green: the new copy is a second Cluster (`<clusterName>-a` or `-b`,
 * whichever the stable Service does not select), cloned, started and verified while the other serves;
 * the swap points the Service at it. The phases on the new Cluster delegate to a CnpgTarget named for
 * that slot, which brings its safety rails, readiness watch and verification. Which slot is new is
 * read from the Service each time, so nothing is kept between phases.
 */
export class BlueGreenCnpgTarget implements BlueGreenTarget {
  readonly #job: CnpgJob;
  readonly #jobPath: string;
  readonly #sql: SqlConnector;
  readonly #strategy: BlueGreenConfig;
  #kube: Kube | undefined;

  constructor(options: { job: CnpgJob; jobPath: string; sql: SqlConnector; strategy: BlueGreenConfig; kube?: Kube }) {
    this.#job = options.job;
    this.#jobPath = options.jobPath;
    this.#sql = options.sql;
    this.#strategy = options.strategy;
    this.#kube = options.kube;
  }

  get #serviceName(): string {
    return this.#strategy.serviceName ?? this.#job.target.clusterName;
  }

  async #api(): Promise<Kube> {
    this.#kube ??= await loadKube(this.#job.target.kubeconfig);
    return this.#kube;
  }

  async #service(): Promise<StableService> {
    return new StableService({
      kube: await this.#api(),
      namespace: this.#job.target.namespace,
      job: this.#job.name,
      clusterName: this.#job.target.clusterName,
      serviceName: this.#serviceName,
    });
  }

  /** The Cluster of a slot as a CnpgTarget (its own name; connect from strategy.connect when given). */
  #slotTarget(slot: CnpgSlot | 'legacy'): CnpgTarget {
    const connect = slot === 'legacy' ? undefined : this.#strategy.connect?.[slot];
    return new CnpgTarget({
      job: {
        ...this.#job,
        target: {
          ...this.#job.target,
          clusterName: slot === 'legacy' ? this.#job.target.clusterName : slotClusterName(this.#job.target.clusterName, slot),
          adopt: false,
          ...(connect ? { connect } : { connect: undefined }),
        },
      },
      jobPath: this.#jobPath,
      sql: this.#sql,
      ...(this.#kube ? { kube: this.#kube } : {}),
    });
  }

  /** The slot the new copy goes to: the one the Service does not select (a before the first swap). */
  async #newSlot(): Promise<CnpgSlot> {
    const active = activeSlot(await (await this.#service()).view());
    return active ? otherSlot(active) : 'a';
  }

  describe(): TargetDescription {
    const { namespace, clusterName } = this.#job.target;
    const a = slotClusterName(clusterName, 'a');
    const b = slotClusterName(clusterName, 'b');
    const inner = new CnpgTarget({ job: this.#job, jobPath: this.#jobPath, sql: this.#sql }).describe();
    return {
      kind: 'cnpg',
      summary: `CloudNativePG Clusters ${namespace}/${a} and ${b}, served through Service ${namespace}/${this.#serviceName} (blue/green)`,
      details: { ...inner.details, clusterName: undefined, clusters: [a, b], service: this.#serviceName, strategy: 'blueGreen' },
      steps: {
        teardown: 'nothing: the current Cluster keeps serving until the swap',
        clone: `delete the Cluster the Service does not select (a retired or half-made copy), then create it again (${a} or ${b}) bootstrapped with pg_basebackup`,
        start: 'watch the new Cluster until it is healthy, while the current one serves',
      },
    };
  }

  endpoint(database: string, login?: OwnerLogin): PgEndpoint {
    // Verification runs between start and swap, when the Service does not select the new Cluster yet.
    // endpoint() is synchronous: the slot was read from the Service by resolveSource(), which every
    // run (fresh or resumed) calls before its first phase.
    return this.#slotTarget(this.#endpointSlot ?? 'a').endpoint(database, login);
  }

  /** The private window is the new Cluster's: created closed in its slot, opened before verification and the swap. */
  async privateAccess(): Promise<PrivateAccess> {
    return this.#slotTarget(this.#endpointSlot ?? (await this.#newSlot())).privateAccess();
  }

  async open(ctx: PhaseContext): Promise<PhaseDetail> {
    return this.#slotTarget(this.#endpointSlot ?? (await this.#newSlot())).open(ctx);
  }

  reservedRoles(): string[] {
    return [...OPERATOR_ROLES];
  }

  async defaultOwner(): Promise<OwnerLogin | undefined> {
    return this.#slotTarget(this.#endpointSlot ?? (await this.#newSlot())).defaultOwner();
  }

  /**
   * On the Cluster this run made, found by its run-id annotation: after a swap that Cluster is the
   * active one, and a run resumed after its swap reads the other slot as "new" from the Service.
   */
  async recordOutcome(run: RunRecord): Promise<void> {
    if (run.operation === 'rollback') return;
    const view = await (await this.#service()).view();
    const slot = (['a', 'b'] as const).find((s) => {
      const there = view.clusters[s];
      return there.exists && there.annotations['db-refresher.io/run-id'] === run.id;
    });
    if (slot) await this.#slotTarget(slot).recordOutcome(run);
  }

  #endpointSlot: CnpgSlot | undefined;

  async resolveSource(source: SourceConfig): Promise<{ source: SourceConfig; checks: Check[] }> {
    this.#endpointSlot = await this.#newSlot();
    return this.#slotTarget(this.#endpointSlot).resolveSource(source);
  }

  async preflight(source: SourceFacts | undefined): Promise<Check[]> {
    const service = await this.#service();
    const view = await service.view();
    const slot = activeSlot(view) ? otherSlot(activeSlot(view) as CnpgSlot) : 'a';
    this.#endpointSlot = slot;
    const checks = await this.#slotTarget(slot).preflight(source);
    const refusal = serviceRefusal(view);
    checks.push(
      refusal
        ? { name: 'stable Service is ours', ok: false, failureClass: 'unsafe-target', message: refusal }
        : {
            name: 'stable Service is ours',
            ok: true,
            message: view.service
              ? `Service ${view.namespace}/${view.serviceName} selects ${view.service.selector['cnpg.io/cluster']}`
              : `Service ${view.namespace}/${view.serviceName} will be created at the first swap`,
          },
    );
    const plan = planPrepare(view);
    if (!plan.ok) checks.push({ name: 'slot for the new Cluster', ok: false, failureClass: 'unsafe-target', message: plan.message });
    if (!activeSlot(view) && legacyCluster(view))
      checks.push({
        name: 'Cluster made by strategy recreate',
        ok: true,
        message: `Cluster ${view.namespace}/${view.clusterName} keeps serving until the swap; then clients use Service ${view.serviceName}, and it is kept as the previous copy for keepPrevious (${this.#strategy.keepPrevious}), then deleted`,
      });
    if (!this.#job.target.values.bootstrapDB.pg_basebackup.secret)
      checks.push({
        name: 'stable application credentials',
        ok: false,
        failureClass: 'unsafe-target',
        message:
          'strategy blueGreen needs bootstrapDB.pg_basebackup.secret in the values: without it each Cluster generates its own <cluster>-app password, and clients would lose their login at every swap',
      });
    const reclaimed = plan.ok && plan.remove ? { bytes: 0, claims: 0 } : undefined;
    const quota = quotaShortfall({ quotas: await service.quotas(), values: this.#job.target.values, ...(reclaimed ? { reclaimed } : {}) });
    if (quota)
      checks.push({
        name: 'quota for a second Cluster',
        ok: quota.ok,
        ...(quota.ok ? {} : { failureClass: 'insufficient-space' as const }),
        message: quota.message,
      });
    return checks;
  }

  async teardown(): Promise<PhaseDetail> {
    return { skipped: 'blueGreen: the current Cluster keeps serving' };
  }

  async clone(ctx: PhaseContext): Promise<PhaseDetail> {
    return this.cloneBeside(ctx);
  }

  async cloneBeside(ctx: PhaseContext): Promise<PhaseDetail> {
    const plan = planPrepare(await (await this.#service()).view());
    if (!plan.ok) throw new PhaseFailure('unsafe-target', plan.message);
    this.#endpointSlot = plan.slot;
    const target = this.#slotTarget(plan.slot);
    const removed = plan.remove ? await target.teardown(ctx) : undefined;
    const cloned = await target.clone(ctx);
    return { cluster: plan.name, ...(removed ? { removedFirst: removed } : {}), ...cloned };
  }

  async start(ctx: PhaseContext): Promise<PhaseDetail> {
    this.#endpointSlot = await this.#newSlot();
    return this.#slotTarget(this.#endpointSlot).start(ctx);
  }

  /** Marks the serving Cluster retired, then points the Service at the new one: one update; after drainSeconds, keepPrevious 0 deletes the old. */
  async swap(ctx: PhaseContext): Promise<PhaseDetail> {
    const service = await this.#service();
    const view = await service.view();
    const active = activeSlot(view);
    const incoming = active ? otherSlot(active) : 'a';
    const name = slotClusterName(this.#job.target.clusterName, incoming);
    const there = view.clusters[incoming];
    if (!there.exists || there.annotations['db-refresher.io/run-id'] !== ctx.runId) {
      // Already switched by this run before a restart?
      if (active && view.clusters[active].exists) {
        const current = view.clusters[active];
        if (current.exists && current.annotations['db-refresher.io/run-id'] === ctx.runId) return { alreadySwapped: true };
      }
      throw new PhaseFailure(
        'unsafe-target',
        `Cluster ${view.namespace}/${name} is not the copy this run made; the Service was not changed`,
      );
    }
    const outgoing = outgoingCluster(view);
    // Marked first: the mark is ignored while the Cluster is selected, so a crash between the two steps is harmless.
    if (outgoing) await service.markRetired(outgoing, new Date());
    const started = performance.now();
    const how = await service.pointAt(name, ctx.runId);
    const switchMs = Math.round(performance.now() - started);
    return { service: `${view.namespace}/${view.serviceName}`, selects: name, previous: outgoing, [how]: true, switchMs };
  }

  async cleanupPrevious(ctx: PhaseContext): Promise<PhaseDetail> {
    const service = await this.#service();
    if (this.#strategy.keepPreviousSeconds === 0 && this.#strategy.drainSeconds > 0) {
      // Connections opened before the switch keep going to the old primary; give them drainSeconds.
      await new Promise((resolve) => setTimeout(resolve, this.#strategy.drainSeconds * 1000));
    }
    const view = await service.view();
    const now = new Date();
    const plan = planCleanup(view, this.#strategy.keepPreviousSeconds, now);
    const legacy = await this.#cleanLegacy(view, now, ctx);
    if (plan.action === 'wait') return { previous: plan.name, keptUntil: plan.until.toISOString(), ...legacy };
    if (plan.action === 'none') return { previous: legacy.legacyKeptUntil ? view.clusterName : null, ...legacy };
    await this.#slotTarget(this.#slotOf(plan.name)).teardown(ctx);
    return { deleted: plan.name, why: plan.why, ...legacy };
  }

  /** The Cluster strategy recreate made, once the first swap retired it: deleted after keepPrevious, or when it will be. */
  async #cleanLegacy(view: CnpgBlueGreenView, now: Date, ctx: PhaseContext): Promise<PhaseDetail> {
    const plan = planLegacyCleanup(view, this.#strategy.keepPreviousSeconds, now);
    if (plan.action === 'wait') return { legacyKeptUntil: plan.until.toISOString() };
    if (plan.action !== 'delete') return {};
    await this.#slotTarget('legacy').teardown(ctx);
    return { legacyDeleted: plan.name, legacyWhy: plan.why };
  }

  #slotOf(name: string): CnpgSlot {
    return name.endsWith('-a') ? 'a' : 'b';
  }

  async reap(ctx: PhaseContext): Promise<PhaseDetail> {
    const view = await (await this.#service()).view();
    const now = new Date();
    const plan = planCleanup(view, this.#strategy.keepPreviousSeconds, now);
    const legacy = await this.#cleanLegacy(view, now, ctx);
    const removed = legacy.legacyDeleted ? [`Cluster ${legacy.legacyDeleted} (${legacy.legacyWhy})`] : [];
    const waits = [
      plan.action === 'wait' ? plan.until.getTime() : undefined,
      legacy.legacyKeptUntil ? Date.parse(String(legacy.legacyKeptUntil)) : undefined,
    ].filter((t): t is number => t !== undefined);
    const keptUntil = waits.length ? { keptUntil: new Date(Math.min(...waits)).toISOString() } : {};
    if (plan.action !== 'delete') return { removed, ...(plan.action === 'wait' ? { previous: plan.name } : {}), ...keptUntil };
    await this.#slotTarget(this.#slotOf(plan.name)).teardown(ctx);
    return { removed: [...removed, `Cluster ${plan.name} (${plan.why})`], ...keptUntil };
  }

  async afterFailure(run: RunRecord, ctx: PhaseContext): Promise<string | undefined> {
    const plan = planAfterFailure(await (await this.#service()).view(), run.id);
    if (plan.remove)
      await this.#slotTarget(plan.remove)
        .teardown(ctx)
        .catch((error: unknown) =>
          ctx.log.warn({ err: error }, 'could not delete the half-made Cluster; the next run or the service removes it'),
        );
    return plan.note;
  }

  async rollback(ctx: PhaseContext): Promise<PhaseDetail> {
    const service = await this.#service();
    const plan = planRollback(await service.view());
    if (!plan.ok) throw new PhaseFailure('unsafe-target', `${plan.message}; nothing was changed`);
    await service.markRetired(plan.from, new Date());
    await service.pointAt(plan.to, ctx.runId);
    return { from: plan.from, to: plan.to, [BLUE_GREEN_ANNOTATIONS.retiredAt]: plan.from };
  }
}
