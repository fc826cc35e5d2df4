import { z } from 'zod';
import { secretRef } from './secret-ref.js';

/** The `notifications` section: named webhook targets that jobs list in `notify`. */

export const NOTIFY_EVENTS = ['started', 'succeeded', 'failed', 'skipped', 'upcoming'] as const;

export const notificationSchema = z.strictObject({
  kind: z.enum(['slack', 'generic']).describe('Payload format: slack (Slack, Mattermost, Discord /slack) or generic JSON'),
  url: secretRef.describe('Webhook URL; it usually embeds a token, so it is a secret'),
  secret: secretRef.optional().describe('HMAC-SHA256 signing key (generic only)'),
  events: z.array(z.enum(NOTIFY_EVENTS)).default(['started', 'succeeded', 'failed', 'skipped']).describe('Events sent to this target'),
});
