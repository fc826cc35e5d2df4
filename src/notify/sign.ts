import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Signing for generic webhooks. The signed content is the decimal Unix time in
 * seconds, a full stop, and the exact request body bytes:
 *
 *   X-Timestamp: 1736042400
 *   X-Signature: sha256=hex(HMAC-SHA256(secret, "1736042400." + body))
 *
 * Binding the timestamp into the signature lets receivers reject replays: a
 * captured request cannot be re-sent with a fresh timestamp. Each delivery
 * attempt is signed anew, so a retry carries its own current timestamp.
 * Pure (node:crypto only).
 */

export const SIGNATURE_HEADER = 'X-Signature';
export const TIMESTAMP_HEADER = 'X-Timestamp';
/** How far a receiver should let X-Timestamp be from its own clock, by default. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export function signedContent(timestamp: number, body: string): string {
  return `${timestamp}.${body}`;
}

/** `sha256=<64 hex digits>`. */
export function sign(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(signedContent(timestamp, body), 'utf8').digest('hex')}`;
}

/** The headers for one delivery attempt at `now`. */
export function signatureHeaders(secret: string, body: string, now: Date): Record<string, string> {
  const timestamp = Math.floor(now.getTime() / 1000);
  return { [TIMESTAMP_HEADER]: String(timestamp), [SIGNATURE_HEADER]: sign(secret, timestamp, body) };
}

/**
 * What a receiver does, for reference and for tests: recompute the signature
 * over the raw body and the timestamp header, compare in constant time, and
 * refuse timestamps too far from now.
 */
export function verifySignature(input: {
  secret: string;
  body: string;
  timestamp: string | undefined;
  signature: string | undefined;
  now: Date;
  toleranceSeconds?: number;
}): boolean {
  if (!input.timestamp || !/^\d+$/.test(input.timestamp) || !input.signature) return false;
  const timestamp = Number(input.timestamp);
  if (Math.abs(input.now.getTime() / 1000 - timestamp) > (input.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS)) return false;
  const expected = Buffer.from(sign(input.secret, timestamp, input.body));
  const given = Buffer.from(input.signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
