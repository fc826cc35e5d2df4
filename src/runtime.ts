import type { Config } from './config/types.js';
import { FileRunStore } from './history/file-store.js';
import { createNotifier } from './notify/index.js';
import type { Logger } from './observe/logger.js';
import { systemClock } from './ports.js';
import { PgConnector } from './postgres/sql.js';
import { JobLocks } from './runner/lock.js';
import { type RunEvent, Runner } from './runner/runner.js';
import { createTarget } from './target/create.js';

/**
 * Builds the real implementations behind the ports and wires them into a
 * Runner. Every run event goes to the notifier and to any extra listeners
 * (the CLI's progress display, the service's metrics).
 */
export function buildRunner(
  config: Config,
  log: Logger,
  options: { env?: NodeJS.ProcessEnv; onEvent?: (event: RunEvent) => void; listeners?: Array<(event: RunEvent) => void> } = {},
) {
  const store = new FileRunStore(config.stateDir);
  const notifier = createNotifier(config, log);
  const listeners = [
    (event: RunEvent) => notifier.runEvent(event),
    ...(options.onEvent ? [options.onEvent] : []),
    ...(options.listeners ?? []),
  ];
  const runner = new Runner({
    store,
    locks: new JobLocks(config.stateDir),
    sql: new PgConnector(),
    clock: systemClock,
    log,
    targetFor: (job) => createTarget(config, job, options.env),
    onEvent: (event) => {
      for (const listener of listeners) {
        try {
          listener(event);
        } catch (error) {
          // One broken listener must not keep the others from hearing about the run.
          log.warn({ err: error, event: event.type }, 'run event listener failed');
        }
      }
    },
  });
  return { runner, store, notifier };
}
