import type { NeutraliseSettings } from '../../config/types.js';

/**
 * Pure builders for a CNPG clone's private window (BEHAVIOUR.md §10, CNPG
 * 1.30). Rules and parameters present when the Cluster is created are in
 * effect from PostgreSQL's first start in the instance Pod (§10.1 "No restart
 * is needed for settings present at creation", §10.3 "Rules in the spec at
 * creation protect the clone from its first start"), so the clone is created
 * closed:
 * - `spec.postgresql.pg_hba` admits only the superuser db-refresher logs in
 *   as (its password is in the `<cluster>-superuser` Secret that
 *   `enableSuperuserAccess` creates) and rejects everyone else. User rules come
 *   after CNPG's fixed rules and before its default `host all all all
 *   scram-sha-256`, and PostgreSQL uses the first match.
 * - `max_logical_replication_workers: 0` (allowed in the spec; CNPG sets no
 *   default) keeps subscriptions from starting apply workers, and
 *   `cron.max_running_jobs: 0` (cron.* keys are allowed) keeps pg_cron from
 *   starting jobs, should the values load it.
 * - `enableAlterSystem: true` lets neutralise reset what the source's
 *   postgresql.auto.conf carried over (CNPG never rewrites that file, §10.2).
 *
 * Opening is one merge patch: pg_hba back to the user's rules (a reload),
 * the two parameters removed (both need a restart: CNPG restarts the primary
 * in place), ALTER SYSTEM and superuser access off again.
 */

export const PRIVATE_SUPERUSER = 'postgres';

export function privateHbaRules(): string[] {
  return [`host all ${PRIVATE_SUPERUSER} all scram-sha-256`, 'host all all all reject'];
}

export function privateParameters(settings: NeutraliseSettings): Record<string, string> {
  return {
    ...(settings.subscriptions ? { max_logical_replication_workers: '0' } : {}),
    'cron.max_running_jobs': '0',
  };
}

/** Merges the private window into a Cluster spec built from the values. */
export function withPrivateWindow(spec: Record<string, unknown>, settings: NeutraliseSettings): Record<string, unknown> {
  const postgresql = (spec.postgresql ?? {}) as Record<string, unknown>;
  return {
    ...spec,
    enableSuperuserAccess: true,
    postgresql: {
      ...postgresql,
      enableAlterSystem: true,
      pg_hba: privateHbaRules(),
      parameters: { ...((postgresql.parameters ?? {}) as Record<string, string>), ...privateParameters(settings) },
    },
  };
}

/** The JSON merge patch that opens the clone: `null` removes a key. */
export function openPatch(input: {
  settings: NeutraliseSettings;
  userHba?: string[] | undefined;
  userParameters?: Record<string, string> | undefined;
  userSuperuserAccess?: boolean | undefined;
}): Record<string, unknown> {
  const parameters: Record<string, string | null> = {};
  for (const name of Object.keys(privateParameters(input.settings))) parameters[name] = input.userParameters?.[name] ?? null;
  return {
    spec: {
      enableSuperuserAccess: input.userSuperuserAccess ?? false,
      postgresql: { enableAlterSystem: false, pg_hba: input.userHba?.length ? input.userHba : null, parameters },
    },
  };
}
