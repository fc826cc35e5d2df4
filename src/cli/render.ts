import { stringify } from 'yaml';
import { tables, totalTables } from '../checks/compare.js';
import { formatBytes } from '../config/byte-size.js';
import type { JobConfig } from '../config/types.js';
import { formatDuration } from '../duration.js';
import { describeMaskConfig } from '../mask/plan.js';
import type { Check } from '../run/facts.js';
import type { PhaseName, PhaseRecord, RunRecord, TargetDescription } from '../run/record.js';
import { type SafeCopyPlan, safeCopyPlan } from '../safe-copy/plan.js';
import { type Paint, plain } from './color.js';

/** Pure text renderers for the CLI. Objects in, strings out. */

export const OUTPUT_FORMATS = ['text', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function serialize(value: unknown, format: 'json' | 'yaml'): string {
  // Round-trip through JSON so Secret values print as their placeholders in YAML too.
  const plain = JSON.parse(JSON.stringify(value)) as unknown;
  return format === 'json' ? `${JSON.stringify(plain, null, 2)}\n` : stringify(plain);
}

export interface Plan {
  job: string;
  description?: string | undefined;
  source: { host: string; port: number; user: string; sslmode: string; auth: string; sqlUser: string };
  target: TargetDescription;
  schedule: { expression: string; timezone: string; suspended: boolean } | null;
  verify: { databases: string[] | 'all connectable databases on the source'; sizeTolerancePercent: number; ownerLogin: string | null };
  steps: Array<{ phase: PhaseName; action: string; destructive: boolean }>;
  /** Every masked column with its strategy (`database: schema.table.column: strategy`); null when the job does not mask. */
  masking: { columns: string[]; coverage: string; allow: string[]; parallel: number } | null;
  /** What the private window holds: neutralisation items, test roles, prepare steps. */
  safeCopy: SafeCopyPlan;
}

/** How db-refresher authenticates to the source: configured secrets, or for cnpg jobs the Kubernetes Secrets the values name. */
function sourceAuth(job: JobConfig): string {
  const { source } = job;
  if (source.sslCert) return 'TLS client certificate';
  if (source.password) return 'password';
  if (job.target.kind === 'cnpg') {
    const { values, namespace } = job.target;
    const external = values.externalClusters.find((c) => c.name === values.bootstrapDB.pg_basebackup.source);
    const from = (s: { name: string; key: string }) => `Secret ${namespace}/${s.name} key ${s.key}`;
    if (external?.sslCert) return `TLS client certificate from ${from(external.sslCert)}, read at run time`;
    if (external?.password) return `password from ${from(external.password)}, read at run time`;
  }
  return 'no secret configured (trust, peer or .pgpass)';
}

/** `steps` come from the phase table (planSteps in src/runner/phases). */
export function buildPlan(job: JobConfig, target: TargetDescription, steps: Plan['steps']): Plan {
  const { source } = job;
  const auth = sourceAuth(job);
  const databases = job.verify.databases.length
    ? job.verify.databases.map((d) => d.name)
    : ('all connectable databases on the source' as const);
  return {
    job: job.name,
    description: job.description,
    source: { host: source.host, port: source.port, user: source.user, sslmode: source.sslmode, auth, sqlUser: source.sql.user },
    target,
    schedule: job.schedule ? { expression: job.schedule, timezone: job.timezone, suspended: job.suspend } : null,
    verify: {
      databases,
      sizeTolerancePercent: job.verify.sizeTolerancePercent,
      ownerLogin:
        typeof job.verify.owner === 'object'
          ? `${job.verify.owner.user}@${job.verify.owner.database}`
          : job.verify.owner === 'warn'
            ? "the target's owner (another database owner only warns)"
            : null,
    },
    masking: job.mask
      ? {
          columns: describeMaskConfig(job.mask.databases),
          coverage: job.mask.coverage,
          allow: [...job.mask.allow],
          parallel: job.mask.parallel,
        }
      : null,
    steps,
    safeCopy: safeCopyPlan(job),
  };
}

export function renderPlanText(plan: Plan): string {
  const lines = [`Plan for job "${plan.job}" (nothing has been changed)`];
  if (plan.description) lines.push(`  ${plan.description}`);
  lines.push(
    '',
    `Source:   ${plan.source.user}@${plan.source.host}:${plan.source.port} (sslmode ${plan.source.sslmode}, ${plan.source.auth}; SQL checks as ${plan.source.sqlUser})`,
    `Target:   ${plan.target.summary}`,
    `Schedule: ${plan.schedule ? `${plan.schedule.expression} (${plan.schedule.timezone})${plan.schedule.suspended ? ', suspended' : ''}` : 'none: manual runs only'}`,
    '',
    'Steps:',
  );
  plan.steps.forEach((step, i) => {
    lines.push(`  ${i + 1}. ${step.phase.padEnd(10)} ${step.destructive ? '[changes the target] ' : ''}${step.action}`);
  });
  if (plan.masking) {
    lines.push(
      '',
      `Masking (${plan.masking.columns.length} columns, up to ${plan.masking.parallel} tables at once; coverage check: ${plan.masking.coverage}):`,
      ...plan.masking.columns.map((c) => `  ${c}`),
    );
    if (plan.masking.allow.length > 0) lines.push(`  allowed unmasked: ${plan.masking.allow.join(', ')}`);
  }
  const manifest = plan.target.details.manifest;
  if (manifest) {
    lines.push('', 'Cluster manifest (db-refresher adds its labels and run annotations when it creates it):', '');
    lines.push(
      ...stringify(manifest)
        .trimEnd()
        .split('\n')
        .map((l) => `  ${l}`),
    );
  }
  return `${lines.join('\n')}\n`;
}

const STATUS_MARK: Record<PhaseRecord['status'], string> = {
  pending: '·',
  running: '…',
  succeeded: '✓',
  failed: '✗',
  skipped: '-',
};

function renderChecks(checks: readonly Check[], indent: string, paint: Paint): string[] {
  return checks.map(
    (c) => `${indent}${c.ok ? (c.severity === 'warning' ? paint.yellow('!') : paint.green('✓')) : paint.red('✗')} ${c.name}: ${c.message}`,
  );
}

export function renderRunText(run: RunRecord, paint: Paint = plain): string {
  const lines = [
    `Run ${run.id} of job "${run.job}"${run.dryRun ? ' (dry run)' : ''}: ${paint.status(run.status, run.status.toUpperCase())} in ${formatDuration(run.durationMs)}`,
  ];
  lines.push(`  target: ${run.target.summary}`);
  lines.push('', 'Phases:');
  for (const phase of run.phases) {
    lines.push(
      `  ${paint.status(phase.status, STATUS_MARK[phase.status])} ${phase.name.padEnd(9)} ${phase.status === 'skipped' ? `skipped (${phase.reason ?? ''})` : formatDuration(phase.durationMs)}`,
    );
  }
  if (run.preflight && (run.status !== 'succeeded' || run.dryRun)) {
    lines.push('', 'Preflight:', ...renderChecks(run.preflight, '  ', paint));
  }
  if (run.verification) {
    lines.push('', 'Verification:');
    for (const db of run.verification.databases) {
      const figures = db.copy ? ` (${formatBytes(db.copy.sizeBytes)}, ${tables(totalTables(db.copy))}, owner ${db.copy.owner})` : '';
      lines.push(`  ${db.database}${figures}`, ...renderChecks(db.checks, '    ', paint));
    }
    lines.push(...renderChecks(run.verification.checks, '  ', paint));
  } else if (run.snapshot && run.dryRun) {
    lines.push('', 'Source snapshot:');
    for (const db of run.snapshot.databases)
      lines.push(`  ${db.database}: ${formatBytes(db.sizeBytes)}, ${tables(totalTables(db))}, owner ${db.owner}`);
  }
  if (run.error) {
    lines.push('', paint.red(`Failed in ${run.error.phase}: ${run.error.class}`), `  ${run.error.message}`);
    if (run.error.targetDown) lines.push(`  ${run.error.targetDown}`);
    lines.push(`  What to do: ${run.error.hint}`);
    if (run.error.details?.length) lines.push('  Details:', ...run.error.details.map((d) => `    ${d}`));
  }
  return `${lines.join('\n')}\n`;
}
