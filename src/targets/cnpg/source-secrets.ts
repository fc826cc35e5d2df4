import { sourceCluster } from '../../config/cnpg-values.js';
import type { CnpgValues } from '../../config/schema-cnpg.js';
import { Secret } from '../../config/secret.js';
import type { SourceConfig } from '../../config/types.js';
import type { Check } from '../../run/facts.js';
import type { ClusterApi } from './cluster-api.js';

/**
 * Completes the job's source from the Kubernetes Secrets the values name (the
 * externalClusters entry's password or certificates), and checks the owner's
 * Secret the way CloudNativePG will read it (BEHAVIOUR.md §2.4).
 */
export async function resolveSourceSecrets(
  api: ClusterApi,
  values: CnpgValues,
  source: SourceConfig,
): Promise<{ source: SourceConfig; checks: Check[] }> {
  const external = sourceCluster(values);
  const checks: Check[] = [];
  const failed = (message: string): Check => ({
    name: 'referenced secrets exist',
    ok: false,
    failureClass: 'authentication-failed',
    message,
  });
  const resolved: SourceConfig = { ...source };
  for (const field of ['password', 'sslCert', 'sslKey', 'sslRootCert'] as const) {
    const selector = external[field];
    if (!selector) continue;
    const result = await api.readSecretKey(selector);
    if (result.problem) checks.push(failed(`externalClusters "${external.name}" ${field}: ${result.problem}`));
    else if (resolved[field] === undefined && result.value !== undefined) {
      resolved[field] = new Secret(result.value, `k8s:${api.namespace}/${selector.name}/${selector.key}`);
    }
  }
  // The SQL role defaults to the replication role, and so does its password.
  if (resolved.sql.password === undefined && resolved.sql.user === resolved.user)
    resolved.sql = { ...resolved.sql, password: resolved.password };

  const { owner, secret: appSecret } = values.bootstrapDB.pg_basebackup;
  if (appSecret) {
    const username = await api.readSecretKey({ name: appSecret.name, key: 'username' });
    const password = await api.readSecretKey({ name: appSecret.name, key: 'password' });
    const problem = username.problem ?? password.problem;
    if (problem) checks.push(failed(`bootstrapDB.pg_basebackup.secret: ${problem}`));
    else if (username.value !== owner) {
      checks.push(
        failed(
          `Secret ${api.namespace}/${appSecret.name} has username "${username.value}", but the owner is "${owner}"; CNPG would fail with "wrong username '${username.value}' in secret, expected '${owner}'"`,
        ),
      );
    }
  }
  if (checks.length === 0)
    checks.push({ name: 'referenced secrets exist', ok: true, message: 'every Secret the values name exists and has its keys' });
  return { source: resolved, checks };
}

/** The owner's password on the copy: from the values' secret, else the `<cluster>-app` Secret CloudNativePG generates. */
export async function ownerPassword(api: ClusterApi, values: CnpgValues): Promise<Secret | undefined> {
  const name = values.bootstrapDB.pg_basebackup.secret?.name ?? `${api.name}-app`;
  const result = await api.readSecretKey({ name, key: 'password' });
  return result.value === undefined ? undefined : new Secret(result.value, `k8s:${api.namespace}/${name}/password`);
}
