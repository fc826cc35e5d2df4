/**
 * Keeps webhook URLs and signing secrets out of everything db-refresher says
 * about a delivery. Errors from fetch can quote the URL (an invalid one, or
 * in a cause), so every error is reduced to a string and scrubbed before it
 * is logged, counted or returned. Pure.
 */

export const URL_PLACEHOLDER = '[webhook url]';
export const SECRET_PLACEHOLDER = '[redacted]';

/**
 * Whole URLs are always hidden. Tokens are long path segments or long ones with digits (Slack's T0123ABCD,
 * Discord's numeric ids); words like "services" or "hooks" are not secret and
 * too common to replace.
 */
function looksLikeToken(segment: string): boolean {
  return segment.length >= 16 || (segment.length >= 6 && /\d/.test(segment));
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The forms in which a URL, or the token inside it, can turn up in a message. */
export function urlVariants(raw: string): string[] {
  const variants = new Set<string>([raw]);
  try {
    const url = new URL(raw);
    variants.add(url.href);
    variants.add(`${url.origin}${url.pathname}`);
    // Parts of a URL are hidden on their own only when they look like tokens: a short
    // user name ("u") or path ("/x") replaced everywhere would garble every word holding it.
    if (looksLikeToken(url.pathname.slice(1))) variants.add(url.pathname);
    if (looksLikeToken(url.search.slice(1))) variants.add(url.search.slice(1));
    for (const part of [url.username, url.password]) {
      if (looksLikeToken(part)) {
        variants.add(part);
        variants.add(decodeURIComponentSafe(part));
      }
    }
    for (const segment of url.pathname.split('/')) {
      if (looksLikeToken(segment)) {
        variants.add(segment);
        variants.add(decodeURIComponentSafe(segment));
      }
    }
    for (const value of url.searchParams.values()) if (looksLikeToken(value)) variants.add(value);
  } catch {
    // Not a URL at all: the raw text is all there is to hide.
  }
  return [...variants].filter((v) => v.length > 0);
}

export interface Hidden {
  value: string;
  placeholder: string;
}

/**
 * Replaces every occurrence of each hidden value with its placeholder, longest
 * first, so a URL goes before the token inside it and no value is left half shown.
 */
export function scrub(text: string, hidden: readonly Hidden[]): string {
  let out = text;
  for (const { value, placeholder } of [...hidden].filter((h) => h.value.length > 0).sort((a, b) => b.value.length - a.value.length)) {
    out = out.split(value).join(placeholder);
  }
  return out;
}

/** What to hide for one webhook: every form of its URL, and its signing secret. */
export function hiddenFor(url: string, signingSecret?: string): Hidden[] {
  const hidden = urlVariants(url).map((value) => ({ value, placeholder: URL_PLACEHOLDER }));
  if (signingSecret) hidden.push({ value: signingSecret, placeholder: SECRET_PLACEHOLDER });
  return hidden;
}

/**
 * An error as one line: its message and its causes' (fetch puts the useful
 * part, e.g. "connect ECONNREFUSED 127.0.0.1:9", in `cause`). Not yet scrubbed.
 */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current !== undefined && current !== null; depth += 1) {
    if (current instanceof Error) {
      const name = current.name;
      if (name === 'TimeoutError') parts.push('no response before the request timeout');
      else if (name === 'AbortError') parts.push('aborted');
      else {
        const code = (current as { code?: unknown }).code;
        const message = current.message || name;
        parts.push(typeof code === 'string' && !message.includes(code) ? `${message} (${code})` : message);
      }
      current = current.cause;
    } else {
      parts.push(String(current));
      break;
    }
  }
  return [...new Set(parts)].join(': ');
}
