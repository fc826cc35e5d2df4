import { PhaseFailure } from '../../errors.js';
import { FAILURE_HINTS, type FailureClass } from '../../failures.js';
import type { KubeObject } from '../../kube/retry.js';
import type { Clock, PhaseContext } from '../../ports.js';
import type { ClusterApi } from './cluster-api.js';
import { classifyPodLog, currentOutage, readableLine } from './pod-log.js';
import { cloneJobName, decideReadiness } from './readiness.js';
import { type ResourceSet, WaitTimeout, waitUntil } from './watch.js';

/**
 * The start phase's wait: watch the new Cluster and its clone Job until the
 * readiness decision says healthy, and turn every way of not getting there
 * (a phase that needs a person, a failed Job, a source that stays away, the
 * ready timeout) into a PhaseFailure that explains itself with the Job's log.
 */

export interface WaitReadyInput {
  api: ClusterApi;
  clock: Clock;
  ctx: PhaseContext;
  instances: number;
  readyTimeoutSeconds: number;
  sourceUnavailableGraceSeconds: number;
}

export async function waitUntilReady(input: WaitReadyInput): Promise<void> {
  const { api, clock, ctx } = input;
  const sets = await api.watchedSets();
  const watched = [sets.cluster, sets.jobs] as ResourceSet<KubeObject>[];
  await Promise.all(watched.map((s) => s.start()));
  const jobName = cloneJobName(api.name);
  const graceMs = input.sourceUnavailableGraceSeconds * 1000;
  // The log is read while the Job runs, but not on every tick of a six-hour clone.
  const logEveryMs = Math.min(5000, Math.max(500, graceMs / 3));
  let lastPhase = '';
  let lastLogRead = Number.NEGATIVE_INFINITY;
  let outage: { firstLine: string; seenAt: number } | undefined;
  try {
    await waitUntil({
      sets: watched,
      signal: ctx.signal,
      tickMs: 1000,
      timeoutMs: input.readyTimeoutSeconds * 1000,
      timeoutMessage: () =>
        `the Cluster did not become healthy within ${input.readyTimeoutSeconds} s (last phase: "${lastPhase || 'none'}")`,
      check: async () => {
        const cluster = sets.cluster.items[0];
        const job = sets.jobs.items.find((j) => j.metadata?.name === jobName);
        const phase = cluster?.status?.phase;
        if (phase && phase !== lastPhase) {
          lastPhase = phase;
          ctx.progress({ phase });
          ctx.log.info({ clusterPhase: phase, reason: cluster?.status?.phaseReason }, 'Cluster phase changed');
        }
        const decision = decideReadiness({ cluster, job, instances: input.instances });
        if (decision.state === 'healthy') return true;
        if (decision.state === 'failed') {
          throw await explain(api, `${decision.cause} (${decision.why})`, {
            failureClass: decision.jobFailed ? undefined : 'target-stuck',
          });
        }
        const now = clock.now().getTime();
        if (!decision.jobActive || now - lastLogRead < logEveryMs) return undefined;
        lastLogRead = now;
        const lines = await api.jobLog(jobName);
        const current = currentOutage(lines);
        if (!current) {
          outage = undefined;
          return undefined;
        }
        // A new run of retry lines is a new outage: the count starts again from its first line.
        if (outage?.firstLine !== current.firstLine) outage = { firstLine: current.firstLine, seenAt: now };
        const lastedMs = Math.max(current.loggedMs ?? 0, now - outage.seenAt);
        if (lastedMs > graceMs) {
          throw await explain(
            api,
            `the clone Job has been logging "DB not available, will retry" for ${Math.round(lastedMs / 1000)} s (${current.retries} attempts in a row), longer than sourceUnavailableGraceSeconds (${input.sourceUnavailableGraceSeconds} s)`,
            { lines },
          );
        }
        return undefined;
      },
    });
  } catch (error) {
    if (error instanceof WaitTimeout) throw await explain(api, error.message, { forced: 'timeout' });
    throw error;
  } finally {
    await Promise.all(watched.map((s) => s.stop()));
  }
}

/**
 * A PhaseFailure whose class and evidence come from the clone Job's log, or
 * the given class when the log names no cause. A forced class (timeout) keeps
 * its own name, with the log's cause in the hint.
 */
async function explain(
  api: ClusterApi,
  what: string,
  options: { lines?: string[]; failureClass?: FailureClass | undefined; forced?: FailureClass },
): Promise<PhaseFailure> {
  const lines = options.lines ?? (await api.jobLog(cloneJobName(api.name)).catch(() => []));
  const { class: logClass, evidence } = classifyPodLog(lines);
  const relevant = lines.slice(-10).map(readableLine);
  const failureClass = options.forced ?? (logClass === 'unknown' ? (options.failureClass ?? 'unknown') : logClass);
  return new PhaseFailure(failureClass, `${what}${evidence.length ? ` — ${evidence.join(' | ')}` : ''}`, {
    details: relevant,
    // A timeout whose logs name a cause: the cause's hint helps more than "raise the timeout".
    ...(options.forced && logClass !== 'unknown' ? { hint: `The clone Job's log points at ${logClass}: ${FAILURE_HINTS[logClass]}` } : {}),
  });
}
