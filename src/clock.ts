import type { Clock } from './ports.js';

/** The real clock; everything else gets a Clock passed in, so tests can move time. */
export const systemClock: Clock = { now: () => new Date() };
