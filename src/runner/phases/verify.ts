import { databasesToVerify, verifyCopy } from '../../checks/verify.js';
import { neutralisedVerification } from '../../safe-copy/phases.js';
import { checksFailure, type Phase } from './phase.js';
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
    const neutralised = await neutralisedVerification(ctx, record);
    if (neutralised.length > 0) {
      verification.checks.push(...neutralised);
      verification.ok = verification.ok && neutralised.every((c) => c.ok || c.severity === 'warning');
    }
    if (!verification.ok) {
      const failing = [...verification.databases.flatMap((d) => d.checks), ...verification.checks].filter(
        (c) => !c.ok && c.severity !== 'warning',
      );
      return { ok: false, patch: { verification }, failure: checksFailure(failing, 'verification-failed') };
    }
    return { ok: true, patch: { verification }, detail: { databases: verification.databases.length } };
  },
};
