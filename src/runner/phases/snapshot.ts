import { databasesToVerify, snapshotSource } from '../../checks/verify.js';
import type { Phase } from './phase.js';
import { sourceUnavailable } from './source.js';

/** Takes the source's figures just before teardown; the age of the copy's data starts here. */
export const snapshot: Phase = {
  name: 'snapshot',
  changesTarget: false,
  runsInDryRun: true,
  resumable: { local: false, cnpg: false },
  plan: (job) => {
    const databases = job.verify.databases.length
      ? `${job.verify.databases.map((d) => d.name).join(', ')} on the source`
      : 'all connectable databases on the source';
    return `record size, owner and table counts per schema of ${databases}`;
  },
  async run(ctx) {
    const unavailable = sourceUnavailable(ctx);
    if (unavailable) return unavailable;
    const databases = await databasesToVerify(ctx.job, ctx.sql);
    const figures = await snapshotSource(ctx.job, databases, ctx.sql);
    return {
      ok: true,
      patch: { snapshot: { takenAt: ctx.clock.now().toISOString(), databases: figures } },
      detail: { databases: figures.map((f) => f.database) },
      learned: { databases },
    };
  },
};
