import type { z } from 'zod';
import { configIssueMessage } from './issue-messages.js';
import { quote } from './quote.js';
import { DEFAULT_MAX_CONFIG_BYTES, type Outcome, parseYamlText, readTextFile } from './read-yaml.js';
import { SSL_MODES } from './schema.js';
import { type CnpgValues, cnpgValuesSchema } from './schema-cnpg.js';
import type { SourceConfig, SslMode } from './types.js';

/**
 * Reads a cnpg target's values (inline or from a Helm values file) and derives
 * the job's source from the externalClusters entry they clone from. Problems
 * are collected as lines with their path, like the rest of config loading.
 */

function issueLines(issues: readonly z.core.$ZodIssue[], prefix: string, formatPath: (p: readonly PropertyKey[]) => string): string[] {
  return issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => `${prefix}${formatPath([...issue.path, key])}: unknown key ${quote(key)} in the cnpg-database values`);
    }
    const at = formatPath(issue.path);
    return [`${prefix}${at === '(top level)' ? '' : at}${at === '(top level)' ? '' : ': '}${issue.message}`];
  });
}

export function parseCnpgValues(
  input: { inline?: unknown; file?: string },
  at: string,
  formatPath: (p: readonly PropertyKey[]) => string,
  problems: string[],
): CnpgValues | undefined {
  let raw: unknown = input.inline;
  let prefix = `${at}.values.`;
  if (input.file !== undefined) {
    prefix = `${at}.valuesFile (${input.file}): `;
    let read: Outcome<string>;
    try {
      read = readTextFile(input.file, DEFAULT_MAX_CONFIG_BYTES);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      problems.push(`${at}.valuesFile: ${input.file} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`);
      return undefined;
    }
    const parsed = read.ok ? parseYamlText(read.value) : read;
    if (!parsed.ok) {
      problems.push(...parsed.problems.map((p) => `${prefix}${p.replace(/^\(top level\): /, '')}`));
      return undefined;
    }
    raw = parsed.value;
  }
  const parsed = cnpgValuesSchema.safeParse(raw ?? {}, { reportInput: true, error: configIssueMessage });
  if (!parsed.success) {
    problems.push(...issueLines(parsed.error.issues, prefix, formatPath));
    return undefined;
  }
  return parsed.data;
}

/** The externalClusters entry the Cluster clones from. The schema guarantees it exists. */
export function sourceCluster(values: CnpgValues): CnpgValues['externalClusters'][number] {
  const name = values.bootstrapDB.pg_basebackup.source;
  const found = values.externalClusters.find((c) => c.name === name);
  if (!found) throw new Error(`external cluster ${name} not found`);
  return found;
}

/**
 * What db-refresher itself connects to for preflight and the source snapshot:
 * the same server the Cluster clones from. Secrets are read from Kubernetes at
 * run time, so they are absent here.
 */
export function sourceFromValues(values: CnpgValues, at: string, problems: string[]): SourceConfig | undefined {
  const { connectionParameters: params } = sourceCluster(values);
  const sslmode = (params.sslmode ?? 'prefer') as SslMode;
  if (!SSL_MODES.includes(sslmode)) {
    problems.push(`${at}: sslmode "${params.sslmode}" in the source's connectionParameters is not one of ${SSL_MODES.join(', ')}`);
    return undefined;
  }
  const port = Number(params.port ?? 5432);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    problems.push(`${at}: port "${params.port}" in the source's connectionParameters is not a port number`);
    return undefined;
  }
  const user = params.user ?? '';
  return { host: params.host ?? '', port, user, dbname: params.dbname ?? 'postgres', sslmode, sql: { user, password: undefined } };
}
