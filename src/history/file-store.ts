import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { JobSuspension, RunStore } from '../ports.js';
import { type RunRecord, TERMINAL_RUN_STATUSES } from '../run/record.js';
import { isSuccess, mayPrune } from './retention.js';

/**
 * Run records as one JSON file each: <stateDir>/runs/<job>/<run id>.json.
 * Every save writes a temporary file, fsyncs it and renames it over the old
 * one, so a crash leaves either the previous record or the new one, never half.
 * Run ids sort by creation time, so listing is a directory read and a sort.
 * Bounded like the Kubernetes store: after a finished record is saved, finished
 * records beyond the newest `keepRuns` of its job are deleted, except the
 * job's newest successful refresh; an unfinished one is never deleted, however
 * old (./retention.ts).
 */
export class FileRunStore implements RunStore {
  readonly #root: string;
  readonly #keep: number;
  /**
   * Which job each known run id belongs to, so that get(id) reads one file
   * instead of trying every job's directory (40 ms with 1,000 jobs). Filled by
   * save, list and a scan when get meets an id it does not know (a run written
   * by another process, or before this one started).
   */
  readonly #jobOf = new Map<string, string>();
  /** Each job's newest successful refresh, as far as this process knows (null: it has none). */
  readonly #newestSuccess = new Map<string, string | null>();

  constructor(stateDir: string, options: { keepRuns?: number } = {}) {
    this.#root = path.join(stateDir, 'runs');
    this.#keep = options.keepRuns ?? Number.POSITIVE_INFINITY;
  }

  #file(job: string, id: string): string {
    return path.join(this.#root, job, `${id}.json`);
  }

  async save(run: RunRecord): Promise<void> {
    await writeAtomically(this.#file(run.job, run.id), run);
    this.#jobOf.set(run.id, run.job);
    if (isSuccess(run) && run.id > (this.#newestSuccess.get(run.job) ?? '')) this.#newestSuccess.set(run.job, run.id);
    if (TERMINAL_RUN_STATUSES.has(run.status)) await this.#prune(run.job);
  }

  async #ids(job: string): Promise<string[]> {
    return (await readdir(path.join(this.#root, job)))
      .filter((n) => n.endsWith('.json'))
      .map((n) => n.slice(0, -'.json'.length))
      .sort()
      .reverse();
  }

  async #read(job: string, id: string): Promise<RunRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.#file(job, id), 'utf8')) as RunRecord;
    } catch {
      return undefined; // Unreadable or gone: not ours to judge here.
    }
  }

  /** The job's newest successful refresh: read once per job (newest first, until one is found), then kept current by save. */
  async #newestSuccessOf(job: string, newestFirst: readonly string[]): Promise<string | undefined> {
    if (!this.#newestSuccess.has(job)) {
      let found: string | null = null;
      for (const id of newestFirst) {
        const run = await this.#read(job, id);
        if (run && isSuccess(run)) {
          found = id;
          break;
        }
      }
      if (!this.#newestSuccess.has(job)) this.#newestSuccess.set(job, found);
    }
    return this.#newestSuccess.get(job) ?? undefined;
  }

  async #prune(job: string): Promise<void> {
    const ids = await this.#ids(job);
    if (ids.length <= this.#keep) return;
    let success = await this.#newestSuccessOf(job, ids);
    for (const id of ids.slice(this.#keep)) {
      if (id === success) continue;
      const run = await this.#read(job, id);
      // A newer success than this process knew of was written by another process (`db-refresher run`).
      if (run && isSuccess(run) && id > (success ?? '')) {
        success = id;
        this.#newestSuccess.set(job, id);
        continue;
      }
      if (run && mayPrune(run, success)) {
        await unlink(this.#file(job, id)).catch(() => undefined);
        this.#jobOf.delete(id);
      }
    }
  }

  /** The job's newest successful refresh, however many records came after it (read newest first until found). */
  async lastSuccess(job: string): Promise<RunRecord | undefined> {
    let ids: string[];
    try {
      ids = await this.#ids(job);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    for (const id of ids) {
      const run = await this.#read(job, id);
      if (run && isSuccess(run)) {
        if (id > (this.#newestSuccess.get(job) ?? '')) this.#newestSuccess.set(job, id);
        return run;
      }
    }
    return undefined;
  }

  /** Every unfinished record of the job, newest first (reads each of its records: used at service start). */
  async unfinished(job: string): Promise<RunRecord[]> {
    let ids: string[];
    try {
      ids = await this.#ids(job);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const runs: RunRecord[] = [];
    for (const id of ids) {
      const run = await this.#read(job, id);
      if (run && !TERMINAL_RUN_STATUSES.has(run.status)) runs.push(run);
      if (run) this.#jobOf.set(id, job);
    }
    return runs;
  }

  async get(id: string): Promise<RunRecord | undefined> {
    if (!/^[0-9TZ]+-[0-9a-f]+$/.test(id)) return undefined;
    if (!this.#jobOf.has(id)) await this.#scan();
    const job = this.#jobOf.get(id);
    if (job === undefined) return undefined;
    try {
      return JSON.parse(await readFile(this.#file(job, id), 'utf8')) as RunRecord;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      this.#jobOf.delete(id); // Deleted behind our back.
      return undefined;
    }
  }

  async #scan(): Promise<void> {
    for (const job of await this.#jobs()) {
      for (const name of await readdir(path.join(this.#root, job)).catch(() => [])) {
        if (name.endsWith('.json')) this.#jobOf.set(name.slice(0, -'.json'.length), job);
      }
    }
  }

  async list(job: string, options: { limit?: number; before?: string } = {}): Promise<RunRecord[]> {
    let names: string[];
    try {
      names = await readdir(path.join(this.#root, job));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const ids = names
      .filter((n) => n.endsWith('.json'))
      .map((n) => n.slice(0, -'.json'.length))
      .filter((id) => options.before === undefined || id < options.before)
      .sort()
      .reverse()
      .slice(0, options.limit ?? 50);
    for (const id of ids) this.#jobOf.set(id, job);
    const runs: RunRecord[] = [];
    for (const id of ids) runs.push(JSON.parse(await readFile(this.#file(job, id), 'utf8')) as RunRecord);
    return runs;
  }

  async #jobs(): Promise<string[]> {
    try {
      return await readdir(this.#root);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  /** Job settings live beside the runs, in <stateDir>/jobs/<job>.json, so listing runs never meets them. */
  #settingsFile(job: string): string {
    return path.join(path.dirname(this.#root), 'jobs', `${job}.json`);
  }

  async getSuspension(job: string): Promise<JobSuspension | undefined> {
    try {
      return (JSON.parse(await readFile(this.#settingsFile(job), 'utf8')) as { suspension?: JobSuspension }).suspension;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async saveSuspension(job: string, suspension: JobSuspension): Promise<void> {
    await writeAtomically(this.#settingsFile(job), { suspension });
  }

  /** Removes temporary files a crash left behind. */
  async sweep(): Promise<void> {
    for (const job of await this.#jobs()) {
      for (const name of await readdir(path.join(this.#root, job))) {
        if (name.endsWith('.tmp')) await unlink(path.join(this.#root, job, name)).catch(() => undefined);
      }
    }
  }
}

/** Writes a temporary file, fsyncs it and renames it over `file`: a crash leaves the old content or the new, never half. */
async function writeAtomically(file: string, value: unknown): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  const handle = await open(temp, 'w', 0o640);
  try {
    await handle.writeFile(`${JSON.stringify(value, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
}
