import type { BlueGreenTarget, Target } from '../../ports.js';

/** Whether a target refreshes blue/green (it has the blue/green methods). */
export function isBlueGreen(target: Target): target is BlueGreenTarget {
  return (
    typeof (target as Partial<BlueGreenTarget>).swap === 'function' && typeof (target as Partial<BlueGreenTarget>).rollback === 'function'
  );
}
