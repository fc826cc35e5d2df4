import { ConfigError } from '../errors.js';
import type { Config } from './types.js';

/** Server rules that need the resolved secrets: token length, and distinct token values. */
export function checkServerConfig(config: Config): void {
  const problems: string[] = [];
  const seen = new Map<string, number>();
  config.server.tokens.forEach((t, i) => {
    const value = t.token.reveal();
    if (value.length < 16)
      problems.push(
        `server.tokens[${i}].token (${t.token.origin}): is ${value.length} characters; use at least 16 (e.g. openssl rand -hex 32)`,
      );
    const other = seen.get(value);
    if (other !== undefined)
      problems.push(`server.tokens[${i}].token: the same token as server.tokens[${other}]; each holder needs their own`);
    seen.set(value, i);
  });
  if (problems.length > 0) throw new ConfigError(config.path, problems);
}
