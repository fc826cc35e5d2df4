import { z } from 'zod';
import { secretRef } from './secret-ref.js';

/** The `notifications` section: named webhook targets that jobs list in `notify`. */

export const NOTIFY_EVENTS = ['queued', 'started', 'succeeded', 'failed', 'skipped', 'upcoming'] as const;
export const NOTIFY_KINDS = ['slack', 'teams', 'generic'] as const;

export const DEFAULT_UPCOMING_LEAD_MINUTES = 30;

export const notificationSchema = z
  .strictObject({
    kind: z
      .enum(NOTIFY_KINDS)
      .describe('Payload format: slack (Slack, Mattermost, Discord /slack), teams (Microsoft Teams Adaptive Card) or generic JSON'),
    url: secretRef.describe('Webhook URL; it usually embeds a token, so it is a secret'),
    secret: secretRef
      .optional()
      .describe('HMAC-SHA256 signing key (generic only): adds X-Timestamp and X-Signature: sha256=<hex> over "<timestamp>.<body>"'),
    events: z
      .array(z.enum(NOTIFY_EVENTS))
      .default(['queued', 'started', 'succeeded', 'failed', 'skipped'])
      .describe(
        'Events sent to this target: queued (waiting for a free slot), started, succeeded, failed, skipped (overlap, suspended, missed), upcoming',
      ),
    upcomingLeadMinutes: z
      .number()
      .int()
      .min(1, { error: 'must be at least 1 minute' })
      .max(7 * 24 * 60, { error: 'must be at most 10080 minutes (one week)' })
      .default(DEFAULT_UPCOMING_LEAD_MINUTES)
      .describe('For the upcoming event: how many minutes before a scheduled run to announce it'),
    notifyDryRuns: z
      .boolean()
      .default(false)
      .describe('Also send the events of dry runs (marked "dry run"); by default dry runs notify no one'),
  })
  .refine((target) => target.kind === 'generic' || target.secret === undefined, {
    path: ['secret'],
    error: 'a signing secret is used by kind: generic only; Slack and Teams webhooks are authenticated by their URL, so remove it',
  });
