import type { Secret } from './secret.js';

/**
 * Webhook URLs, checked once their secrets are read. A URL with a user name or
 * password (https://user:pass@host/…) can never be delivered: fetch refuses to
 * send credentials in a URL, so every attempt would fail and be retried. The
 * messages name the secret's origin, never its value.
 */
export function checkWebhookUrls(notifications: Readonly<Record<string, { url?: Secret | undefined }>>): string[] {
  const problems: string[] = [];
  for (const [name, target] of Object.entries(notifications)) {
    if (!target.url) continue;
    const at = `notifications.${name}.url (${target.url.origin})`;
    let url: URL;
    try {
      url = new URL(target.url.reveal());
    } catch {
      // Not a URL at all: the outbox reports that on every delivery attempt, without retrying.
      continue;
    }
    if (url.username || url.password) {
      problems.push(
        `${at}: the URL holds a user name or password (user:pass@host); webhook requests cannot carry credentials in the URL, so nothing would ever be delivered. Use the URL the service gives you, which carries its token in the path or query`,
      );
    }
  }
  return problems;
}
