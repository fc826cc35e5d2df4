/**
 * setTimeout takes a 32-bit signed delay: anything larger fires after 1 ms
 * (with a TimeoutOverflowWarning). Every delay computed from configuration
 * goes through here, so a long timeout waits as long as it can instead.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export function timerMs(ms: number): number {
  if (!Number.isFinite(ms)) return MAX_TIMER_MS;
  return Math.min(Math.max(0, Math.ceil(ms)), MAX_TIMER_MS);
}
