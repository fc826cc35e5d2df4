import type { Notifier } from '../ports.js';

/** A notifier that tells no one (tests, commands without notifications). */
export const silentNotifier: Notifier = {
  runEvent: () => undefined,
  skipped: () => undefined,
  upcoming: () => undefined,
  flush: async () => undefined,
};
