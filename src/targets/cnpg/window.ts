import { Secret } from '../../config/secret.js';
import type { NeutraliseSettings, PgEndpoint } from '../../config/types.js';
import { PhaseFailure } from '../../errors.js';
import type { Clock, PhaseContext, PrivateAccess, SqlConnector } from '../../ports.js';
import type { PhaseDetail } from '../../run/record.js';
import type { ClusterApi } from './cluster-api.js';
import {
  HBA_NOT_LOADED,
  hbaReloadWanted,
  notYetOpen,
  OPENED_QUERY,
  type OpenedFacts,
  openPatch,
  PRIVATE_SUPERUSER,
  privateParameters,
  RELOAD_QUERY,
  type ReloadAsked,
  type UserWindowSettings,
  userWindowSettings,
  withholdsCron,
} from './private-window.js';

/**
 * The CNPG clone's private window at run time (the pure builders are in
 * private-window.ts): how db-refresher reaches the closed clone, and how it
 * opens it. The clone is created closed (`withPrivateWindow`); during the
 * window db-refresher logs in as `postgres` with the password CloudNativePG
 * puts in the `<cluster>-superuser` Secret (BEHAVIOUR.md §10.7), through the
 * same host and port as every client, where the clone's pg_hba admits no one
 * else (§10.3).
 */

export interface WindowInput {
  api: ClusterApi;
  sql: SqlConnector;
  clock: Clock;
  /** The spec the values render to, without the private window: what the user asked for. */
  userSpec: Record<string, unknown>;
  settings: NeutraliseSettings;
  /** The host and port every client uses (the -rw Service, or target.connect). */
  host: string;
  port: number;
  timeoutSeconds: number;
}

export const MAINTENANCE_DATABASE = 'postgres';

/** Roles CloudNativePG logs in with (§10.3 fixed rules, §2.4): a password reset keeps them. */
export const OPERATOR_ROLES = ['postgres', 'streaming_replica', 'cnpg_metrics_exporter', 'cnpg_pooler_pgbouncer'];

function superuserSecretName(input: WindowInput): string {
  const named = (input.userSpec.superuserSecret as { name?: string } | undefined)?.name;
  return named || `${input.api.name}-superuser`;
}

/**
 * The superuser's door during the window: the password CloudNativePG
 * generated (or the user's superuserSecret). An `open` killed after its last
 * patch left superuser access off (CloudNativePG then deletes the generated
 * Secret and empties the password, §10.7), so the resumed phase turns it on
 * again and waits until the superuser logs in; the resumed `open` turns it
 * off at its end. The copy was prepared before that first `open`.
 */
export async function privateAccess(input: WindowInput, ctx?: PhaseContext): Promise<PrivateAccess> {
  const cluster = await input.api.getCluster();
  const spec = (cluster?.spec ?? {}) as { enableSuperuserAccess?: boolean };
  if (cluster && spec.enableSuperuserAccess !== true) {
    await input.api.patchCluster({ spec: { enableSuperuserAccess: true } });
    ctx?.log.warn({ cluster: input.api.where }, 'private window: superuser access was off (an interrupted open); turned it on again');
    return reopenedAccess(input, ctx);
  }
  return accessFromSecret(input);
}

async function accessFromSecret(input: WindowInput): Promise<PrivateAccess> {
  const name = superuserSecretName(input);
  const read = await input.api.readSecretKey({ name, key: 'password' });
  if (read.value === undefined) {
    throw new PhaseFailure('unknown', `cannot log in to the closed copy as ${PRIVATE_SUPERUSER}: ${read.problem}`, {
      hint: 'db-refresher creates the copy with enableSuperuserAccess: true; CloudNativePG writes the password into that Secret once the Cluster is created.',
    });
  }
  const password = new Secret(read.value, `k8s:${input.api.namespace}/${name}/password`);
  const endpoint = (database: string): PgEndpoint => ({
    host: input.host,
    port: input.port,
    user: PRIVATE_SUPERUSER,
    password,
    dbname: database,
    sslmode: 'prefer',
  });
  return { endpoint, maintenanceDatabase: MAINTENANCE_DATABASE };
}

/** Waits until CloudNativePG wrote the superuser's Secret again and applied its password (asynchronously, §10.7). */
async function reopenedAccess(input: WindowInput, ctx?: PhaseContext): Promise<PrivateAccess> {
  const deadline = input.clock.now().getTime() + input.timeoutSeconds * 1000;
  for (;;) {
    if (ctx?.signal.aborted) throw ctx.signal.reason ?? new Error('aborted');
    let why: string;
    try {
      const access = await accessFromSecret(input);
      await input.sql.withSession(access.endpoint(MAINTENANCE_DATABASE), MAINTENANCE_DATABASE, (session) => session.query('SELECT 1'));
      return access;
    } catch (error) {
      why = (error as Error).message;
    }
    if (input.clock.now().getTime() > deadline) {
      throw new PhaseFailure(
        'timeout',
        `superuser access to the copy was turned on again but ${PRIVATE_SUPERUSER} could not log in within ${input.timeoutSeconds} s: ${why}`,
        { hint: 'CloudNativePG recreates the superuser Secret and applies its password; check the operator and instance Pod logs.' },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/**
 * Opens the window: patches pg_hba and the parameters back to the user's
 * (CloudNativePG reloads, and restarts the primary in place for the
 * parameters that need it, §10.1), waits as the superuser until that took
 * effect, then puts superuser access and ALTER SYSTEM back. Each patch is a
 * merge patch to a fixed state, so a resumed `open` redoes it harmlessly.
 */
export async function openWindow(input: WindowInput, ctx: PhaseContext): Promise<PhaseDetail> {
  const user: UserWindowSettings = userWindowSettings(input.userSpec);
  const started = input.clock.now().getTime();
  await input.api.patchCluster(openPatch({ ...user, settings: input.settings, part: 'access' }));
  ctx.log.info({ cluster: input.api.where }, 'private window: pg_hba and parameters patched back to the user values');
  const access = await privateAccess(input, ctx);
  const waited = await waitOpened(input, user, access, ctx);
  await input.api.patchCluster(openPatch({ ...user, settings: input.settings, part: 'superuser' }));
  return {
    opened: true,
    pg_hba: user.userHba?.length ? `the user's ${user.userHba.length} rule(s)` : "CloudNativePG's default rules",
    parametersRemoved: Object.keys(privateParameters(input.settings, user)).filter((name) => user.userParameters?.[name] === undefined),
    ...(withholdsCron(input.settings, user.userLibraries) ? { pgCronLoaded: true } : {}),
    superuserAccess: user.userSuperuserAccess ?? false,
    waitedMs: input.clock.now().getTime() - started,
    reason: waited,
  };
}

async function waitOpened(input: WindowInput, user: UserWindowSettings, access: PrivateAccess, ctx: PhaseContext): Promise<string> {
  const deadline = input.clock.now().getTime() + input.timeoutSeconds * 1000;
  const names = Object.keys(privateParameters(input.settings, user));
  const window = { ...user, settings: input.settings };
  let why = 'not checked yet';
  let asked: ReloadAsked | undefined;
  for (;;) {
    if (ctx.signal.aborted) throw ctx.signal.reason ?? new Error('aborted');
    try {
      why = await input.sql.withSession(access.endpoint(MAINTENANCE_DATABASE), MAINTENANCE_DATABASE, async (session) => {
        const [facts] = await session.query<OpenedFacts & Record<string, unknown>>(OPENED_QUERY, [names]);
        if (!facts) return 'no answer';
        const pending = notYetOpen(facts, window, asked);
        // pg_hba.conf's mtime has whole seconds: a reload in the second it was written proves nothing, so ask for one now.
        if (pending && hbaReloadWanted(facts, window, asked)) {
          [asked] = await session.query<ReloadAsked & Record<string, unknown>>(RELOAD_QUERY);
        }
        return pending ?? '';
      });
      if (!why) return 'pg_hba and parameters in effect';
    } catch (error) {
      // CloudNativePG restarts the primary in place: connections fail for a moment.
      why = `cannot connect: ${(error as Error).message}`;
    }
    if (input.clock.now().getTime() > deadline) {
      throw new PhaseFailure(
        'timeout',
        `the copy was patched open but the change did not take effect within ${input.timeoutSeconds} s: ${why}`,
        { hint: 'Check the instance Pod log: CloudNativePG reloads pg_hba and restarts the primary in place for the parameters it needs.' },
      );
    }
    // Right after asking for a reload, look again soon: the postmaster handles it at once.
    await new Promise((resolve) => setTimeout(resolve, asked && why === HBA_NOT_LOADED ? 50 : 250));
  }
}
