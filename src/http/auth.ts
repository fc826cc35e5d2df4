import { createHash, timingSafeEqual } from 'node:crypto';
import type { Secret } from '../config/secret.js';
import type { ErrorCode } from '../errors.js';

/**
 * Bearer tokens for /api. Each presented token is hashed and compared with
 * every configured token's hash using timingSafeEqual, without stopping at a
 * match, so neither the content nor the position of a token leaks through
 * timing. Hashing first also makes the compared lengths equal.
 *
 * Answers follow RFC 6750: no token or a malformed header is 401 with a bare
 * `WWW-Authenticate: Bearer` challenge; a token that is not configured is 401
 * with `error="invalid_token"`; a valid token without the right (read-only on a
 * write) is 403 with `error="insufficient_scope"`.
 */

export interface ApiToken {
  name: string;
  token: Secret;
  readOnly: boolean;
}

export interface Principal {
  name: string;
  readOnly: boolean;
}

export const REALM = 'Bearer realm="db-refresher"';

export type AuthResult =
  | { ok: true; principal: Principal }
  | { ok: false; code: Extract<ErrorCode, 'UNAUTHENTICATED' | 'INVALID_TOKEN'>; challenge: string; message: string };

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

export class TokenAuth {
  readonly #tokens: Array<{ principal: Principal; digest: Buffer }>;

  constructor(tokens: readonly ApiToken[]) {
    this.#tokens = tokens.map((t) => ({ principal: { name: t.name, readOnly: t.readOnly }, digest: digest(t.token.reveal()) }));
  }

  /** Checks an Authorization header value. */
  check(header: string | undefined): AuthResult {
    if (!header) {
      return {
        ok: false,
        code: 'UNAUTHENTICATED',
        challenge: REALM,
        message: 'this route needs an Authorization: Bearer <token> header',
      };
    }
    const match = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header);
    if (!match?.[1]) {
      return { ok: false, code: 'UNAUTHENTICATED', challenge: REALM, message: 'the Authorization header must be "Bearer <token>"' };
    }
    const presented = digest(match[1]);
    let found: Principal | undefined;
    for (const t of this.#tokens) {
      if (timingSafeEqual(presented, t.digest) && !found) found = t.principal;
    }
    if (!found) {
      return {
        ok: false,
        code: 'INVALID_TOKEN',
        challenge: `${REALM}, error="invalid_token", error_description="the token is not valid for this service"`,
        message: 'the token is not valid for this service; check which token the client sends',
      };
    }
    return { ok: true, principal: found };
  }
}

/** The challenge for a valid token that may not do what it asked (RFC 6750 §3.1). */
export const INSUFFICIENT_SCOPE = `${REALM}, error="insufficient_scope"`;
