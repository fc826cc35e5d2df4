import { statSync } from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { checkTargetPaths } from './check-paths.js';
import { checkWebhookUrls } from './check-webhooks.js';
import { parseCnpgValues, sourceFromValues } from './cnpg-values.js';
import { configIssueMessage } from './issue-messages.js';
import { readPrepareSteps } from './prepare-files.js';
import { quote } from './quote.js';
import { maxConfigBytes, type Outcome, parseYamlText, readTextFile } from './read-yaml.js';
import { configSchema, jobSchema, type RawConfig } from './schema.js';
import { isClusterSpecField, superuserSecretConflict } from './schema-cnpg-cluster.js';
import { describeSecretRef, resolveSecretRef, Secret, type SecretRef } from './secret.js';
import type { Config, JobConfig, Resolved } from './types.js';
import { checkConfigRules, checkJobFields, checkJobTargets } from './validate.js';

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

function formatIssue(issue: z.core.$ZodIssue): string[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => `${formatPath([...issue.path, key])}: unknown key ${quote(key)}${unknownKeyAdvice(issue.path, key)}`);
  }
  // The wording of everything else comes from configIssueMessage, passed to the parse.
  return [`${formatPath(issue.path)}: ${issue.message}`];
}

/** Cluster spec fields written among the cnpg-database values belong under target.cluster. */
function unknownKeyAdvice(path: readonly PropertyKey[], key: string): string {
  const valuesAt = path.indexOf('values');
  if (path[valuesAt - 1] === 'target' && valuesAt === path.length - 1 && isClusterSpecField(key)) {
    return ` in the cnpg-database values; it is a CloudNativePG Cluster field: put it under ${formatPath(path.slice(0, valuesAt))}.cluster`;
  }
  return '; check its spelling against `db-refresher schema`';
}

function parseYaml(text: string, source: string): unknown {
  const parsed = parseYamlText(text);
  if (!parsed.ok) throw new ConfigError(source, parsed.problems);
  return parsed.value;
}

export interface ParseOptions {
  source: string;
  baseDir: string;
  env: NodeJS.ProcessEnv;
  /**
   * Check shape and rules without reading secrets (`validate --skip-secrets`, for CI checking a
   * rendered ConfigMap where the variables and files do not exist). Every Secret is then empty:
   * such a config is for reporting only, never for running.
   */
  skipSecrets?: boolean;
}

/**
 * The problems a file that fails the schema still shows: cron, time zone,
 * name and notify rules read loosely, source and target rules on the jobs that
 * pass on their own, and secrets that cannot be read. With the schema's own
 * problems they make one report, so nothing waits for another round.
 */
function problemsBesideShape(raw: unknown, resolvePath: (p: string) => string, options: ParseOptions): string[] {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return [];
  const { jobs, notifications } = raw as { jobs?: unknown; notifications?: unknown };
  const names = notifications && typeof notifications === 'object' && !Array.isArray(notifications) ? Object.keys(notifications) : [];
  const list = Array.isArray(jobs) ? jobs : [];
  const parsedJobs = list.flatMap((job, i) => {
    const one = jobSchema.safeParse(job);
    return one.success ? [[i, one.data] as const] : [];
  });
  const problems = [...checkJobFields(list, names), ...checkJobTargets(parsedJobs, resolvePath)];
  if (!options.skipSecrets) resolveSecrets(raw as RawConfig, options.env, problems);
  return problems;
}

/** Parses and validates config text; every problem is reported at once. */
export function parseConfig(text: string, options: ParseOptions): Config {
  const raw = parseYaml(text, options.source);
  if (raw === null || raw === undefined) {
    throw new ConfigError(options.source, ['(top level): the file is empty; it needs at least a `jobs:` list']);
  }
  const resolvePath = (p: string) => path.resolve(options.baseDir, p);
  const parsed = configSchema.safeParse(raw, { reportInput: true, error: configIssueMessage });
  if (!parsed.success) {
    throw new ConfigError(options.source, [...parsed.error.issues.flatMap(formatIssue), ...problemsBesideShape(raw, resolvePath, options)]);
  }
  const problems = [
    ...checkConfigRules(parsed.data, resolvePath),
    ...checkTargetPaths(parsed.data, resolvePath),
    ...checkStateDir(resolvePath(parsed.data.stateDir)),
  ];
  const resolved = options.skipSecrets ? placeholderSecrets(parsed.data) : resolveSecrets(parsed.data, options.env, problems);
  problems.push(...checkWebhookUrls(resolved.notifications));
  const config = buildConfig(resolved, resolvePath, options.source, problems);
  if (problems.length > 0) throw new ConfigError(options.source, problems);
  return deepFreeze(config);
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env, options: { skipSecrets?: boolean } = {}): Config {
  const limit = maxConfigBytes(env);
  if (!limit.ok) throw new ConfigError(file, limit.problems);
  let read: Outcome<string>;
  try {
    read = readTextFile(file, limit.value);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT'
        ? 'the file does not exist; pass --config PATH or set DB_REFRESHER_CONFIG'
        : code === 'EISDIR'
          ? 'this is a directory, not a file'
          : `the file cannot be read (${code ?? 'unknown error'})`;
    throw new ConfigError(file, [`(top level): ${reason}`]);
  }
  if (!read.ok) throw new ConfigError(file, read.problems);
  return parseConfig(read.value, { source: file, baseDir: path.dirname(path.resolve(file)), env, ...options });
}

/** The state directory may not exist yet (it is created on first use), but if it exists it must be a directory. */
function checkStateDir(stateDir: string): string[] {
  try {
    if (!statSync(stateDir).isDirectory()) {
      return [`stateDir: ${stateDir} exists and is not a directory; the run history and locks go there. Remove it or choose another path`];
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') return [`stateDir: ${stateDir} is under a file, not a directory; choose another path`];
    if (code !== 'ENOENT') return [`stateDir: ${stateDir} cannot be examined (${code ?? 'unknown error'})`];
  }
  return [];
}

function isSecretRef(value: unknown): value is SecretRef {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && (keys[0] === 'env' || keys[0] === 'file') && typeof Object.values(value)[0] === 'string';
}

/** Whose secret this is, for messages: `job "qa"` or `notification target "team"`. */
function ownerOf(config: RawConfig, at: readonly PropertyKey[]): string | undefined {
  if (at[0] === 'jobs' && typeof at[1] === 'number') return `job "${config.jobs[at[1]]?.name}"`;
  if (at[0] === 'notifications' && typeof at[1] === 'string') return `notification target "${at[1]}"`;
  return undefined;
}

/**
 * Resolves every secret reference in the tree up front, so a missing one is a
 * config error and not a failed refresh at 3 a.m. Works on any path, so new
 * config sections get secret handling without touching this function.
 */
function resolveSecrets(config: RawConfig, env: NodeJS.ProcessEnv, problems: string[]): Resolved<RawConfig> {
  const walk = (value: unknown, at: PropertyKey[]): unknown => {
    if (isSecretRef(value)) {
      const result = resolveSecretRef(value, env);
      if ('secret' in result) return result.secret;
      const owner = ownerOf(config, at);
      problems.push(`${formatPath(at)}${owner ? ` (${owner})` : ''}: ${result.problem}`);
      return undefined;
    }
    if (Array.isArray(value)) return value.map((item, i) => walk(item, [...at, i]));
    if (value && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([key, child]) => [key, walk(child, [...at, key])]));
    }
    return value;
  };
  return walk(config, []) as Resolved<RawConfig>;
}

/** Every secret reference as an empty Secret that names where it would come from; nothing is read. */
function placeholderSecrets(config: RawConfig): Resolved<RawConfig> {
  const walk = (value: unknown): unknown => {
    if (isSecretRef(value)) return new Secret('', `${describeSecretRef(value)} (not read)`);
    if (Array.isArray(value)) return value.map(walk);
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, child]) => [key, walk(child)]));
    return value;
  };
  return walk(config) as Resolved<RawConfig>;
}

type ResolvedJob = Resolved<RawConfig>['jobs'][number];

/** Makes a job's paths absolute, reads cnpg values, and fills in a cnpg job's source from them. */
function buildJob(input: ResolvedJob, at: string, resolvePath: (p: string) => string, problems: string[]): JobConfig | undefined {
  const job = { ...input, prepare: readPrepareSteps(input.prepare, at, resolvePath, problems) };
  const { target } = job;
  switch (target.kind) {
    case 'local':
      if (!job.source) return undefined;
      return { ...job, source: job.source, target: { ...target, dataDir: resolvePath(target.dataDir) } };
    case 'cnpg': {
      const valuesFile = target.valuesFile === undefined ? undefined : resolvePath(target.valuesFile);
      // Inline values were checked with the rest of the file; a values file is read and checked here.
      const values = valuesFile ? parseCnpgValues({ file: valuesFile }, `${at}.target`, formatPath, problems) : target.values;
      if (!values) return undefined;
      const conflict = superuserSecretConflict({
        cluster: target.cluster,
        clusterName: target.clusterName,
        ownerSecret: values.bootstrapDB.pg_basebackup.secret?.name,
        owner: values.bootstrapDB.pg_basebackup.owner,
      });
      if (conflict) problems.push(`${at}.target.cluster.superuserSecret.name: ${conflict}`);
      const source = job.source ?? sourceFromValues(values, `${at}.target.values.externalClusters`, problems);
      if (!source) return undefined;
      return {
        ...job,
        source,
        target: {
          ...target,
          values,
          ...(valuesFile ? { valuesFile } : {}),
          ...(target.kubeconfig ? { kubeconfig: resolvePath(target.kubeconfig) } : {}),
        },
      };
    }
  }
}

function buildConfig(raw: Resolved<RawConfig>, resolvePath: (p: string) => string, source: string, problems: string[]): Config {
  const jobs = raw.jobs.map((job, i) => buildJob(job, `jobs[${i}]`, resolvePath, problems));
  return {
    ...raw,
    path: source,
    stateDir: resolvePath(raw.stateDir),
    jobs: jobs.filter((job): job is JobConfig => job !== undefined),
  };
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
