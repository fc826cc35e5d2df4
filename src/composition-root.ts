import { systemClock } from './clock.js';
import type { Config } from './config/types.js';
import { FileRunStore } from './history/file-store.js';
import type { Kube } from './kube/client.js';
import { createNotifier } from './notify/index.js';
import type { Logger } from './observe/logger.js';
import type { Clock, Notifier, RunGate, RunStore } from './ports.js';
import { PgConnector } from './postgres/sql.js';
import type { RunEvent } from './run/events.js';
import { JobLocks } from './runner/lock.js';
import { Runner } from './runner/runner.js';
import { createTarget } from './targets/create.js';

/**
 * Builds the real implementations behind the ports and wires them into a
 * Runner. Every run event goes to the notifier and to any extra listeners
 * (the CLI's progress display, the service's metrics).
 */
export function buildRunner(
  config: Config,
  log: Logger,
  options: {
    env?: NodeJS.ProcessEnv;
    kube?: Kube;
    onEvent?: (event: RunEvent) => void;
    listeners?: Array<(event: RunEvent) => void>;
    /** The service passes the store its config chooses, its concurrency gate, one notifier for everything, and its clock. */
    store?: RunStore;
    gate?: RunGate;
    notifier?: Notifier;
    clock?: Clock;
  } = {},
) {
  const sql = new PgConnector();
  const history = config.server.history;
  const store = options.store ?? new FileRunStore(config.stateDir, history.kind === 'file' ? { keepRuns: history.keepRuns } : {});
  const notifier = options.notifier ?? createNotifier(config, log);
  const listeners = [
    (event: RunEvent) => notifier.runEvent(event),
    ...(options.onEvent ? [options.onEvent] : []),
    ...(options.listeners ?? []),
  ];
  const clock = options.clock ?? systemClock;
  const runner = new Runner({
    store,
    locks: new JobLocks(config.stateDir, options.clock ?? systemClock),
    sql,
    clock,
    ...(options.gate ? { gate: options.gate } : {}),
    log,
    targetFor: (job) =>
      createTarget(config, job, {
        sql,
        clock,
        ...(options.env ? { env: options.env } : {}),
        ...(options.kube ? { kube: options.kube } : {}),
      }),
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
