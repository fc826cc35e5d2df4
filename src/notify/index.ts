import type { Config } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import { type Notifier, silentNotifier } from '../ports.js';

/** Builds the notifier for a loaded config. Delivery is not implemented yet: nothing is sent. */
export function createNotifier(_config: Config, _log: Logger): Notifier {
  return silentNotifier;
}
