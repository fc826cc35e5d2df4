import { existsSync, readFileSync } from 'node:fs';
import { appendFile, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { PhaseFailure } from '../../errors.js';
import type { Logger } from '../../observe/logger.js';
import { discoverPgBinDirs } from '../../postgres/binaries.js';
import { runCommand } from '../../postgres/command.js';
import type { OsUser } from '../../postgres/os-user.js';
import { MARKER_FILE, type Marker, pgCtlSignalStopArgs, pgCtlStartArgs, SERVER_LOG_FILE } from './commands.js';
import { readMarker, runningServer, waitUntilStopped } from './data-dir.js';
import {
  cleanupSteps,
  type LocalSwapView,
  nextSwapStep,
  portSetting,
  type Slot,
  type SlotView,
  type SwapJournal,
  type SwapStep,
  slotPaths,
} from './swap-plan.js';

/**
 * The effects of the local blue/green swap: reading the three slots from disk, and carrying out one
 * step of local-plan.ts at a time. Every step is idempotent and followed by a fresh look at the disk,
 * so a kill at any instant is continued by the next call of run() with the same journal.
 */

export const RETIRED_FILE = 'db-refresher-retired.json';

/** How long a fast shutdown may take (what `pgCtlStopArgs` gives pg_ctl). */
const STOP_TIMEOUT_MS = 120_000;

export interface LocalSlotsOptions {
  job: string;
  dataDir: string;
  host: string;
  port: number;
  runAs: OsUser | undefined;
  env: NodeJS.ProcessEnv;
  startTimeoutSeconds: number;
  /** Client sessions on the copy in a slot (for draining); undefined when it cannot be asked. */
  countClients?: (port: number) => Promise<number | undefined>;
  /** A CHECKPOINT on the copy serving on a port; throws when the role may not. */
  checkpoint?: (port: number) => Promise<void>;
}

export interface StepOutcome {
  step: string;
  detail: string;
  ms: number;
}

export interface SwapOutcome {
  steps: StepOutcome[];
  /** From the moment the old copy began its fast shutdown until the new one accepted connections. */
  downtimeMs: number | undefined;
  drainedMs: number | undefined;
}

export class LocalSlots {
  readonly #o: LocalSlotsOptions;
  readonly paths: ReturnType<typeof slotPaths>;

  constructor(options: LocalSlotsOptions) {
    this.#o = options;
    this.paths = slotPaths(options.dataDir);
  }

  /** What one slot holds. A marker must name this job and one of this job's slot paths. */
  slot(slot: Slot): SlotView {
    const dir = this.paths[slot];
    if (!existsSync(dir)) return { kind: 'missing' };
    const marker = readMarker(dir);
    if (!marker) return { kind: 'foreign', reason: `${dir} has no db-refresher marker` };
    if (marker.job !== this.#o.job) return { kind: 'foreign', reason: `${dir} belongs to job "${marker.job}"` };
    const family = [this.paths.current, this.paths.next, this.paths.previous].map((p) => path.resolve(p));
    if (!family.includes(path.resolve(marker.dataDir)))
      return { kind: 'foreign', reason: `${dir} has a marker written for ${marker.dataDir}; it was copied here from elsewhere` };
    const auto = readText(path.join(dir, 'postgresql.auto.conf'));
    return { kind: 'ours', runId: marker.runId, configuredPort: portSetting(auto), runningPort: runningServer(dir)?.port };
  }

  view(): LocalSwapView {
    return {
      current: this.slot('current'),
      next: this.slot('next'),
      previous: this.slot('previous'),
      journal: this.journal(),
      port: this.#o.port,
    };
  }

  journal(): SwapJournal | undefined {
    const text = readText(this.paths.journal);
    if (!text) return undefined;
    try {
      const journal = JSON.parse(text) as SwapJournal;
      return journal.job === this.#o.job ? journal : undefined;
    } catch {
      // A torn write cannot happen (written to a temp file, then renamed); anything else is not ours.
      return undefined;
    }
  }

  async writeJournal(journal: SwapJournal): Promise<void> {
    await writeDurably(this.paths.journal, `${JSON.stringify(journal, null, 2)}\n`);
  }

  retired(): { retiredAt: string; byRun: string } | undefined {
    try {
      return JSON.parse(readFileSync(path.join(this.paths.previous, RETIRED_FILE), 'utf8')) as { retiredAt: string; byRun: string };
    } catch {
      return undefined;
    }
  }

  /** Drives the journal's swap or rollback to its end; throws a PhaseFailure on a refusal. */
  async run(ctx: { log: Logger; signal: AbortSignal; drainSeconds: number; now: () => Date }): Promise<SwapOutcome> {
    const steps: StepOutcome[] = [];
    let stopStarted: number | undefined;
    let downtimeMs: number | undefined;
    let drainedMs: number | undefined;
    for (let guard = 0; guard < 20; guard++) {
      const journal = this.journal();
      if (!journal) break;
      const step = nextSwapStep(this.view(), this.retired()?.byRun === journal.runId);
      if (step.step === 'refuse') {
        throw new PhaseFailure('unsafe-target', `${journal.kind === 'swap' ? 'the swap' : 'the rollback'} stopped: ${step.message}`);
      }
      const started = performance.now();
      if (step.step === 'stop' && step.slot === 'current' && step.drain) {
        drainedMs = await this.#drain(ctx.drainSeconds, ctx);
        const checkpoint = await this.#checkpointBeforeStop(ctx.log);
        if (checkpoint) steps.push(checkpoint);
        stopStarted = performance.now();
      }
      const detail = await this.apply(step, { ...ctx, journal });
      if (step.step === 'start' && stopStarted !== undefined) downtimeMs = Math.round(performance.now() - stopStarted);
      steps.push({ step: describeStep(step), detail, ms: Math.round(performance.now() - started) });
      ctx.log.info({ step: describeStep(step), detail }, 'swap step done');
      if (step.step === 'finish') break;
      await this.#pauseForTest(step, ctx);
    }
    return { steps, downtimeMs, drainedMs };
  }

  /** One step. Safe to repeat: each looks at the disk itself before acting. */
  async apply(step: SwapStep, ctx: { log: Logger; signal: AbortSignal; now: () => Date; journal?: SwapJournal }): Promise<string> {
    switch (step.step) {
      case 'stop':
        return this.#stop(this.paths[step.slot], ctx.signal);
      case 'retarget':
        return this.#retarget(this.paths[step.slot], step.port, ctx.journal?.runId ?? 'unknown');
      case 'move': {
        const from = this.paths[step.from];
        const to = this.paths[step.to];
        if (existsSync(to)) throw new PhaseFailure('unsafe-target', `cannot move ${from} to ${to}: ${to} exists`);
        await rename(from, to);
        return `${from} → ${to}`;
      }
      case 'remove':
        return this.#remove(step.slot, step.why, ctx.signal);
      case 'start':
        return this.#start(ctx.signal);
      case 'mark-retired': {
        const retiredAt = ctx.now().toISOString();
        await writeDurably(
          path.join(this.paths.previous, RETIRED_FILE),
          JSON.stringify({ retiredAt, byRun: ctx.journal?.runId ?? 'unknown' }),
        );
        return `previous copy retired at ${retiredAt}`;
      }
      case 'finish':
        await rm(this.paths.journal, { force: true });
        return 'journal removed';
      case 'refuse':
        throw new PhaseFailure('unsafe-target', step.message);
    }
  }

  /** Outside a swap: half-made copies go; the previous copy goes when keepPrevious has passed (or to make room). */
  async cleanup(input: { keepPreviousSeconds: number; now: Date; makeRoom: boolean; log: Logger; signal: AbortSignal }): Promise<string[]> {
    if (this.journal()) return [];
    const done: string[] = [];
    const steps = cleanupSteps({
      next: this.slot('next'),
      previous: this.slot('previous'),
      retiredAt: this.retired()?.retiredAt,
      keepPreviousSeconds: input.keepPreviousSeconds,
      now: input.now,
      makeRoom: input.makeRoom,
    });
    for (const step of steps) done.push(await this.apply(step, { log: input.log, signal: input.signal, now: () => input.now }));
    return done;
  }

  /**
   * Crash tests only: DB_REFRESHER_TEST_PAUSE_AFTER_SWAP_STEP=<step key> (e.g. `move-current-previous`)
   * makes the process wait after that step until it is killed, so a test can SIGKILL a real
   * `db-refresher run` between any two steps instead of racing them (the two renames are microseconds
   * apart). Unset in production; it changes no state.
   */
  async #pauseForTest(step: SwapStep, ctx: { log: Logger; signal: AbortSignal }): Promise<void> {
    const wanted = this.#o.env.DB_REFRESHER_TEST_PAUSE_AFTER_SWAP_STEP;
    if (!wanted || wanted !== swapStepKey(step)) return;
    ctx.log.warn({ step: swapStepKey(step) }, 'swap paused for a crash test (DB_REFRESHER_TEST_PAUSE_AFTER_SWAP_STEP)');
    // Only a kill or an abort ends the pause; an abort must not go on to the next step.
    await new Promise<void>((_resolve, reject) => {
      const stop = () => reject(ctx.signal.reason ?? new Error('aborted'));
      if (ctx.signal.aborted) stop();
      else ctx.signal.addEventListener('abort', stop, { once: true });
    });
  }

  /**
   * A fast shutdown writes every dirty buffer in its shutdown checkpoint, and
   * clients wait for all of it. A CHECKPOINT while the old copy still serves
   * leaves the shutdown little to write, however much testers wrote (the same
   * reason a switchover checkpoints first). Best effort: a role that may not
   * checkpoint only makes the stop as long as it was.
   */
  async #checkpointBeforeStop(log: Logger): Promise<StepOutcome | undefined> {
    if (!this.#o.checkpoint || !runningServer(this.paths.current)) return undefined;
    const started = performance.now();
    let detail = 'CHECKPOINT while the old copy still serves';
    try {
      await this.#o.checkpoint(this.#o.port);
    } catch (error) {
      detail = `skipped (${(error as Error).message}): the shutdown writes the dirty buffers instead`;
      log.debug({ err: error }, 'no CHECKPOINT before the swap');
    }
    return { step: 'checkpoint current', detail, ms: Math.round(performance.now() - started) };
  }

  async #drain(seconds: number, ctx: { log: Logger; signal: AbortSignal }): Promise<number> {
    const started = performance.now();
    const deadline = started + seconds * 1000;
    while (performance.now() < deadline && !ctx.signal.aborted) {
      const clients = await this.#o.countClients?.(this.#o.port).catch(() => undefined);
      if (clients === 0) break;
      await new Promise((resolve) => setTimeout(resolve, Math.min(200, Math.max(0, deadline - performance.now()))));
    }
    return Math.round(performance.now() - started);
  }

  #pgCtl(dir: string): string {
    const version = Number(readText(path.join(dir, 'PG_VERSION')).trim());
    const all = discoverPgBinDirs(this.#o.env);
    const bin = all.find((d) => d.major === version) ?? all[0];
    if (!bin) throw new PhaseFailure('version-mismatch', 'no PostgreSQL server binaries found');
    return path.join(bin.dir, 'pg_ctl');
  }

  async #stop(dir: string, signal: AbortSignal): Promise<string> {
    const running = runningServer(dir);
    if (!running) return `${dir} was not running`;
    // pg_ctl only signals (-W); the wait is ours, every 10 ms instead of pg_ctl's 100: the stop of the
    // serving copy is downtime.
    const result = await runCommand(this.#pgCtl(dir), pgCtlSignalStopArgs(dir), {
      runAs: this.#o.runAs,
      signal,
    });
    if (result.exitCode !== 0 && runningServer(dir))
      throw new PhaseFailure('unknown', `pg_ctl stop failed for ${dir} (exit ${result.exitCode})`, { details: result.tail });
    if (!(await waitUntilStopped(dir, { signal, timeoutMs: STOP_TIMEOUT_MS })))
      throw new PhaseFailure('timeout', `the copy in ${dir} did not shut down within ${STOP_TIMEOUT_MS / 1000} s`, {
        hint: `Its server log (${SERVER_LOG_FILE} in the data directory) says what it waits for.`,
      });
    return `stopped ${dir} (pid ${running.pid}, fast shutdown)`;
  }

  /** Points a stopped copy at the job's port and its marker at the current slot, where it is going. */
  async #retarget(dir: string, port: number, runId: string): Promise<string> {
    const auto = path.join(dir, 'postgresql.auto.conf');
    if (portSetting(readText(auto)) !== port) {
      await appendFile(auto, `\n# Added by db-refresher (run ${runId}): the swap moves this copy to the job's port.\nport = ${port}\n`);
    }
    const marker = readMarker(dir);
    if (marker && path.resolve(marker.dataDir) !== path.resolve(this.paths.current)) {
      const updated: Marker = { ...marker, dataDir: this.paths.current };
      await writeDurably(path.join(dir, MARKER_FILE), `${JSON.stringify(updated, null, 2)}\n`);
    }
    return `${dir} now listens on port ${port}`;
  }

  async #start(signal: AbortSignal): Promise<string> {
    const dir = this.paths.current;
    if (runningServer(dir)) return `${dir} already running`;
    const result = await runCommand(this.#pgCtl(dir), pgCtlStartArgs({ dataDir: dir, timeoutSeconds: this.#o.startTimeoutSeconds }), {
      runAs: this.#o.runAs,
      signal,
    });
    if (result.exitCode !== 0) {
      const log = readText(path.join(dir, SERVER_LOG_FILE)).split('\n').filter(Boolean).slice(-10);
      throw new PhaseFailure('unknown', `the copy did not start on ${this.#o.host}:${this.#o.port}`, { details: [...result.tail, ...log] });
    }
    return `started ${dir} on ${this.#o.host}:${this.#o.port}`;
  }

  /** Moved aside first (one rename), then deleted: a kill midway leaves a trash folder, never half a slot. */
  async #remove(slot: Slot, why: string, signal: AbortSignal): Promise<string> {
    const dir = this.paths[slot];
    const view = this.slot(slot);
    if (view.kind === 'missing') return `${dir} already gone`;
    if (view.kind !== 'ours') throw new PhaseFailure('unsafe-target', `${dir} is not this job's copy (${view.reason}); not removed`);
    if (view.runningPort !== undefined) await this.#stop(dir, signal);
    const trash = `${dir}.db-refresher-trash`;
    await rm(trash, { recursive: true, force: true });
    await rename(dir, trash);
    await rm(trash, { recursive: true, force: true });
    return `removed ${dir} (${why})`;
  }
}

export function describeStep(step: SwapStep): string {
  switch (step.step) {
    case 'stop':
      return `stop ${step.slot}`;
    case 'retarget':
      return `retarget ${step.slot} to port ${step.port}`;
    case 'move':
      return `move ${step.from} → ${step.to}`;
    case 'remove':
      return `remove ${step.slot}`;
    case 'start':
      return 'start current';
    case 'mark-retired':
      return 'mark previous retired';
    case 'finish':
      return 'finish';
    case 'refuse':
      return 'refuse';
  }
}

/** A step as one word-list for DB_REFRESHER_TEST_PAUSE_AFTER_SWAP_STEP: `stop-current`, `move-next-current`, `start-current`. */
export function swapStepKey(step: SwapStep): string {
  return describeStep(step)
    .replace(/ to port \d+$/, '')
    .replace(/ → | /g, '-');
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Temp file, fsync, rename: the file is either the old or the new content, never half of one. */
async function writeDurably(file: string, content: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
}
