import { systemClock } from '../clock.js';
import { RefresherError } from '../errors.js';
import { Kube, podNamespace, type V1ConfigMap } from '../kube/client.js';
import { LABELS, MANAGED_BY_VALUE } from '../kube/labels.js';
import { isConflict, isNotFound, sleep, withRetry } from '../kube/retry.js';
import type { Logger } from '../observe/logger.js';
import type { Clock, JobSuspension, RunStore } from '../ports.js';
import { type RunRecord, TERMINAL_RUN_STATUSES } from '../run/record.js';
import { isSuccess, mayPrune, newestSuccessId } from './retention.js';

/**
 * Run history in Kubernetes, for a pod without persistent storage: one
 * ConfigMap per job (`<prefix>-<job>`), one data key per run (`<run id>.json`).
 *
 * - Bounded: the newest `keepRuns` records are kept, plus any unfinished one
 *   (a long run must not be pushed out by the skipped ticks it causes).
 * - Compacted: all but the newest few records drop the bulky parts (checks,
 *   per-schema figures, phase details, log evidence); a ConfigMap stays well
 *   under the 1 MiB object limit.
 * - Atomic: every save is a read-modify-replace carrying the resourceVersion it
 *   read, so a concurrent writer makes it fail with 409 Conflict and it is
 *   retried on a fresh read; creation races are handled the same way. Saves of
 *   one job are also serialized within the process.
 * - Transient API errors (429 with Retry-After, 5xx, dropped connections) are
 *   retried with bounded backoff.
 */

export interface KubernetesRunStoreOptions {
  namespace?: string;
  kubeconfig?: string;
  /** Already loaded clients (tests). */
  kube?: Kube;
  keepRuns: number;
  configMapPrefix: string;
  /** How many newest records stay complete; older ones are compacted. */
  keepFull?: number;
  log: Logger;
  env?: NodeJS.ProcessEnv;
  clock?: Clock;
}

const MANAGED_BY = LABELS.managedBy;
const JOB_LABEL = LABELS.job;
const COMPONENT = LABELS.component;
/** Leave room under the API server's 1 MiB object limit for metadata and the request envelope. */
const MAX_DATA_BYTES = 900 * 1024;
const SUSPENSION_KEY = 'suspension.json';
const RUN_KEY = /^([0-9]{8}T[0-9]{9}Z-[0-9a-f]{6})\.json$/;

export class KubernetesRunStore implements RunStore {
  readonly #api: Kube['core'];
  readonly #namespace: string;
  readonly #keep: number;
  readonly #keepFull: number;
  readonly #prefix: string;
  readonly #log: Logger;
  /** Which job a run id belongs to, for get(id). */
  readonly #jobOf = new Map<string, string>();
  readonly #queues = new Map<string, Promise<unknown>>();
  #lastScan = 0;
  readonly #clock: Clock;
  #mayWrite: (() => boolean) | undefined;

  private constructor(api: Kube['core'], namespace: string, options: KubernetesRunStoreOptions) {
    this.#api = api;
    this.#namespace = namespace;
    this.#keep = options.keepRuns;
    this.#keepFull = options.keepFull ?? 5;
    this.#prefix = options.configMapPrefix;
    this.#log = options.log.child({ component: 'k8s-history' });
    this.#clock = options.clock ?? systemClock;
  }

  static async create(options: KubernetesRunStoreOptions): Promise<KubernetesRunStore> {
    const kube = options.kube ?? Kube.fromFile(options.kubeconfig, options.env ?? process.env);
    const namespace = options.namespace ?? podNamespace() ?? kube.contextNamespace ?? 'default';
    return new KubernetesRunStore(kube.core, namespace, options);
  }

  /**
   * With leader election: asked before every write attempt. A save that meets
   * a 409 reads again and writes again; if the lead was lost meanwhile, that
   * second write would put the old leader's view of a run over what the new
   * leader recorded since, so it is refused instead.
   */
  fence(mayWrite: () => boolean): void {
    this.#mayWrite = mayWrite;
  }

  get namespace(): string {
    return this.#namespace;
  }

  configMapName(job: string): string {
    return `${this.#prefix}-${job}`;
  }

  async save(run: RunRecord): Promise<void> {
    await this.#queued(run.job, async () => {
      await this.#update(run.job, (data) => {
        data[`${run.id}.json`] = JSON.stringify(run);
      });
      this.#jobOf.set(run.id, run.job);
    });
  }

  /** The job's suspension is one more data key of its ConfigMap, `suspension.json`, beside the runs. */
  async getSuspension(job: string): Promise<JobSuspension | undefined> {
    const text = (await this.#read(this.configMapName(job)))?.data?.[SUSPENSION_KEY];
    return text ? (JSON.parse(text) as JobSuspension) : undefined;
  }

  async saveSuspension(job: string, suspension: JobSuspension): Promise<void> {
    await this.#queued(job, () =>
      this.#update(job, (data) => {
        data[SUSPENSION_KEY] = JSON.stringify(suspension);
      }),
    );
  }

  /** One write at a time per job in this process; other writers are handled by resourceVersion. */
  async #queued(job: string, work: () => Promise<void>): Promise<void> {
    const previous = this.#queues.get(job) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    this.#queues.set(job, next);
    try {
      await next;
    } finally {
      if (this.#queues.get(job) === next) this.#queues.delete(job);
    }
  }

  async #update(job: string, change: (data: Record<string, string>) => void): Promise<void> {
    const name = this.configMapName(job);
    for (let attempt = 0; ; attempt += 1) {
      const current = await this.#read(name);
      const data = { ...(current?.data ?? {}) };
      change(data);
      const body: V1ConfigMap = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name,
          namespace: this.#namespace,
          labels: {
            ...(current?.metadata?.labels ?? {}),
            [MANAGED_BY]: MANAGED_BY_VALUE,
            [COMPONENT]: 'run-history',
            [JOB_LABEL]: job,
          },
          ...(current?.metadata?.resourceVersion ? { resourceVersion: current.metadata.resourceVersion } : {}),
        },
        data: boundAndCompact(data, { keep: this.#keep, keepFull: this.#keepFull }),
      };
      if (this.#mayWrite && !this.#mayWrite())
        throw new RefresherError('NO_LEADER', 'not the leader any more: the run record was not written; the new leader settles this run');
      try {
        if (current)
          await retrying('replace history ConfigMap', () =>
            this.#api.replaceNamespacedConfigMap({ name, namespace: this.#namespace, body }),
          );
        else await retrying('create history ConfigMap', () => this.#api.createNamespacedConfigMap({ namespace: this.#namespace, body }));
        return;
      } catch (error) {
        // 409: someone else wrote (or created) it since we read: read again and reapply.
        if (isConflict(error) && attempt < 10) {
          this.#log.debug({ job, attempt }, 'history ConfigMap changed meanwhile; retrying');
          await sleep(Math.min(50 * 2 ** attempt, 1000) * (0.5 + Math.random()));
          continue;
        }
        throw error;
      }
    }
  }

  async get(id: string): Promise<RunRecord | undefined> {
    if (!RUN_KEY.test(`${id}.json`)) return undefined;
    let job = this.#jobOf.get(id);
    if (!job && this.#clock.now().getTime() - this.#lastScan > 5000) {
      // An id this process has not seen: learn every job's ids with one list call (rate-limited).
      this.#lastScan = this.#clock.now().getTime();
      const list = await retrying('list history ConfigMaps', () =>
        this.#api.listNamespacedConfigMap({
          namespace: this.#namespace,
          labelSelector: `${MANAGED_BY}=${MANAGED_BY_VALUE},${COMPONENT}=run-history`,
        }),
      );
      for (const cm of list.items) this.#index(cm);
      job = this.#jobOf.get(id);
    }
    if (!job) return undefined;
    const cm = await this.#read(this.configMapName(job));
    const text = cm?.data?.[`${id}.json`];
    return text ? (JSON.parse(text) as RunRecord) : undefined;
  }

  async list(job: string, options: { limit?: number; before?: string } = {}): Promise<RunRecord[]> {
    const cm = await this.#read(this.configMapName(job));
    if (!cm) return [];
    this.#index(cm);
    return Object.entries(cm.data ?? {})
      .map(([key, text]) => ({ id: RUN_KEY.exec(key)?.[1], text }))
      .filter((e): e is { id: string; text: string } => e.id !== undefined && (options.before === undefined || e.id < options.before))
      .sort((a, b) => (a.id < b.id ? 1 : -1))
      .slice(0, options.limit ?? 50)
      .map((e) => JSON.parse(e.text) as RunRecord);
  }

  /** Every unfinished record of the job, newest first: one read, the ConfigMap holds them all. */
  async unfinished(job: string): Promise<RunRecord[]> {
    return (await this.list(job, { limit: Number.POSITIVE_INFINITY })).filter((r) => !TERMINAL_RUN_STATUSES.has(r.status));
  }

  /** The job's newest successful refresh, however many records came after it: one read. */
  async lastSuccess(job: string): Promise<RunRecord | undefined> {
    return (await this.list(job, { limit: Number.POSITIVE_INFINITY })).find(isSuccess);
  }

  #index(cm: V1ConfigMap): void {
    const job = cm.metadata?.labels?.[JOB_LABEL];
    if (!job) return;
    for (const key of Object.keys(cm.data ?? {})) {
      const id = RUN_KEY.exec(key)?.[1];
      if (id) this.#jobOf.set(id, job);
    }
  }

  async #read(name: string): Promise<V1ConfigMap | undefined> {
    try {
      return await retrying('read history ConfigMap', () => this.#api.readNamespacedConfigMap({ name, namespace: this.#namespace }));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }
}

/** Kubernetes' transient answers (429, 5xx, dropped connections) are retried by the shared mechanism, briefly. */
function retrying<T>(what: string, call: () => Promise<T>): Promise<T> {
  return withRetry(what, call, { attempts: 5 });
}

/**
 * Keeps the newest `keep` records, every unfinished one and the newest
 * successful refresh (./retention.ts); the newest
 * `keepFull` stay complete, the rest are compacted; if the whole is still too
 * big, finished records are compacted harder and then dropped, oldest first.
 * Keys that are not run records are left alone.
 */
export function boundAndCompact(data: Record<string, string>, limits: { keep: number; keepFull: number }): Record<string, string> {
  const runs = Object.entries(data)
    .map(([key, text]) => ({ key, id: RUN_KEY.exec(key)?.[1], text }))
    .filter((e): e is { key: string; id: string; text: string } => e.id !== undefined)
    .sort((a, b) => (a.id < b.id ? 1 : -1));
  const out: Record<string, string> = Object.fromEntries(Object.entries(data).filter(([key]) => !RUN_KEY.test(key)));
  const kept: Array<{ key: string; text: string; run: RunRecord }> = [];
  const parsed = runs.map((entry) => ({ ...entry, run: JSON.parse(entry.text) as RunRecord }));
  const success = newestSuccessId(parsed.map((e) => e.run));
  parsed.forEach((entry, i) => {
    const { run } = entry;
    const unfinished = !TERMINAL_RUN_STATUSES.has(run.status);
    if (i >= limits.keep && mayPrune(run, success)) return;
    const text = i < limits.keepFull || unfinished ? entry.text : JSON.stringify(compactRecord(run));
    kept.push({ key: entry.key, text, run });
  });
  const size = () => kept.reduce((n, e) => n + e.key.length + Buffer.byteLength(e.text), 0);
  // Too big: compact the complete ones too (newest last), then drop the oldest finished ones.
  for (let i = kept.length - 1; i >= 0 && size() > MAX_DATA_BYTES; i -= 1) {
    const e = kept[i];
    if (e && TERMINAL_RUN_STATUSES.has(e.run.status)) e.text = JSON.stringify(compactRecord(e.run, true));
  }
  for (let i = kept.length - 1; i >= 0 && size() > MAX_DATA_BYTES; i -= 1) {
    const e = kept[i];
    if (e && mayPrune(e.run, success)) kept.splice(i, 1);
  }
  for (const e of kept) out[e.key] = e.text;
  return out;
}

/**
 * A record without what only matters for a recent run: preflight checks,
 * per-schema figures, phase details, the evidence behind an error. What stays
 * answers "when, who, how long, did it work, how big, why not".
 */
export function compactRecord(run: RunRecord, hard = false): RunRecord {
  const failing = (checks: readonly { ok: boolean }[] | undefined) => (checks ?? []).filter((c) => !c.ok);
  return {
    ...run,
    compacted: true,
    phases: run.phases.map(({ detail: _detail, ...phase }) => phase),
    target: { ...run.target, details: {}, steps: { teardown: '', clone: '', start: '' } },
    ...(run.preflight ? { preflight: failing(run.preflight) as RunRecord['preflight'] } : {}),
    ...(run.snapshot
      ? {
          snapshot: {
            takenAt: run.snapshot.takenAt,
            databases: run.snapshot.databases.map((d) => ({
              database: d.database,
              sizeBytes: d.sizeBytes,
              owner: d.owner,
              tablesBySchema: {},
            })),
          },
        }
      : {}),
    ...(run.verification
      ? {
          verification: {
            ok: run.verification.ok,
            checks: failing(run.verification.checks) as NonNullable<RunRecord['verification']>['checks'],
            databases: hard
              ? []
              : run.verification.databases.map((d) => ({ database: d.database, checks: failing(d.checks) as typeof d.checks })),
          },
        }
      : {}),
    ...(run.error
      ? {
          error: {
            phase: run.error.phase,
            class: run.error.class,
            message: run.error.message.slice(0, hard ? 500 : 2000),
            hint: run.error.hint,
          },
        }
      : {}),
  };
}
