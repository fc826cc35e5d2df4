import { readdirSync } from 'node:fs';
import { readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isTrashNameFor, TRASH_MARKER_FILE, type TrashMarker, trashDirFor } from './commands.js';

/**
 * Crash-safe removal of directories db-refresher made. A directory is first
 * marked and renamed aside in one atomic step, so the data directory path
 * either holds the whole old copy or nothing; the aside directory is then
 * emptied with its marker removed last, so at every instant it is either
 * recognisably ours or empty. The next run (or service start) finishes what
 * a kill interrupted.
 */

/** Deletes everything in `dir` except `keep`, then `keep`, then `dir` itself. */
export async function removeMarkedLast(dir: string, keep: string): Promise<void> {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  for (const name of entries) {
    if (name !== keep) await rm(path.join(dir, name), { recursive: true, force: true });
  }
  await rm(path.join(dir, keep), { force: true });
  await rmdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}

/** Marks the old copy as trash of this job and run, and moves it aside. Returns where it went. */
export async function moveToTrash(input: { dataDir: string; job: string; runId: string }): Promise<string> {
  const trash = trashDirFor(input.dataDir, input.runId);
  const marker: TrashMarker = { managedBy: 'db-refresher', job: input.job, dataDir: input.dataDir, runId: input.runId };
  await writeFile(path.join(input.dataDir, TRASH_MARKER_FILE), `${JSON.stringify(marker)}\n`, { mode: 0o600 });
  await rename(input.dataDir, trash);
  return trash;
}

async function trashMarkerOf(dir: string): Promise<TrashMarker | undefined> {
  try {
    const marker = JSON.parse(await readFile(path.join(dir, TRASH_MARKER_FILE), 'utf8')) as TrashMarker;
    return marker.managedBy === 'db-refresher' ? marker : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Deletes this job's trash beside dataDir: directories with its name pattern
 * whose trash marker names this job and this data directory, or that are
 * empty (a kill after the marker went). Anything else is left alone.
 */
export async function emptyTrash(dataDir: string, job: string): Promise<string[]> {
  const parent = path.dirname(dataDir);
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names.filter((n) => isTrashNameFor(dataDir, n))) {
    const dir = path.join(parent, name);
    const marker = await trashMarkerOf(dir);
    let empty = false;
    try {
      empty = readdirSync(dir).length === 0;
    } catch {
      continue;
    }
    if ((marker && marker.job === job && path.resolve(marker.dataDir) === path.resolve(dataDir)) || empty) {
      await removeMarkedLast(dir, TRASH_MARKER_FILE);
      removed.push(dir);
    }
  }
  return removed;
}
