import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseRetryAfter } from '../../src/notify/outbox.js';
import { describeError, hiddenFor, SECRET_PLACEHOLDER, scrub, URL_PLACEHOLDER, urlVariants } from '../../src/notify/scrub.js';
import { SIGNATURE_HEADER, signatureHeaders, signedContent, TIMESTAMP_HEADER, verifySignature } from '../../src/notify/sign.js';

const NOW = new Date('2025-01-05T02:00:00.000Z');
const SECRET = 'whsec-0123456789abcdef';
const BODY = '{"event":"succeeded","job":{"name":"qa"},"text":"ünïcødé ✅"}';

describe('signing generic webhooks', () => {
  it('signs "<timestamp>.<body>" with HMAC-SHA256, as a receiver recomputes it', () => {
    const headers = signatureHeaders(SECRET, BODY, NOW);
    expect(headers[TIMESTAMP_HEADER]).toBe('1736042400');
    const expected = createHmac('sha256', SECRET).update(`1736042400.${BODY}`).digest('hex');
    expect(headers[SIGNATURE_HEADER]).toBe(`sha256=${expected}`);
    expect(signedContent(1736042400, BODY)).toBe(`1736042400.${BODY}`);
  });

  it('verifySignature accepts the real thing and refuses tampering, another secret and stale timestamps', () => {
    const headers = signatureHeaders(SECRET, BODY, NOW);
    const base = { secret: SECRET, body: BODY, timestamp: headers[TIMESTAMP_HEADER], signature: headers[SIGNATURE_HEADER], now: NOW };
    expect(verifySignature(base)).toBe(true);
    expect(verifySignature({ ...base, body: BODY.replace('qa', 'qb') })).toBe(false);
    expect(verifySignature({ ...base, secret: 'other' })).toBe(false);
    expect(verifySignature({ ...base, timestamp: String(Number(base.timestamp) + 1) })).toBe(false);
    expect(verifySignature({ ...base, now: new Date(NOW.getTime() + 301_000) })).toBe(false);
    expect(verifySignature({ ...base, now: new Date(NOW.getTime() + 299_000) })).toBe(true);
    expect(verifySignature({ ...base, signature: undefined })).toBe(false);
    expect(verifySignature({ ...base, timestamp: '1e9' })).toBe(false);
  });
});

describe('scrubbing webhook URLs and secrets', () => {
  const url = 'https://hooks.slack.com/services/T0000000/B0000000/XXXXXXXXsecrettokenXXXXXXXX?key=querysecret123';

  it('finds the URL in every form it can take, and the token alone', () => {
    const variants = urlVariants(url);
    expect(variants).toContain(url);
    expect(variants).toContain('XXXXXXXXsecrettokenXXXXXXXX');
    expect(variants).toContain('querysecret123');
    expect(variants).not.toContain('services');
  });

  it('replaces the URL before the token in it, and the signing secret', () => {
    const hidden = hiddenFor(url, SECRET);
    const text = `fetch failed for ${url}; token XXXXXXXXsecrettokenXXXXXXXX; path /services/T0000000/B0000000/XXXXXXXXsecrettokenXXXXXXXX; key ${SECRET}`;
    const out = scrub(text, hidden);
    expect(out).toBe(`fetch failed for ${URL_PLACEHOLDER}; token ${URL_PLACEHOLDER}; path ${URL_PLACEHOLDER}; key ${SECRET_PLACEHOLDER}`);
  });

  it('replaces whole URLs and tokens only, never short parts of a URL inside ordinary words', () => {
    // With user "u", every "u" in the message used to become the placeholder.
    const withUser = 'https://u:p@hooks.example.com/x';
    const message = `Request cannot be constructed from a URL that includes credentials: ${withUser}`;
    expect(scrub(message, hiddenFor(withUser))).toBe(
      `Request cannot be constructed from a URL that includes credentials: ${URL_PLACEHOLDER}`,
    );
    const shortPath = 'https://hooks.example.com/x?a=1';
    expect(scrub(`expected x, got a=1 from ${shortPath}`, hiddenFor(shortPath))).toBe(`expected x, got a=1 from ${URL_PLACEHOLDER}`);
    const longUser = 'https://hook-user-0123456789:pass-0123456789@hooks.example.com/x';
    expect(scrub('user hook-user-0123456789 pass pass-0123456789', hiddenFor(longUser))).toBe(
      `user ${URL_PLACEHOLDER} pass ${URL_PLACEHOLDER}`,
    );
  });

  it('hides text that is not a URL at all', () => {
    expect(scrub('bad: not a url sekrit-token', hiddenFor('not a url sekrit-token'))).toBe(`bad: ${URL_PLACEHOLDER}`);
  });

  it('describes an error with its causes, in one line', () => {
    const error = new TypeError('fetch failed', {
      cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }),
    });
    expect(describeError(error)).toBe('fetch failed: connect ECONNREFUSED 127.0.0.1:9');
    expect(describeError(new DOMException('The operation was aborted due to timeout', 'TimeoutError'))).toBe(
      'no response before the request timeout',
    );
    expect(describeError('plain')).toBe('plain');
  });
});

describe('Retry-After', () => {
  it('reads seconds and HTTP dates', () => {
    const now = Date.parse('2025-01-05T02:00:00.000Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Sun, 05 Jan 2025 02:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Sun, 05 Jan 2025 01:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});
