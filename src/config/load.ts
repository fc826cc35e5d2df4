import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { parseByteSize } from './byte-size.js';
import { configSchema, type RawConfig } from './schema.js';
import { resolveSecretRef, type Secret, type SecretRef } from './secret.js';
import type { Config, JobConfig, NotificationTarget } from './types.js';
import { checkConfigRules } from './validate.js';

export const DEFAULT_CONFIG_PATH = 'config/db-refresher.yaml';

/** --config, else DB_REFRESHER_CONFIG, else the default path. */
export function chooseConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag ?? env.DB_REFRESHER_CONFIG ?? DEFAULT_CONFIG_PATH;
}

/** `jobs[1].source.port` from zod's ['jobs', 1, 'source', 'port']. */
export function formatPath(segments: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of segments) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof segment === 'string' && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) out += out ? `.${segment}` : segment;
    else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out || '(top level)';
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the text "${value}"`;
  return `${typeof value} ${String(value)}`;
}

function formatIssue(issue: z.core.$ZodIssue): string[] {
  const at = formatPath(issue.path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map(
        (key) => `${formatPath([...issue.path, key])}: unknown key "${key}"; check its spelling against \`db-refresher schema\``,
      );
    case 'invalid_type':
      if (issue.input === undefined) return [`${at}: is required`];
      return [
        `${at}: must be ${issue.expected === 'object' ? 'a mapping' : issue.expected === 'array' ? 'a list' : `a ${issue.expected}`}, got ${describeType(issue.input)}`,
      ];
    case 'invalid_value':
      return [`${at}: must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${JSON.stringify(issue.input)}`];
    default:
      return [`${at}: ${issue.message}`];
  }
}

function parseYaml(text: string, source: string): unknown {
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    throw new ConfigError(
      source,
      document.errors.map((error) => {
        const line = error.linePos?.[0];
        const where = line ? `line ${line.line}, column ${line.col}` : 'YAML';
        return `${where}: ${(error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}`;
      }),
    );
  }
  return document.toJS();
}

/** Parses and validates config text; every problem is reported at once. */
export function parseConfig(text: string, options: { source: string; baseDir: string; env: NodeJS.ProcessEnv }): Config {
  const raw = parseYaml(text, options.source);
  if (raw === null || raw === undefined) {
    throw new ConfigError(options.source, ['(top level): the file is empty; it needs at least a `jobs:` list']);
  }
  const parsed = configSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    throw new ConfigError(options.source, parsed.error.issues.flatMap(formatIssue));
  }
  const resolvePath = (p: string) => path.resolve(options.baseDir, p);
  const problems = checkConfigRules(parsed.data, resolvePath);
  const resolved = resolveSecrets(parsed.data, options.env, problems);
  if (problems.length > 0) throw new ConfigError(options.source, problems);
  return deepFreeze(buildConfig(parsed.data, resolved, resolvePath, options.source));
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT'
        ? 'the file does not exist; pass --config PATH or set DB_REFRESHER_CONFIG'
        : code === 'EISDIR'
          ? 'this is a directory, not a file'
          : `the file cannot be read (${code ?? String(error)})`;
    throw new ConfigError(file, [`(top level): ${reason}`]);
  }
  return parseConfig(text, { source: file, baseDir: path.dirname(path.resolve(file)), env });
}

type SecretLookup = (ref: SecretRef | undefined, at: string) => Secret | undefined;

interface ResolvedSecrets {
  lookup: Map<string, Secret>;
}

/** Resolves every secret reference up front, so a missing one is a config error and not a failed refresh at 3 a.m. */
function resolveSecrets(config: RawConfig, env: NodeJS.ProcessEnv, problems: string[]): ResolvedSecrets {
  const lookup = new Map<string, Secret>();
  const visit = (ref: SecretRef | undefined, at: string, owner: string) => {
    if (!ref) return;
    const result = resolveSecretRef(ref, env);
    if ('secret' in result) lookup.set(at, result.secret);
    else problems.push(`${at} (${owner}): ${result.problem}`);
  };
  config.jobs.forEach((job, i) => {
    const owner = `job "${job.name}"`;
    const at = `jobs[${i}]`;
    for (const field of ['password', 'sslCert', 'sslKey', 'sslRootCert'] as const) {
      visit(job.source[field], `${at}.source.${field}`, owner);
    }
    visit(job.source.sql?.password, `${at}.source.sql.password`, owner);
    visit(job.verify.owner?.password, `${at}.verify.owner.password`, owner);
  });
  for (const [name, target] of Object.entries(config.notifications)) {
    const at = formatPath(['notifications', name]);
    visit(target.url, `${at}.url`, `notification target "${name}"`);
    visit(target.secret, `${at}.secret`, `notification target "${name}"`);
  }
  return { lookup };
}

function buildConfig(raw: RawConfig, secrets: ResolvedSecrets, resolvePath: (p: string) => string, source: string): Config {
  const secret: SecretLookup = (ref, at) => (ref ? secrets.lookup.get(at) : undefined);
  const jobs = raw.jobs.map((job, i): JobConfig => {
    const at = `jobs[${i}]`;
    const password = secret(job.source.password, `${at}.source.password`);
    return {
      name: job.name,
      description: job.description,
      schedule: job.schedule,
      timezone: job.timezone,
      suspend: job.suspend,
      source: {
        host: job.source.host,
        port: job.source.port,
        user: job.source.user,
        dbname: job.source.dbname,
        sslmode: job.source.sslmode,
        password,
        sslCert: secret(job.source.sslCert, `${at}.source.sslCert`),
        sslKey: secret(job.source.sslKey, `${at}.source.sslKey`),
        sslRootCert: secret(job.source.sslRootCert, `${at}.source.sslRootCert`),
        sql: {
          user: job.source.sql?.user ?? job.source.user,
          password: job.source.sql?.password ? secret(job.source.sql.password, `${at}.source.sql.password`) : password,
        },
      },
      target: { ...job.target, dataDir: resolvePath(job.target.dataDir) },
      verify: {
        databases: job.verify.databases.map((db) => ({
          name: db.name,
          minTables: db.minTables,
          minSizeBytes: db.minSize === undefined ? undefined : parseByteSize(db.minSize),
          requiredTables: db.requiredTables,
        })),
        sizeTolerancePercent: job.verify.sizeTolerancePercent,
        owner: job.verify.owner
          ? {
              user: job.verify.owner.user,
              database: job.verify.owner.database,
              password: secret(job.verify.owner.password, `${at}.verify.owner.password`) as Secret,
            }
          : undefined,
      },
      notify: job.notify,
    };
  });
  const notifications: Record<string, NotificationTarget> = {};
  for (const [name, target] of Object.entries(raw.notifications)) {
    const at = formatPath(['notifications', name]);
    notifications[name] = {
      name,
      kind: target.kind,
      url: secret(target.url, `${at}.url`) as Secret,
      secret: secret(target.secret, `${at}.secret`),
      events: target.events,
    };
  }
  return { path: source, stateDir: resolvePath(raw.stateDir), logLevel: raw.logLevel, notifications, jobs };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

export function findJob(config: Config, name: string): JobConfig | undefined {
  return config.jobs.find((job) => job.name === name);
}
