import { readFileSync } from 'node:fs';
import { RefresherError } from '../../errors.js';

/**
 * The CLI's client for a running service: `--server URL` (or
 * DB_REFRESHER_SERVER) and a token from `--token-file F` (or
 * DB_REFRESHER_TOKEN). Errors from the service come back with its message.
 */

export interface RemoteOptions {
  server?: string;
  tokenFile?: string;
}

export class RemoteClient {
  readonly base: string;
  readonly #token: string;

  constructor(base: string, token: string) {
    this.base = base.replace(/\/+$/, '');
    this.#token = token;
  }

  static from(options: RemoteOptions, env: NodeJS.ProcessEnv): RemoteClient {
    const server = options.server ?? env.DB_REFRESHER_SERVER;
    if (!server) {
      throw new RefresherError('USAGE', 'no server to talk to', {
        hint: 'Pass --server https://db-refresher.example.com, or set DB_REFRESHER_SERVER.',
      });
    }
    if (!/^https?:\/\/[^\s/]+/.test(server)) {
      throw new RefresherError('USAGE', `--server "${server}" is not an http(s) URL`, {
        hint: 'For example --server http://127.0.0.1:8080',
      });
    }
    let token = env.DB_REFRESHER_TOKEN ?? '';
    if (options.tokenFile) {
      try {
        token = readFileSync(options.tokenFile, 'utf8').trim();
      } catch (error) {
        throw new RefresherError(
          'USAGE',
          `cannot read the token file ${options.tokenFile}: ${(error as NodeJS.ErrnoException).code ?? error}`,
        );
      }
    }
    if (!token) {
      throw new RefresherError('USAGE', 'no API token', { hint: 'Pass --token-file FILE, or set DB_REFRESHER_TOKEN.' });
    }
    return new RemoteClient(server, token);
  }

  /** `timeoutMs` bounds the whole request (shell completion must not hang on a server that does not answer). */
  async request<T>(method: 'GET' | 'POST', path: string, body?: unknown, options: { timeoutMs?: number } = {}): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        ...(options.timeoutMs ? { signal: AbortSignal.timeout(options.timeoutMs) } : {}),
        headers: {
          authorization: `Bearer ${this.#token}`,
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new RefresherError('USAGE', `cannot reach ${this.base}: ${cause?.code ?? cause?.message ?? String(error)}`, {
        hint: 'Check --server (or DB_REFRESHER_SERVER) and that `db-refresher serve` is running there.',
      });
    }
    const text = await res.text();
    let data: unknown;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      data = undefined;
    }
    if (!res.ok) {
      const problem = data as { error?: string; message?: string } | undefined;
      const message = `${method} ${path}: ${res.status} ${problem?.error ?? ''}${problem?.message ? `: ${problem.message}` : ''}`;
      // 4xx is the caller's to fix (usage: exit 2), except a busy job (exit 1, like a local run).
      throw new RefresherError(res.status === 409 ? 'JOB_BUSY' : res.status >= 500 ? 'REFRESH_FAILED' : 'USAGE', message);
    }
    return data as T;
  }
}
