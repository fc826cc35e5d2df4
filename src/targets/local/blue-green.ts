import { existsSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { formatBytes } from '../../config/byte-size.js';
import type { BlueGreenConfig } from '../../config/schema-strategy.js';
import type { PgEndpoint } from '../../config/types.js';
import { PhaseFailure } from '../../errors.js';
import type { BlueGreenTarget, PhaseContext, PrivateAccess, SqlConnector } from '../../ports.js';
import { serverOsUser } from '../../postgres/os-user.js';
import type { Check, SourceFacts } from '../../run/facts.js';
import type { PhaseDetail, RunRecord, TargetDescription } from '../../run/record.js';
import { directorySize } from './data-dir.js';
import { type LocalJob, LocalTarget } from './index.js';
import { LocalSlots } from './swap.js';
import type { SwapJournal } from './swap-plan.js';

/** Room kept free beyond the source's size, as for a recreated copy: WAL streamed during the copy. */
const ROOM_FACTOR = 1.1;

/**
 * A local copy refreshed blue/green: the new copy is cloned into `<dataDir>.db-refresher-next` on a
 * spare port while the current one keeps serving, started, prepared and verified there, then swapped
 * in (swap.ts). The phases that touch the new copy (clone-beside, start, verify) talk to a LocalTarget
 * pointed at the next slot; nothing is kept between phases: the spare port is read back from the
 * copy's own configuration, so a restarted service resumes where the disk says.
 */
export class BlueGreenLocalTarget implements BlueGreenTarget {
  readonly #job: LocalJob;
  readonly #jobPath: string;
  readonly #env: NodeJS.ProcessEnv;
  readonly #strategy: BlueGreenConfig;
  readonly #sql: SqlConnector | undefined;
  readonly #current: LocalTarget;
  readonly #slots: LocalSlots;

  constructor(options: { job: LocalJob; jobPath: string; strategy: BlueGreenConfig; env?: NodeJS.ProcessEnv; sql?: SqlConnector }) {
    this.#job = options.job;
    this.#jobPath = options.jobPath;
    this.#env = options.env ?? process.env;
    this.#strategy = options.strategy;
    this.#sql = options.sql;
    this.#current = new LocalTarget({ job: options.job, jobPath: options.jobPath, env: this.#env });
    const { dataDir, host, port, startTimeoutSeconds } = options.job.target;
    this.#slots = new LocalSlots({
      job: options.job.name,
      dataDir,
      host,
      port,
      runAs: runAsOf(this.#env),
      env: this.#env,
      startTimeoutSeconds,
      countClients: (p) => this.#countClients(p),
    });
  }

  get slots(): LocalSlots {
    return this.#slots;
  }

  /** The next slot's copy as a LocalTarget on its spare port (configured, or the one its config holds). */
  #beside(port?: number): LocalTarget {
    const next = this.#slots.slot('next');
    const spare = port ?? this.#strategy.sparePort ?? (next.kind === 'ours' ? next.configuredPort : undefined);
    if (spare === undefined) throw new PhaseFailure('unsafe-target', `there is no new copy in ${this.#slots.paths.next}; run a refresh`);
    return new LocalTarget({
      job: { ...this.#job, target: { ...this.#job.target, dataDir: this.#slots.paths.next, port: spare, adopt: false } },
      jobPath: this.#jobPath,
      env: this.#env,
      ...(this.#sql ? { sql: this.#sql } : {}),
    });
  }

  // The new copy goes through the same private window as a recreated one (neutralise, prepare, mask),
  // on its own socket, and opens on the spare port; the swap then moves it to the job's port.
  privateAccess(ctx: PhaseContext): Promise<PrivateAccess> {
    return this.#beside().privateAccess(ctx);
  }

  open(ctx: PhaseContext): Promise<PhaseDetail> {
    return this.#beside().open(ctx);
  }

  windowOpened(ctx: PhaseContext): Promise<boolean> {
    return this.#beside().windowOpened(ctx);
  }

  reservedRoles(): string[] {
    return this.#beside().reservedRoles();
  }

  describe(): TargetDescription {
    const { dataDir, host, port } = this.#job.target;
    const { next, previous } = this.#slots.paths;
    const spare = this.#strategy.sparePort ? `port ${this.#strategy.sparePort}` : 'a free port';
    return {
      kind: 'local',
      summary: `local data directory ${dataDir}, served on ${host}:${port} (blue/green: new copies are built beside it)`,
      details: { dataDir, host, port, strategy: 'blueGreen', next, previous, sparePort: this.#strategy.sparePort ?? 'free port' },
      steps: {
        teardown: 'nothing: the current copy keeps serving until the swap',
        clone: `finish a swap an earlier run left unfinished, remove a half-made copy and the previous copy, then pg_basebackup into ${next} and point it at ${spare}`,
        start: `pg_ctl start of the new copy in ${next} on ${host}, ${spare}, beside the current copy`,
      },
    };
  }

  endpoint(database: string): PgEndpoint {
    return this.#beside().endpoint(database);
  }

  /** The current copy's safety rails (ours, or adopt; not the source), the slots, the spare port and room for a second copy. */
  async preflight(source: SourceFacts | undefined): Promise<Check[]> {
    const checks = (await this.#current.preflight(source)).filter((c) => c.name !== 'room for the copy');
    for (const slot of ['next', 'previous'] as const) {
      const view = this.#slots.slot(slot);
      if (view.kind === 'foreign')
        checks.push({
          name: `${slot} slot is ours`,
          ok: false,
          failureClass: 'unsafe-target',
          message: `${view.reason}; blue/green keeps its ${slot} copy there, so move it away (adopt applies to the current copy only)`,
        });
    }
    const journal = this.#slots.journal();
    if (journal)
      checks.push({
        name: 'interrupted swap',
        ok: true,
        severity: 'warning',
        message: `a ${journal.kind} by run ${journal.runId} did not finish; this run finishes it before cloning`,
      });
    if (this.#strategy.sparePort !== undefined) checks.push(await this.#sparePortCheck(this.#strategy.sparePort));
    if (source) checks.push(await this.#roomCheck(source));
    return checks;
  }

  async #sparePortCheck(port: number): Promise<Check> {
    const next = this.#slots.slot('next');
    if (next.kind === 'ours' && next.runningPort === port)
      return { name: 'spare port', ok: true, message: `port ${port} is held by a half-made copy, which is removed first` };
    const free = await portFree(this.#job.target.host, port);
    return free
      ? { name: 'spare port', ok: true, message: `${this.#job.target.host}:${port} is free for the new copy` }
      : {
          name: 'spare port',
          ok: false,
          failureClass: 'target-port-in-use',
          message: `${this.#job.target.host}:${port} (strategy.sparePort) is in use; the new copy could not start there. Free it or choose another sparePort`,
        };
  }

  async #roomCheck(source: SourceFacts): Promise<Check> {
    const { dataDir } = this.#job.target;
    let probe = path.dirname(dataDir);
    while (!existsSync(probe) && probe !== path.dirname(probe)) probe = path.dirname(probe);
    const fs = await statfs(probe);
    const free = fs.bavail * fs.bsize;
    // The half-made copy and the previous copy are removed before the clone; the current copy stays.
    const reclaimed = [this.#slots.paths.next, this.#slots.paths.previous].reduce(
      (sum, dir) => sum + (this.#slots.slot(dir === this.#slots.paths.next ? 'next' : 'previous').kind === 'ours' ? directorySize(dir) : 0),
      0,
    );
    if (source.totalSizeBytes === undefined)
      return {
        name: 'room for a second copy',
        ok: true,
        severity: 'warning',
        message: `cannot read the source's size; ${formatBytes(free)} free at ${probe}, and the current copy stays until the swap`,
      };
    const needed = Math.ceil(source.totalSizeBytes * ROOM_FACTOR);
    const available = free + reclaimed;
    const text = `the new copy needs about ${formatBytes(needed)} beside the current one, ${formatBytes(available)} available at ${probe}${reclaimed ? ` counting ${formatBytes(reclaimed)} of earlier copies removed first` : ''}`;
    return available >= needed
      ? { name: 'room for a second copy', ok: true, message: text }
      : {
          name: 'room for a second copy',
          ok: false,
          failureClass: 'insufficient-space',
          message: `${text}. blueGreen keeps two copies at once: free space, or use strategy recreate`,
        };
  }

  async teardown(): Promise<PhaseDetail> {
    return { skipped: 'blueGreen: the current copy keeps serving' };
  }

  async clone(ctx: PhaseContext): Promise<PhaseDetail> {
    return this.cloneBeside(ctx);
  }

  /** Finishes an interrupted swap, clears the next and previous slots, and clones into next on the spare port. */
  async cloneBeside(ctx: PhaseContext): Promise<PhaseDetail> {
    const repaired = this.#slots.journal() ? await this.#slots.run({ ...ctx, drainSeconds: 0, now: () => new Date() }) : undefined;
    const removed = await this.#slots.cleanup({
      keepPreviousSeconds: this.#strategy.keepPreviousSeconds,
      now: new Date(),
      makeRoom: true,
      log: ctx.log,
      signal: ctx.signal,
    });
    const spare = this.#strategy.sparePort ?? (await freePort(this.#job.target.host));
    const detail = await this.#beside(spare).clone(ctx);
    return {
      ...detail,
      dataDir: this.#slots.paths.next,
      sparePort: spare,
      ...(removed.length ? { removed } : {}),
      ...(repaired ? { finishedInterruptedSwap: repaired.steps.map((s) => s.step) } : {}),
    };
  }

  async start(ctx: PhaseContext): Promise<PhaseDetail> {
    return this.#beside().start(ctx);
  }

  /** Writes the journal (the decision to swap) and drives the swap to its end. Idempotent: a resumed run continues it. */
  async swap(ctx: PhaseContext): Promise<PhaseDetail> {
    let journal = this.#slots.journal();
    if (!journal || journal.runId !== ctx.runId) {
      if (journal) await this.#slots.run({ ...ctx, drainSeconds: 0, now: () => new Date() });
      const current = this.#slots.slot('current');
      const next = this.#slots.slot('next');
      if (next.kind !== 'ours' || next.runId !== ctx.runId) {
        // Already swapped by this run before a restart: the journal is gone and the copy is current.
        const now = this.#slots.slot('current');
        if (now.kind === 'ours' && now.runId === ctx.runId) return { alreadySwapped: true };
        throw new PhaseFailure(
          'unsafe-target',
          `the new copy of run ${ctx.runId} is not in ${this.#slots.paths.next}; nothing was swapped`,
        );
      }
      journal = {
        kind: 'swap',
        job: this.#job.name,
        runId: ctx.runId,
        incoming: ctx.runId,
        outgoing: current.kind === 'ours' ? current.runId : undefined,
        startedAt: new Date().toISOString(),
      } satisfies SwapJournal;
      await this.#slots.writeJournal(journal);
    }
    const outcome = await this.#slots.run({ ...ctx, drainSeconds: this.#strategy.drainSeconds, now: () => new Date() });
    return {
      downtimeMs: outcome.downtimeMs,
      drainedMs: outcome.drainedMs,
      steps: outcome.steps.map((s) => `${s.step} (${s.ms} ms)`),
      previousRun: journal.outgoing,
    };
  }

  /** keepPrevious 0: the previous copy goes now; otherwise it stays until the service's clean-up after keepPrevious. */
  async cleanupPrevious(ctx: PhaseContext): Promise<PhaseDetail> {
    const removed = await this.#slots.cleanup({
      keepPreviousSeconds: this.#strategy.keepPreviousSeconds,
      now: new Date(),
      makeRoom: false,
      log: ctx.log,
      signal: ctx.signal,
    });
    const retired = this.#slots.retired();
    const kept = this.#slots.slot('previous').kind === 'ours';
    return {
      removed,
      ...(kept && retired
        ? { previousKeptUntil: new Date(Date.parse(retired.retiredAt) + this.#strategy.keepPreviousSeconds * 1000).toISOString() }
        : {}),
    };
  }

  /** A run that failed before its swap: the half-made copy goes; the current copy was never touched. */
  async afterFailure(run: RunRecord, ctx: PhaseContext): Promise<string | undefined> {
    const journal = this.#slots.journal();
    if (journal && journal.runId === run.id) return undefined;
    const next = this.#slots.slot('next');
    if (next.kind === 'ours' && next.runId === run.id) {
      await this.#slots.cleanup({
        keepPreviousSeconds: Number.MAX_SAFE_INTEGER,
        now: new Date(),
        makeRoom: false,
        log: ctx.log,
        signal: ctx.signal,
      });
    }
    return 'the current copy was not changed';
  }

  /** Exchanges current and previous (a rollback journal), so the previous copy serves again and the other is kept. */
  async rollback(ctx: PhaseContext): Promise<PhaseDetail> {
    let journal = this.#slots.journal();
    if (!journal) {
      const current = this.#slots.slot('current');
      const previous = this.#slots.slot('previous');
      if (previous.kind !== 'ours')
        throw new PhaseFailure(
          'unsafe-target',
          previous.kind === 'missing'
            ? `no previous copy is kept in ${this.#slots.paths.previous} (keepPrevious has passed, or a refresh replaced it); nothing was changed`
            : `${previous.reason}; nothing was changed`,
        );
      if (current.kind !== 'ours')
        throw new PhaseFailure('unsafe-target', `${this.#slots.paths.current} holds no copy of this job; nothing was changed`);
      journal = {
        kind: 'rollback',
        job: this.#job.name,
        runId: ctx.runId,
        incoming: previous.runId,
        outgoing: current.runId,
        startedAt: new Date().toISOString(),
      };
      await this.#slots.writeJournal(journal);
    } else if (journal.kind !== 'rollback' || journal.runId !== ctx.runId) {
      // Another run's swap or rollback was interrupted: finish it first, then roll back from there.
      await this.#slots.run({ ...ctx, drainSeconds: 0, now: () => new Date() });
      return this.rollback(ctx);
    }
    const outcome = await this.#slots.run({ ...ctx, drainSeconds: this.#strategy.drainSeconds, now: () => new Date() });
    return {
      from: journal.outgoing,
      to: journal.incoming,
      downtimeMs: outcome.downtimeMs,
      steps: outcome.steps.map((s) => `${s.step} (${s.ms} ms)`),
    };
  }

  async reap(ctx: PhaseContext): Promise<PhaseDetail> {
    const journal = this.#slots.journal();
    const finished = journal ? await this.#slots.run({ ...ctx, drainSeconds: 0, now: () => new Date() }) : undefined;
    const removed = await this.#slots.cleanup({
      keepPreviousSeconds: this.#strategy.keepPreviousSeconds,
      now: new Date(),
      makeRoom: false,
      log: ctx.log,
      signal: ctx.signal,
    });
    const retired = this.#slots.retired();
    const kept = this.#slots.slot('previous').kind === 'ours' && retired;
    return {
      ...(finished ? { finished: `${journal?.kind} of run ${journal?.runId}` } : {}),
      removed,
      ...(kept ? { keptUntil: new Date(Date.parse(retired.retiredAt) + this.#strategy.keepPreviousSeconds * 1000).toISOString() } : {}),
    };
  }

  /** Client sessions on a copy, for draining before its fast shutdown (the job's SQL role sees every session's pid). */
  async #countClients(port: number): Promise<number | undefined> {
    if (!this.#sql) return undefined;
    const endpoint = { ...this.#current.endpoint('postgres'), port };
    const rows = await this.#sql.withSession(endpoint, 'postgres', (s) =>
      s.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
      ),
    );
    return Number(rows[0]?.n ?? 0);
  }
}

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host, port: 0 }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The OS user PostgreSQL runs as when db-refresher is root; preflight reports a lookup failure, so none here. */
function runAsOf(env: NodeJS.ProcessEnv) {
  try {
    return serverOsUser(env);
  } catch {
    return undefined;
  }
}
