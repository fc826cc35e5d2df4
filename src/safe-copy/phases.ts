import type { JobConfig } from '../config/types.js';
import { PhaseFailure } from '../errors.js';
import type { OwnerLogin, PhaseContext, SqlConnector, Target } from '../ports.js';
import type { Check } from '../run/facts.js';
import type { PhaseDetail, RunRecord } from '../run/record.js';
import { type CopyAccess, withCopySession } from './access.js';
import { neutralisedChecks, readNeutralisedFacts } from './checks.js';
import { neutraliseCopy } from './neutralise.js';
import { keptRoles, neutralisationEnabled } from './neutralise-sql.js';
import { needsPrivateWindow } from './plan.js';
import { runPrepareSteps } from './prepare.js';
import { whileRestarting } from './reconnect.js';
import { applyRoles } from './roles.js';

/**
 * The safe-copy phases, between `start` and `verify`: `neutralise` (built in),
 * `prepare` (the job's roles and steps), and `open`, which ends the private
 * window. Masking runs between `prepare` and `open`, through the same
 * `copyAccess`. Each returns what goes into its phase's record.
 */

export interface SafeCopyInput {
  job: JobConfig;
  target: Target;
  sql: SqlConnector;
}

/** How the phases reach the copy during the private window. */
export async function copyAccess(input: SafeCopyInput, ctx: PhaseContext): Promise<CopyAccess> {
  if (!input.target.privateAccess) throw new Error(`the ${input.job.target.kind} target has no private window`);
  const access = await input.target.privateAccess(ctx);
  return { sql: input.sql, endpoint: access.endpoint, maintenanceDatabase: access.maintenanceDatabase };
}

/** The owner the job names in verify.owner; `warn` names none (the target's own owner, only warned about). */
function ownerCheck(job: SafeCopyInput['job']) {
  const owner = job.verify.owner;
  return typeof owner === 'object' ? owner : undefined;
}

async function ownerOf(input: SafeCopyInput, ctx: PhaseContext): Promise<string | undefined> {
  return ownerCheck(input.job)?.user ?? (await input.target.defaultOwner?.(ctx))?.user;
}

export async function neutralisePhase(input: SafeCopyInput, ctx: PhaseContext): Promise<PhaseDetail> {
  const { job, target } = input;
  if (!neutralisationEnabled(job.neutralise)) return { skipped: 'neutralise: false in the job' };
  if (!target.privateAccess) return { skipped: `the ${job.target.kind} target has no private window yet` };
  const keep = keptRoles({
    settings: job.neutralise,
    testRoles: job.roles.map((r) => r.name),
    owner: await ownerOf(input, ctx),
    connectsAs: [],
    operatorManaged: target.reservedRoles?.() ?? [],
  });
  const report = await neutraliseCopy(await copyAccess(input, ctx), job.neutralise, keep);
  ctx.log.info({ neutralised: report }, 'copy neutralised');
  return { ...report };
}

export async function preparePhase(input: SafeCopyInput, ctx: PhaseContext): Promise<PhaseDetail> {
  const { job } = input;
  // CNPG applies the owner's password from the owner's Secret; a local copy gets it here.
  const owner = job.target.kind === 'local' ? ownerCheck(job) : undefined;
  if (job.roles.length === 0 && job.prepare.length === 0 && !owner) return { skipped: 'no roles or steps in the job' };
  if (!input.target.privateAccess) {
    if (job.roles.length === 0 && job.prepare.length === 0) return { skipped: `the ${job.target.kind} target has no private window` };
    throw new Error(`the ${job.target.kind} target cannot run roles or prepare steps yet`);
  }
  const access = await copyAccess(input, ctx);
  const roles = await applyRoles(access, job.roles, owner);
  const steps = await runPrepareSteps(access, job.prepare, ctx);
  return { roles, steps };
}

/**
 * Ends the private window. First, as the superuser, it checks that nothing
 * neutralise switched off is live (a failing check keeps the copy closed), then
 * the target lets the users in.
 */
export async function openPhase(input: SafeCopyInput, ctx: PhaseContext): Promise<PhaseDetail> {
  const { job, target } = input;
  if (!needsPrivateWindow(job)) return { skipped: 'the copy started open: nothing ran before its users' };
  if (!target.open || !target.privateAccess) return { skipped: `the ${job.target.kind} target has no private window yet` };
  // Resumed after a kill that came once the copy was open: its checks passed before it opened, and verify reads them again.
  if (await target.windowOpened?.(ctx)) return { alreadyOpen: true };
  const checks = neutralisationEnabled(job.neutralise) ? await privateChecks(input, ctx) : [];
  const failing = checks.filter((c) => !c.ok);
  if (failing.length > 0) {
    throw new PhaseFailure('verification-failed', `the copy stays closed: ${failing.map((c) => c.message).join('; ')}`, {
      details: failing.map((c) => `${c.name}: ${c.message}`),
    });
  }
  return { ...(await target.open(ctx)), ...(checks.length ? { checks } : {}) };
}

/** How long the checks before `open` wait for a copy that is restarting (a resumed CNPG open). */
const RESTART_WAIT_MS = 120_000;

async function privateChecks(input: SafeCopyInput, ctx: PhaseContext): Promise<Check[]> {
  const facts = await whileRestarting(
    async () => {
      const access = await copyAccess(input, ctx);
      return withCopySession(access, access.maintenanceDatabase, (session) =>
        readNeutralisedFacts(session, input.job.neutralise, (db, fn) => withCopySession(access, db, fn)),
      );
    },
    { signal: ctx.signal, timeoutMs: RESTART_WAIT_MS },
  );
  return neutralisedChecks(input.job.neutralise, facts);
}

/**
 * Verification's share: what neutralise switched off is still off, read as
 * the verifying role on the open copy. pg_cron's jobs are visible only to a
 * superuser; for another role the check made as the superuser just before the
 * copy opened stands in.
 */
export async function neutralisedVerification(input: SafeCopyInput, run: RunRecord, owner?: OwnerLogin): Promise<Check[]> {
  const { job, target, sql } = input;
  if (!neutralisationEnabled(job.neutralise) || !target.privateAccess) return [];
  const database = job.source.dbname;
  // CNPG's endpoint logs in as the copy's owner, with the password from its Secret.
  const facts = await sql.withSession(target.endpoint(database, owner), database, (session) =>
    readNeutralisedFacts(session, job.neutralise, (db, fn) => sql.withSession(target.endpoint(db, owner), db, fn)),
  );
  const checks = neutralisedChecks(job.neutralise, facts);
  if (job.neutralise.cron && facts.activeCronJobs === undefined) {
    const before = (run.phases.find((p) => p.name === 'open')?.detail?.checks as Check[] | undefined)?.find(
      (c) => c.name === 'no active cron job',
    );
    if (before) checks.push({ ...before, message: `${before.message} (read as the superuser just before the copy opened)` });
  }
  return checks;
}
