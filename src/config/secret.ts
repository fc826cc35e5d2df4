import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';

/**
 * A resolved secret. The value is reachable only through `reveal()`, and every
 * way an object usually gets printed (JSON, util.inspect, string coercion)
 * shows a placeholder instead, so a secret that slips into a log line, a run
 * record or an API response is still not disclosed. pino redaction is a second
 * layer on top of this.
 */
export class Secret {
  readonly #value: string;
  /** Where the value came from, e.g. `env:SOURCE_PASSWORD`: safe to show. */
  readonly origin: string;

  constructor(value: string, origin: string) {
    this.#value = value;
    this.origin = origin;
  }

  reveal(): string {
    return this.#value;
  }

  toJSON(): string {
    return `[secret ${this.origin}]`;
  }

  toString(): string {
    return `[secret ${this.origin}]`;
  }

  [inspect.custom](): string {
    return `[secret ${this.origin}]`;
  }
}

export type SecretRef = { env: string } | { file: string };

export function describeSecretRef(ref: SecretRef): string {
  return 'env' in ref ? `env:${ref.env}` : `file:${ref.file}`;
}

/**
 * Reads a secret reference. Returns the problem as text rather than throwing, so
 * config loading can report every unreadable secret at once.
 */
export function resolveSecretRef(ref: SecretRef, env: NodeJS.ProcessEnv): { secret: Secret } | { problem: string } {
  const origin = describeSecretRef(ref);
  if ('env' in ref) {
    const value = env[ref.env];
    if (value === undefined || value === '') {
      return { problem: `environment variable ${ref.env} is not set (or empty); export it, or use {file: PATH}` };
    }
    return { secret: new Secret(value, origin) };
  }
  try {
    // Mounted Kubernetes secret files usually end without a newline, but files
    // written by hand usually end with one that is not part of the secret.
    const value = readFileSync(ref.file, 'utf8').replace(/\r?\n$/, '');
    if (value === '') return { problem: `secret file ${ref.file} is empty` };
    return { secret: new Secret(value, origin) };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT'
        ? 'does not exist'
        : code === 'EACCES'
          ? 'is not readable by this process'
          : `cannot be read (${code ?? String(error)})`;
    return { problem: `secret file ${ref.file} ${reason}` };
  }
}
