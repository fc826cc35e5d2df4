/**
 * A duration for people: `850 ms`, `12.5 s`, `3 min 30 s`, `1 h 5 min`. The
 * one formatter for the CLI, its live display and notifications. Below 59.95 s
 * one decimal is shown; from there whole seconds, so rounding never yields
 * "60 s" or "60.0 s". `unknown` is what to show when the record has no
 * duration (a phase that did not run).
 */
export function formatDuration(ms: number | undefined, unknown = ''): string {
  if (ms === undefined) return unknown;
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 59_950) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}
