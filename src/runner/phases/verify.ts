import { CONNECTABLE_DATABASES } from '../../checks/queries.js';
import { databasesToVerify, verifyCopy } from '../../checks/verify.js';
import { checkCoverage, coverageChecks } from '../../mask/coverage.js';
import { allowsWholeDatabase } from '../../mask/coverage-rules.js';
import type { OwnerLogin } from '../../ports.js';
import { neutralisedVerification } from '../../safe-copy/phases.js';
import { checksFailure, failingChecks, type Phase, type PhaseRun } from './phase.js';
import { sourceUnavailable } from './source.js';

/** Compares the copy with the snapshot and checks the job's expectations. Read-only, so it can be redone. */
export const verify: Phase = {
  name: 'verify',
  changesTarget: false,
  runsInDryRun: false,
  resumable: { local: true, cnpg: true },
  plan: (job) =>
    `compare table counts (exact) and sizes (within ${job.verify.sizeTolerancePercent}%) with the snapshot, and check the job's expectations${typeof job.verify.owner === 'object' ? `, and that ${job.verify.owner.user} can log in` : job.verify.owner === 'warn' ? ", and that the target's owner can log in (another database owner only warns)" : ''}`,
  async run(ctx) {
    const unavailable = sourceUnavailable(ctx);
    if (unavailable) return unavailable;
    const { job, record } = ctx;
    // A resumed run verifies exactly the databases its snapshot covered.
    const fromSnapshot = record.snapshot && job.verify.databases.length === 0 ? record.snapshot.databases : undefined;
    const databases =
      ctx.learned.databases ??
      fromSnapshot?.map((f) => ({ name: f.database, requiredTables: [] })) ??
      (await databasesToVerify(job, ctx.sql));
    const copyOwner = await ctx.target.defaultOwner?.(ctx.targetContext);
    const verification = await verifyCopy({
      job,
      databases,
      sourceFigures: record.snapshot?.databases ?? [],
      target: ctx.target,
      copyOwner,
      sql: ctx.sql,
    });
    // What neutralise switched off must still be off on the open copy.
    const neutralised = await neutralisedVerification(ctx, record, copyOwner);
    if (neutralised.length > 0) {
      verification.checks.push(...neutralised);
      verification.ok = verification.ok && failingChecks(neutralised).length === 0;
    }
    const coverage = await maskingCoverage(
      ctx,
      databases.map((d) => d.name),
      copyOwner,
    );
    if (coverage) {
      verification.coverage = coverage.record;
      verification.checks.push(...coverage.checks);
      verification.ok = verification.ok && failingChecks(coverage.checks).length === 0;
    }
    if (!verification.ok) {
      const failing = failingChecks([...verification.databases.flatMap((d) => d.checks), ...verification.checks]);
      return { ok: false, patch: { verification }, failure: checksFailure(failing, 'verification-failed') };
    }
    return { ok: true, patch: { verification }, detail: { databases: verification.databases.length } };
  },
};

/**
 * The masking coverage check, when the job masks: every database of the copy
 * that accepts connections, not only the verified and masked ones, since a
 * physical copy holds them all and its users can read them all. Under `warn`
 * its findings are warnings, so they are recorded and notified without
 * failing the run.
 */
async function maskingCoverage(ctx: PhaseRun, verified: readonly string[], copyOwner: OwnerLogin | undefined) {
  const { job } = ctx;
  if (!job.mask || job.mask.coverage === 'off') return undefined;
  const { allow } = job.mask;
  // As the verifying role, like the other checks: CNPG's endpoint needs the owner's password from its Secret.
  const endpoint = (database: string) => ctx.target.endpoint(database, copyOwner);
  const known = [...new Set([...verified, ...Object.keys(job.mask.databases)])];
  const first = known[0] as string;
  const inCopy = await ctx.sql.withSession(endpoint(first), first, (session) => session.query<{ name: string }>(CONNECTABLE_DATABASES));
  const databases = [...new Set([...known, ...inCopy.map((d) => d.name)])].filter((d) => !allowsWholeDatabase(allow, d));
  const record = await checkCoverage({
    mask: job.mask,
    databases,
    endpoint,
    sql: ctx.sql,
    masking: ctx.record.masking,
  });
  return { record, checks: coverageChecks(record) };
}
