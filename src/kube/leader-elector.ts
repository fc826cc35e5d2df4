import type { Logger } from '../observe/logger.js';
import type { Clock } from '../ports.js';
import type { Kube, V1Lease } from './client.js';
import { V1MicroTime } from './client.js';
import { decide, type LeaseRecord, type LeaseTimings, type Observed, observe } from './lease-decision.js';
import { describeKubeError, isConflict, isNotFound, sleep } from './retry.js';

/**
 * Leader election on a coordination.k8s.io/v1 Lease, with client-go's
 * semantics (decisions in lease-decision.ts): try to acquire every
 * retryPeriod; once leading, renew every retryPeriod; a leader that has not
 * renewed for renewDeadline stops leading. Every write carries the
 * resourceVersion it read, so two candidates can never both win.
 *
 * `isLeader` is computed from the last successful renewal on every call, not
 * from a flag the loop sets: a request hanging in a network partition cannot
 * keep a stale leader believing it still leads.
 */

export const LEADER_URL_ANNOTATION = 'db-refresher.io/api-url';

export interface LeaderElectorOptions {
  kube: Kube;
  namespace: string;
  name: string;
  identity: string;
  timings: LeaseTimings;
  clock: Clock;
  log: Logger;
  /** Where this replica's API is reached; written on the Lease so others can forward triggers to the leader. */
  url?: string;
  onStartedLeading?: () => void;
  onStoppedLeading?: (reason: string) => void;
}

export interface LeaderStatus {
  identity: string;
  leading: boolean;
  /** The holder as last read, and its API URL; undefined before the first read. */
  leader?: { identity: string; url?: string };
  /** Milliseconds since this replica last renewed, while it leads. */
  sinceRenewMs?: number;
  /** When and why this replica last stopped leading; cleared when it leads again. */
  lost?: { at: string; reason: string };
}

export class LeaderElector {
  readonly #api: Kube['coordination'];
  #o: LeaderElectorOptions;
  readonly #stop = new AbortController();
  #observed: Observed | undefined;
  #resourceVersion: string | undefined;
  #leaderUrl: string | undefined;
  /** Our clock at the last successful create/renew; undefined while not leading. */
  #renewedAt: number | undefined;
  #leading = false;
  #lost: { at: string; reason: string } | undefined;
  #loop: Promise<void> | undefined;
  #watchdog: NodeJS.Timeout | undefined;

  constructor(options: LeaderElectorOptions) {
    this.#o = options;
    this.#api = options.kube.coordination;
  }

  get identity(): string {
    return this.#o.identity;
  }

  /** Sets what happens when this replica starts and stops leading (before start()). */
  setHooks(hooks: { gained(): void; lost(reason: string): void }): void {
    this.#o = { ...this.#o, onStartedLeading: hooks.gained, onStoppedLeading: hooks.lost };
  }

  /** True while this replica holds the lease and renewed it within renewDeadline. */
  get isLeader(): boolean {
    return this.#renewedAt !== undefined && this.#o.clock.now().getTime() - this.#renewedAt < this.#o.timings.renewDeadlineMs;
  }

  status(): LeaderStatus {
    const holder = this.#observed?.record.holderIdentity;
    return {
      identity: this.#o.identity,
      leading: this.isLeader,
      leader: holder ? { identity: holder, url: this.#leaderUrl } : undefined,
      sinceRenewMs: this.#renewedAt === undefined ? undefined : this.#o.clock.now().getTime() - this.#renewedAt,
      lost: this.#lost,
    };
  }

  start(): void {
    if (this.#loop) return;
    this.#loop = this.#run();
    // Notices a passed renew deadline even while a request hangs.
    this.#watchdog = setInterval(() => this.#checkDeadline(), Math.max(100, Math.floor(this.#o.timings.retryPeriodMs / 4)));
    this.#watchdog.unref();
  }

  /** Stops electing; a leader releases the Lease so a successor need not wait out the lease duration. */
  async stop(): Promise<void> {
    this.#stop.abort(new Error('leader election stopped'));
    if (this.#watchdog) clearInterval(this.#watchdog);
    await this.#loop?.catch(() => undefined);
    if (this.isLeader) await this.#release().catch((error) => this.#o.log.warn({ err: error }, 'could not release the leader lease'));
    this.#lose('stopped');
  }

  async #run(): Promise<void> {
    const { timings, log } = this.#o;
    while (!this.#stop.signal.aborted) {
      try {
        const renewed = await this.#withDeadline(this.#tryAcquireOrRenew());
        if (renewed) {
          this.#renewedAt = this.#o.clock.now().getTime();
          if (!this.#leading) {
            this.#leading = true;
            this.#lost = undefined;
            log.info({ lease: this.#o.name, identity: this.#o.identity }, 'became the leader');
            this.#o.onStartedLeading?.();
          }
        }
      } catch (error) {
        log.warn({ err: error, lease: this.#o.name }, 'leader election: could not read or write the Lease');
      }
      this.#checkDeadline();
      // client-go jitters acquisition (factor 1.2) so candidates do not retry in lockstep.
      const wait = this.#leading ? timings.retryPeriodMs : timings.retryPeriodMs * (1 + Math.random() * 0.2);
      await sleep(wait, this.#stop.signal).catch(() => undefined);
    }
  }

  #checkDeadline(): void {
    if (this.#leading && !this.isLeader) {
      this.#lose(`could not renew the Lease within renewDeadline (${this.#o.timings.renewDeadlineMs} ms)`);
    }
  }

  #lose(reason: string): void {
    if (!this.#leading) return;
    const now = this.#o.clock.now().getTime();
    // isLeader turned false at the renew deadline itself; the watchdog may notice a little later on a busy event loop.
    const since = this.#renewedAt === undefined ? now : Math.min(now, this.#renewedAt + this.#o.timings.renewDeadlineMs);
    this.#leading = false;
    this.#renewedAt = undefined;
    this.#lost = { at: new Date(since).toISOString(), reason };
    this.#o.log.warn(
      {
        lease: this.#o.name,
        identity: this.#o.identity,
        reason,
        notLeadingSince: this.#lost.at,
        consequence: 'no phase that changes a target starts here',
      },
      'stopped leading',
    );
    this.#o.onStoppedLeading?.(reason);
  }

  /** A request may not outlive the renew deadline: the loop must get to check it. */
  async #withDeadline<T>(promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the Kubernetes API did not answer in time')), this.#o.timings.renewDeadlineMs);
    });
    try {
      return await Promise.race([promise, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity, timings } = this.#o;
    let lease: V1Lease | undefined;
    try {
      lease = await this.#api.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (!isNotFound(error)) throw describeKubeError(`reading Lease ${namespace}/${name}`, error);
    }
    const now = this.#o.clock.now().getTime();
    if (lease) {
      this.#observed = observe(this.#observed, fromLease(lease), now);
      this.#resourceVersion = lease.metadata?.resourceVersion;
      this.#leaderUrl = lease.metadata?.annotations?.[LEADER_URL_ANNOTATION];
    } else {
      this.#observed = undefined;
    }
    const decision = decide({ identity, current: this.#observed, now, timings });
    if (decision.action === 'wait') return false;
    const body = this.#toLease(decision.record);
    try {
      const written =
        decision.action === 'create'
          ? await this.#api.createNamespacedLease({ namespace, body })
          : await this.#api.replaceNamespacedLease({
              name,
              namespace,
              body: { ...body, metadata: { ...body.metadata, resourceVersion: this.#resourceVersion } },
            });
      this.#observed = observe(undefined, fromLease(written), now);
      this.#resourceVersion = written.metadata?.resourceVersion;
      this.#leaderUrl = this.#o.url;
      if (decision.action === 'update' && decision.takeover) {
        this.#o.log.info({ lease: name, previous: lease?.spec?.holderIdentity || undefined }, 'took over the leader lease');
      }
      return true;
    } catch (error) {
      // Someone else wrote first (create race or stale resourceVersion): they won this round.
      if (isConflict(error) || (decision.action === 'create' && statusIs(error, 409))) return false;
      throw describeKubeError(`writing Lease ${namespace}/${name}`, error);
    }
  }

  async #release(): Promise<void> {
    const { namespace, name } = this.#o;
    const lease = await this.#api.readNamespacedLease({ name, namespace });
    if (lease.spec?.holderIdentity !== this.#o.identity) return;
    // client-go's ReleaseOnCancel: an empty holder with a 1 s duration lets a candidate take over at once.
    await this.#api.replaceNamespacedLease({
      name,
      namespace,
      body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: new V1MicroTime() } },
    });
  }

  #toLease(record: LeaseRecord): V1Lease {
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name: this.#o.name,
        namespace: this.#o.namespace,
        labels: { 'app.kubernetes.io/managed-by': 'db-refresher' },
        annotations: this.#o.url ? { [LEADER_URL_ANNOTATION]: this.#o.url } : {},
      },
      spec: {
        holderIdentity: record.holderIdentity,
        leaseDurationSeconds: record.leaseDurationSeconds,
        acquireTime: record.acquireTime ? new V1MicroTime(record.acquireTime) : undefined,
        renewTime: record.renewTime ? new V1MicroTime(record.renewTime) : undefined,
        leaseTransitions: record.leaseTransitions,
      },
    };
  }
}

function statusIs(error: unknown, code: number): boolean {
  return (error as { code?: number })?.code === code;
}

function fromLease(lease: V1Lease): LeaseRecord {
  const time = (t: unknown) => (t instanceof Date ? t.toISOString() : typeof t === 'string' ? t : undefined);
  return {
    holderIdentity: lease.spec?.holderIdentity ?? '',
    leaseDurationSeconds: lease.spec?.leaseDurationSeconds ?? 0,
    acquireTime: time(lease.spec?.acquireTime),
    renewTime: time(lease.spec?.renewTime),
    leaseTransitions: lease.spec?.leaseTransitions ?? 0,
  };
}
