import type { Config } from './config/types.js';
import { FileRunStore } from './history/file-store.js';
import type { Logger } from './observe/logger.js';
import { systemClock } from './ports.js';
import { PgConnector } from './postgres/sql.js';
import { JobLocks } from './runner/lock.js';
import { type RunEvent, Runner } from './runner/runner.js';
import { createTarget } from './target/create.js';

/** Builds the real implementations behind the ports and wires them into a Runner. */
export function buildRunner(config: Config, log: Logger, options: { env?: NodeJS.ProcessEnv; onEvent?: (event: RunEvent) => void } = {}) {
  const store = new FileRunStore(config.stateDir);
  const runner = new Runner({
    store,
    locks: new JobLocks(config.stateDir),
    sql: new PgConnector(),
    clock: systemClock,
    log,
    targetFor: (job) => createTarget(config, job, options.env),
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
  });
  return { runner, store };
}
