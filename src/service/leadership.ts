import { hostname } from 'node:os';
import type { Config } from '../config/types.js';
import { RefresherError } from '../errors.js';
import type { LeaderElector } from '../kube/leader-elector.js';
import type { Logger } from '../observe/logger.js';
import type { Clock, RunStore } from '../ports.js';

/**
 * Which replica of `serve` schedules and runs refreshes. Without
 * `server.leaderElection` the one process always leads. With it, the holder
 * of a coordination.k8s.io/v1 Lease leads (src/kube/leader-elector.ts); the
 * others serve the API from the shared history and forward writes to it.
 */
export interface Leadership {
  /** True while this replica may schedule, run and resume refreshes. */
  readonly leading: boolean;
  /** Where a write (trigger, cancel, …) goes: here, to the leader's URL, or nowhere (no leader known). */
  forwardTo(): 'self' | { url: string; leader: string } | 'none';
  /** The `leader` check of /readyz; a follower is ready (it serves the API). */
  readiness(): { ok: boolean; message: string };
  /** db_refresher_leader; undefined without election. */
  metric(): { pod: string; leading: boolean } | undefined;
  start(hooks: { gained(): void; lost(reason: string): void }): void;
  stop(): Promise<void>;
}

export const soleReplica: Leadership = {
  leading: true,
  forwardTo: () => 'self',
  readiness: () => ({ ok: true, message: 'single replica' }),
  metric: () => undefined,
  start: (hooks) => hooks.gained(),
  stop: async () => undefined,
};

class LeaseLeadership implements Leadership {
  readonly #elector: LeaderElector;

  constructor(elector: LeaderElector) {
    this.#elector = elector;
  }

  get leading(): boolean {
    return this.#elector.isLeader;
  }

  forwardTo(): 'self' | { url: string; leader: string } | 'none' {
    if (this.#elector.isLeader) return 'self';
    const leader = this.#elector.status().leader;
    return leader?.url && leader.identity !== this.#elector.identity ? { url: leader.url, leader: leader.identity } : 'none';
  }

  readiness(): { ok: boolean; message: string } {
    const status = this.#elector.status();
    if (status.leading) return { ok: true, message: `leading as ${status.identity}` };
    // Until it reads the Lease again, a replica that stopped leading still sees itself as the holder.
    if (status.leader && status.leader.identity !== status.identity) return { ok: true, message: `following ${status.leader.identity}` };
    if (status.lost) {
      const { at, reason } = status.lost;
      return { ok: true, message: `not leading since ${at}: ${reason}; this replica starts no phase that changes a target` };
    }
    return { ok: true, message: 'no leader known yet' };
  }

  metric(): { pod: string; leading: boolean } {
    return { pod: this.#elector.identity, leading: this.#elector.isLeader };
  }

  start(hooks: { gained(): void; lost(reason: string): void }): void {
    this.#elector.setHooks(hooks);
    this.#elector.start();
  }

  stop(): Promise<void> {
    return this.#elector.stop();
  }
}

/** The Leadership `server.leaderElection` asks for; loads the Kubernetes client only when it does. */
export async function createLeadership(options: {
  config: Config;
  clock: Clock;
  log: Logger;
  env: NodeJS.ProcessEnv;
  /** The address the API listens on, for the default advertised URL. */
  port: number;
}): Promise<Leadership> {
  const le = options.config.server.leaderElection;
  const history = options.config.server.history;
  if (!le || history.kind !== 'kubernetes') return soleReplica;
  const [{ Kube, podNamespace }, { LeaderElector }] = await Promise.all([import('../kube/client.js'), import('../kube/leader-elector.js')]);
  const kube = Kube.fromFile(history.kubeconfig, options.env);
  const namespace = le.namespace ?? history.namespace ?? podNamespace() ?? kube.contextNamespace ?? 'default';
  // The pod's name is unique among replicas; a random suffix keeps two local processes apart.
  const identity = options.env.POD_NAME || `${hostname()}-${process.pid}`;
  const podIp = options.env.POD_IP;
  const url = le.advertiseUrl ?? (podIp ? `http://${podIp.includes(':') ? `[${podIp}]` : podIp}:${options.port}` : undefined);
  if (!url) options.log.warn('leader election: no POD_IP and no advertiseUrl; triggers sent to this replica cannot be forwarded to it');
  return new LeaseLeadership(
    new LeaderElector({
      kube,
      namespace,
      name: le.leaseName,
      identity,
      url,
      clock: options.clock,
      log: options.log.child({ component: 'leader-election' }),
      timings: {
        leaseDurationMs: le.leaseDurationSeconds * 1000,
        renewDeadlineMs: le.renewDeadlineSeconds * 1000,
        retryPeriodMs: le.retryPeriodSeconds * 1000,
      },
    }),
  );
}

/**
 * A store that refuses writes while this replica does not lead: a leader cut
 * off from the API server may come back with a run still in hand, and must
 * not overwrite what the new leader recorded since. A write that began while
 * leading but ended after the lead was lost (it hung past the renew deadline)
 * fails too: the runner starts a phase only once its record is saved, and by
 * then another replica may lead.
 */
export function fencedStore(store: RunStore, leadership: Leadership): RunStore {
  if (leadership === soleReplica) return store;
  // Inside the store too: its retry after a 409 must not write once the lead is gone.
  (store as Partial<{ fence(mayWrite: () => boolean): void }>).fence?.(() => leadership.leading);
  return new Proxy(store, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if ((key === 'save' || key === 'saveSuspension') && typeof value === 'function') {
        return (...args: unknown[]) => {
          // NO_LEADER answers 503: a client that triggered a run here tries again and reaches the new leader.
          if (!leadership.leading)
            return Promise.reject(
              new RefresherError('NO_LEADER', 'not the leader any more: run records and suspensions are written only by the leader'),
            );
          return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args).then((result) => {
            if (!leadership.leading)
              throw new RefresherError(
                'NO_LEADER',
                'stopped leading while the run record was being saved: the new leader settles this run',
              );
            return result;
          });
        };
      }
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
