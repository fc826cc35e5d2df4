import { PhaseFailure } from '../errors.js';

/**
 * Whether an error means "the copy's server could not be reached just now"
 * (refused, reset, cut during TLS, starting up or shutting down) rather than
 * a wrong query or a refusal: no SQLSTATE at all (a network error), or one of
 * class 08 (connection exception) or 57P (operator intervention: admin
 * shutdown, crash shutdown, cannot connect now). Pure.
 */
export function isReconnectable(error: unknown): boolean {
  if (error instanceof PhaseFailure) return false;
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return true;
  return code.startsWith('08') || code.startsWith('57P');
}

/**
 * Runs `work` again while it fails to reach the copy, up to `timeoutMs`.
 * A resumed `open` meets a CNPG primary that CloudNativePG is restarting in
 * place for the parameters the interrupted run already patched back (§10.1),
 * so its first sessions may be cut for a moment.
 */
export async function whileRestarting<T>(
  work: () => Promise<T>,
  options: { signal: AbortSignal; timeoutMs: number; pauseMs?: number; now?: () => number },
): Promise<T> {
  const now = options.now ?? Date.now;
  const deadline = now() + options.timeoutMs;
  for (;;) {
    try {
      return await work();
    } catch (error) {
      if (!isReconnectable(error) || now() >= deadline || options.signal.aborted) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, options.pauseMs ?? 500));
  }
}
