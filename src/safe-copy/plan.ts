import type { JobConfig } from '../config/types.js';
import { describeNeutralisation, neutralisationEnabled } from './neutralise-sql.js';
import { describeRoles } from './roles-sql.js';

/**
 * What the private window holds for a job, in words for `plan` and as a yes/no
 * for the targets: with nothing to do, a copy starts open at once (no extra
 * restart). Masking adds its own work here.
 */

export interface SafeCopyPlan {
  neutralise: string[];
  roles: string[];
  prepare: string[];
}

export function safeCopyPlan(job: JobConfig): SafeCopyPlan {
  return {
    neutralise: describeNeutralisation(job.neutralise),
    roles: describeRoles(job.roles),
    prepare: job.prepare.map(
      (step, i) =>
        `${i + 1}. ${step.name} in ${step.database}: ${step.file ?? `${step.sql.trim().split('\n')[0]?.slice(0, 80) ?? ''}${step.sql.length > 80 ? '…' : ''}`}` +
        `${step.transaction ? '' : ' (no transaction)'}, timeout ${step.timeoutSeconds} s`,
    ),
  };
}

/** Whether the copy must start privately: something runs on it before its users may connect (masking among them: nobody reads it unmasked). */
export function needsPrivateWindow(job: JobConfig): boolean {
  return (
    neutralisationEnabled(job.neutralise) ||
    job.roles.length > 0 ||
    job.prepare.length > 0 ||
    job.mask !== undefined ||
    (job.target.kind === 'local' && job.verify.owner !== undefined)
  );
}
