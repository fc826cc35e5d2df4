import { z } from 'zod';

/**
 * `server.leaderElection`: several replicas of `serve`, one of which (the
 * holder of a coordination.k8s.io/v1 Lease) schedules and runs refreshes.
 * client-go's defaults and rules (renewDeadline < leaseDuration).
 */

// An hour at most; the maxima keep renewDeadline < leaseDuration and retryPeriod × 1.2 < renewDeadline reachable.
const seconds = (max: number, fallback: number, what: string) =>
  z.number().int().min(1).max(max).default(fallback).describe(`${what} (1-${max})`);

export const leaderElectionSchema = z
  .strictObject({
    leaseName: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, { error: 'must be a Kubernetes object name (lower case, digits, "-", ".")' })
      .describe('Name of the Lease the replicas compete for'),
    namespace: z.string().min(1).optional().describe("Namespace of the Lease; default: the history store's namespace"),
    leaseDurationSeconds: seconds(3600, 15, 'How long a leader that stopped renewing blocks the others (client-go: 15)'),
    renewDeadlineSeconds: seconds(3599, 10, 'How long the leader keeps trying to renew before it stops leading (client-go: 10)'),
    retryPeriodSeconds: seconds(2999, 2, 'How often candidates try to acquire and the leader renews (client-go: 2)'),
    advertiseUrl: z
      .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
      .optional()
      .describe("How the other replicas reach this one's API to forward triggers; default: http://$POD_IP:<port>"),
  })
  .superRefine((le, ctx) => {
    if (le.renewDeadlineSeconds >= le.leaseDurationSeconds) {
      ctx.addIssue({
        code: 'custom',
        path: ['renewDeadlineSeconds'],
        message: 'must be less than leaseDurationSeconds, or two replicas could lead at once',
      });
    }
    if (le.renewDeadlineSeconds <= le.retryPeriodSeconds * 1.2) {
      ctx.addIssue({
        code: 'custom',
        path: ['retryPeriodSeconds'],
        message: 'must be less than renewDeadlineSeconds / 1.2, so a leader gets several tries to renew',
      });
    }
  })
  .describe('Leader election for two or more replicas (needs history kind kubernetes)');
