/**
 * Whether a run that ended left the target without a copy. Until blue/green
 * exists, teardown removes the old copy before the new one is made, so a
 * failure or an interruption from teardown on leaves nothing running until
 * the next successful run. People must read that wherever the run is shown:
 * the CLI, the JSON record, the API, notifications.
 */

export const TARGET_DOWN = 'The old copy was removed and no new copy is running: the target stays down until a refresh succeeds.';

export function targetLeftDown(phases: ReadonlyArray<{ name: string; status: string; startedAt?: string }>): boolean {
  const teardown = phases.find((p) => p.name === 'teardown');
  const start = phases.find((p) => p.name === 'start');
  return teardown?.startedAt !== undefined && start?.status !== 'succeeded';
}
