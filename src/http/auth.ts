import { createHash, timingSafeEqual } from 'node:crypto';
import type { Secret } from '../config/secret.js';

/**
 * Bearer tokens for /api. Each presented token is hashed and compared with
 * every configured token's hash using timingSafeEqual, without stopping at a
 * match, so neither the content nor the position of a token leaks through
 * timing. Hashing first also makes the compared lengths equal.
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

export type AuthResult =
  | { ok: true; principal: Principal }
  | { ok: false; status: 401 | 403; error: 'unauthenticated' | 'forbidden'; message: string };

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

export class TokenAuth {
  readonly #tokens: Array<{ principal: Principal; digest: Buffer }>;

  constructor(tokens: readonly ApiToken[]) {
    this.#tokens = tokens.map((t) => ({ principal: { name: t.name, readOnly: t.readOnly }, digest: digest(t.token.reveal()) }));
  }

  /** Checks an Authorization header value. */
  check(header: string | undefined): AuthResult {
    if (!header) {
      return { ok: false, status: 401, error: 'unauthenticated', message: 'this route needs an Authorization: Bearer <token> header' };
    }
    const match = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header);
    if (!match?.[1]) {
      return { ok: false, status: 401, error: 'unauthenticated', message: 'the Authorization header must be "Bearer <token>"' };
    }
    const presented = digest(match[1]);
    let found: Principal | undefined;
    for (const t of this.#tokens) {
      if (timingSafeEqual(presented, t.digest) && !found) found = t.principal;
    }
    if (!found) return { ok: false, status: 403, error: 'forbidden', message: 'the token is not valid for this service' };
    return { ok: true, principal: found };
  }
}
