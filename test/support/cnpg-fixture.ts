import { inject } from 'vitest';
import { type SimulatedOperator, type SimulatedOperatorOptions, startSimulatedOperator } from '../cnpg-sim/index.js';
import { CnpgHarness } from './cnpg-harness.js';

/**
 * The one set-up of the end-to-end refresh tests on CNPG: a namespace on the
 * shared test API server with the source's Secrets (CnpgHarness), a real
 * PostgreSQL source, and the simulated operator managing that namespace with
 * CNPG's behaviour on a test's time scale.
 */

/** CNPG's probe loop, steps and garbage collection in milliseconds; a failed clone Job Pod is retried once, soon. */
export const REFRESH_TIMINGS = {
  probeRetryMs: 200,
  deletionDelayMs: 300,
  podTerminationMs: 100,
  phaseStepMs: 50,
  jobBackoffLimit: 1,
  podRetryDelayMs: 100,
  podRetryMaxDelayMs: 200,
  resyncMs: 500,
} as const;

/** The source host the guide's examples name; the simulator maps it to the sandbox source. */
export const GUIDE_SOURCE_HOST = 'source-rw.production.svc';

export interface CnpgFixture {
  h: CnpgHarness;
  sim: SimulatedOperator;
  /** Stops the operator, deletes the namespace and the source. */
  stop(): Promise<void>;
}

export async function startCnpgFixture(
  prefix: string,
  options: {
    /** Settings of the source and the like (LocalHarness options). */
    harness?: Parameters<typeof CnpgHarness.start>[2];
    /** Changes to REFRESH_TIMINGS and the other operator options. */
    operator?: Partial<Omit<SimulatedOperatorOptions, 'kubeConfig' | 'logDir' | 'namespaces'>>;
    /** Runs after the namespace and source exist, before the operator starts (Secrets, a CHECKPOINT). */
    before?: (h: CnpgHarness) => Promise<void>;
  } = {},
): Promise<CnpgFixture> {
  const h = await CnpgHarness.start(inject('kubeconfigPath'), prefix, options.harness ?? {});
  let sim: SimulatedOperator | undefined;
  try {
    await options.before?.(h);
    sim = await startSimulatedOperator({
      kubeConfig: h.kc,
      logDir: inject('podLogDir'),
      namespaces: [h.namespace],
      ...REFRESH_TIMINGS,
      resolveSource: ({ host }) => (host === GUIDE_SOURCE_HOST ? { host: '127.0.0.1', port: h.local.source.port } : undefined),
      ...options.operator,
    });
  } catch (error) {
    await h.destroy();
    throw error;
  }
  const started = sim;
  return {
    h,
    sim: started,
    stop: async () => {
      await started.stop();
      await h.destroy();
    },
  };
}
