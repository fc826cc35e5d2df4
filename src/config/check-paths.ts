import path from 'node:path';
import type { RawConfig } from './schema.js';

/**
 * Where a local target's data directory may be. A refresh deletes the directory
 * and everything in it, so `validate` refuses places where that is never what
 * was meant: the root of the file system, the state directory itself or its
 * own folders (the run history and locks would go with the copy, or the copy
 * would be cloned among them), and any directory containing the state directory. Pure: paths are compared as written, resolved
 * against the config file's folder; preflight checks the real directories again.
 */

/**
 * What db-refresher itself keeps in the state directory. A copy beside them
 * (e.g. <stateDir>/copies/<job>) is fine: in Kubernetes the state volume is
 * the only persistent place a local copy can live.
 */
const OWN_FOLDERS = ['runs', 'locks', 'jobs'];

/** True when `inner` is `outer` or lies inside it. */
function within(inner: string, outer: string): boolean {
  const relative = path.relative(outer, inner);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

export function checkTargetPaths(config: RawConfig, resolvePath: (p: string) => string): string[] {
  const problems: string[] = [];
  const stateDir = resolvePath(config.stateDir);
  config.jobs.forEach((job, i) => {
    if (job.target.kind !== 'local') return;
    const at = `jobs[${i}].target.dataDir`;
    const dataDir = resolvePath(job.target.dataDir);
    if (path.parse(dataDir).root === dataDir) {
      problems.push(
        `${at}: ${dataDir} is the root of the file system; a refresh replaces the whole directory. Give the copy a directory of its own, e.g. /var/lib/db-refresher/${job.name}`,
      );
    } else if (dataDir === stateDir || OWN_FOLDERS.some((folder) => within(dataDir, path.join(stateDir, folder)))) {
      problems.push(
        `${at}: ${dataDir} is inside the state directory's ${OWN_FOLDERS.join(', ')} folders or is the state directory ${stateDir} itself, which hold the run history and locks; put the copy in a directory of its own (e.g. ${path.join(stateDir, 'copies', job.name)})`,
      );
    } else if (within(stateDir, dataDir)) {
      problems.push(
        `${at}: ${dataDir} contains the state directory ${stateDir} (stateDir); a refresh would delete the run history and locks. Put the copy in a directory of its own`,
      );
    }
  });
  return problems;
}
