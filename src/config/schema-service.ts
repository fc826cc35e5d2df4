import { z } from 'zod';
import { durationSeconds, MAX_CONCURRENT_RUNS } from './limits.js';
import { leaderElectionSchema } from './schema-leader.js';
import { secretRef } from './secret-ref.js';

/**
 * Config for the long-running service: the top-level `server` section and the
 * scheduling fields every job carries. Kept apart from schema.ts so the
 * service's options live next to each other.
 */

const apiToken = z
  .strictObject({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$/, {
        error: 'must be 1-63 letters, digits, ".", "_", "@" or "-"; it is recorded as who triggered a run',
      })
      .describe('Who holds the token; recorded in the run record as who triggered the run'),
    token: secretRef.describe('The bearer token; at least 16 characters'),
    readOnly: z.boolean().default(false).describe('Allow only the GET routes (history, job status); triggering a run is refused with 403'),
  })
  .describe('An API token');

const keepRuns = (max: number, fallback: number) =>
  z.number().int().min(1).max(max).default(fallback).describe('Runs kept per job; older finished ones are dropped');

const fileHistory = z
  .strictObject({ kind: z.literal('file'), keepRuns: keepRuns(10_000, 100) })
  .describe('One JSON file per run under <stateDir>/runs/<job>/; needs persistent storage for stateDir');

const kubernetesHistory = z
  .strictObject({
    kind: z.literal('kubernetes'),
    namespace: z
      .string()
      .min(1)
      .optional()
      .describe("Namespace of the ConfigMaps; default: the pod's own namespace (service account), else the kubeconfig context's"),
    kubeconfig: z
      .string()
      .min(1)
      .optional()
      .describe('kubeconfig file; default: in-cluster service account, else $KUBECONFIG or ~/.kube/config'),
    // A ConfigMap holds at most 1 MiB.
    keepRuns: keepRuns(200, 30),
    configMapPrefix: z.string().min(1).max(40).default('db-refresher-runs').describe('ConfigMap name prefix; the job name is appended'),
  })
  .describe('One ConfigMap per job holding its last runs, compacted; for a pod without persistent storage');

export const HISTORY_KINDS = ['file', 'kubernetes'] as const;

const historySchema = z.discriminatedUnion('kind', [fileHistory, kubernetesHistory], {
  error: () => `history needs a kind (one of: ${HISTORY_KINDS.join(', ')})`,
});

export const serverSchema = z
  .strictObject({
    host: z.string().min(1).default('0.0.0.0').describe('Address the HTTP API listens on'),
    port: z.number().int().min(0).max(65535).default(8080).describe('Port of the HTTP API (0: any free port, logged at start)'),
    tokens: z
      .array(apiToken)
      .default([])
      .superRefine((tokens, ctx) => {
        const seen = new Set<string>();
        tokens.forEach((t, i) => {
          if (seen.has(t.name))
            ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate token name "${t.name}"; names must be unique` });
          seen.add(t.name);
        });
      })
      .describe('Bearer tokens for /api; without any, /api answers 401 to everyone (/healthz, /readyz and /metrics stay open)'),
    maxConcurrentRuns: z
      .number()
      .int()
      .min(1)
      .max(MAX_CONCURRENT_RUNS)
      .default(4)
      .describe('Refreshes running at once across all jobs; more wait in a queue'),
    maxConcurrentRunsPerSource: z
      .number()
      .int()
      .min(1)
      .max(MAX_CONCURRENT_RUNS)
      .default(1)
      .describe('Refreshes running at once against one source (host:port); each clone takes walsender slots on it'),
    shutdownGraceSeconds: durationSeconds(0, 60, 'On SIGTERM, how long a running phase may take to reach its end before it is stopped'),
    bodyLimitBytes: z.number().int().min(256).max(1_048_576).default(16_384).describe('Largest request body the API accepts'),
    history: historySchema.prefault({ kind: 'file' }).describe('Where run records are kept'),
    leaderElection: leaderElectionSchema.optional(),
  })
  .superRefine((server, ctx) => {
    if (server.leaderElection && server.history.kind !== 'kubernetes') {
      ctx.addIssue({
        code: 'custom',
        path: ['leaderElection'],
        message: 'needs history kind kubernetes: the replicas must share one run history (set server.history.kind: kubernetes)',
      });
    }
  })
  .describe('The HTTP API and scheduler of `db-refresher serve`');

/** Fields spread into every job. */
export const jobServiceFields = {
  startingDeadlineSeconds: durationSeconds(
    0,
    3600,
    'When the service starts after being down over a scheduled time: run once if that time is at most this old, else record it as missed (like a Kubernetes CronJob)',
  ),
  allowManualWhenSuspended: z.boolean().default(true).describe('Whether runs may be triggered by hand (CLI, HTTP) while `suspend` is true'),
};
