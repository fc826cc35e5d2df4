import { isRefresherError, PhaseFailure, RefresherError } from '../errors.js';
import { classifyError, FAILURE_HINTS } from '../failures.js';
import type { PhaseName, RunError } from '../run/record.js';

/** What a phase ended in, as the record's error: an abort, a failure the phase named, or an error the classifier names. */
export function toRunError(phase: PhaseName, error: unknown, signal: AbortSignal): RunError {
  if (signal.aborted) {
    return {
      phase,
      class: 'interrupted',
      message: `stopped during ${phase}: ${String(signal.reason?.message ?? signal.reason)}`,
      hint: FAILURE_HINTS.interrupted,
    };
  }
  if (error instanceof PhaseFailure) {
    return {
      phase,
      class: error.failureClass,
      message: error.message,
      hint: error.hint ?? FAILURE_HINTS[error.failureClass],
      ...(error.details.length ? { details: [...error.details] } : {}),
    };
  }
  const failureClass = classifyError(error);
  const message = error instanceof Error ? error.message : String(error);
  return {
    phase,
    class: failureClass,
    message: isRefresherError(error) ? error.message : `${phase} failed: ${message}`,
    hint: (error instanceof RefresherError && error.hint) || FAILURE_HINTS[failureClass],
  };
}
