import type { PrepareStep } from '../config/prepare-files.js';
import type { SqlSession } from '../ports.js';
import { type CopyAccess, withCopySession } from './access.js';

/**
 * A prepare step's `timeoutSeconds` covers the whole step, not each of its
 * statements: when the step's time is up, the statement it is running is
 * cancelled from a second session (pg_cancel_backend), so a step of many
 * short statements stops too. statement_timeout stays as a second guard.
 */

export interface StepDeadline {
  /** Whether the step ran out of time (its last error is the cancellation). */
  readonly expired: boolean;
  /** Call once the step is done, successful or not. */
  clear(): void;
}

export function armStepDeadline(
  access: CopyAccess,
  step: PrepareStep,
  session: SqlSession,
  onCancelError: (error: Error) => void,
): StepDeadline {
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    const pid = session.backendPid();
    if (pid === undefined) return;
    withCopySession(access, access.maintenanceDatabase, (other) => other.query('SELECT pg_cancel_backend($1)', [pid])).catch(onCancelError);
  }, step.timeoutSeconds * 1000);
  timer.unref();
  return {
    get expired() {
      return expired;
    },
    clear: () => clearTimeout(timer),
  };
}

/** The words for a step that ran out of time. */
export function stepTimeoutMessage(step: PrepareStep): string {
  return `prepare step "${step.name}" in database "${step.database}" ran longer than its timeoutSeconds (${step.timeoutSeconds} s) and was cancelled`;
}
