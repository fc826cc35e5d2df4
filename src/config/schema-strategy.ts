import { z } from 'zod';
import { MAX_DURATION_SECONDS } from './limits.js';

/**
 * How a run replaces the copy: `recreate` (tear down, then clone; the copy is
 * down meanwhile) or `blueGreen` (clone beside the current copy while it
 * serves, then swap). `strategy: blueGreen` is short for `{kind: blueGreen}`
 * with the defaults below. Rules that need the target (which keys fit which
 * target kind) are in strategyIssues(), called from the job schema.
 */

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `0`, `90`, `90s`, `30m`, `1h`, `1h30m`, `7d` → seconds; undefined when not a duration. */
export function parseDurationSeconds(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  if (!/^(\d+[smhd])+$/.test(text)) return undefined;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+)([smhd])/g)) total += Number(amount) * (UNIT_SECONDS[unit as string] ?? 0);
  return total;
}

const duration = z
  .union([
    z.string(),
    z
      .number()
      .int()
      .min(0)
      .max(MAX_DURATION_SECONDS, { error: `must be at most ${MAX_DURATION_SECONDS} seconds (about 24 days)` }),
  ])
  .refine((value) => parseDurationSeconds(value) !== undefined, {
    error: (issue) => `"${String(issue.input)}" is not a duration; write e.g. 0, 90s, 30m, 1h or 1h30m`,
  })
  .refine((value) => (parseDurationSeconds(value) ?? 0) <= MAX_DURATION_SECONDS, {
    error: `must be at most ${MAX_DURATION_SECONDS} seconds (about 24 days)`,
  })
  .describe(`A duration: seconds as a number (0-${MAX_DURATION_SECONDS}), or 90s, 30m, 1h, 1h30m, 7d`);

const port = z.number().int().min(1, { error: 'must be a port number 1-65535' }).max(65535, { error: 'must be a port number 1-65535' });

const endpoint = z.strictObject({ host: z.string().min(1), port: port.default(5432) });

const recreate = z
  .strictObject({ kind: z.literal('recreate') })
  .describe('Tear the copy down, then clone it again (the copy is down meanwhile)');

const blueGreen = z
  .strictObject({
    kind: z.literal('blueGreen'),
    keepPrevious: duration
      .default('1h')
      .describe('How long the previous copy is kept after a swap, for `db-refresher rollback`; 0 removes it right after the swap'),
    drainSeconds: z
      .number()
      .int()
      .min(0)
      .max(3600)
      .default(10)
      .describe(
        'How long connections to the old copy may keep running: local, before the old copy is stopped; cnpg, after the Service points at the new Cluster',
      ),
    sparePort: port
      .optional()
      .describe('local: port the new copy listens on while it is prepared and verified; default: a free port picked at clone time'),
    serviceName: z
      .string()
      .regex(/^[a-z]([-a-z0-9]*[a-z0-9])?$/, {
        error: (issue) => `"${String(issue.input)}" is not a valid Service name (a DNS-1035 label: lowercase letters, digits and "-")`,
      })
      .max(63)
      .optional()
      .describe('cnpg: the stable Service db-refresher owns and clients connect to; default: the target clusterName'),
    connect: z
      .strictObject({ a: endpoint.optional(), b: endpoint.optional() })
      .optional()
      .describe(
        'cnpg: how db-refresher reaches <clusterName>-a and -b when it runs outside the cluster; default <cluster>-rw.<namespace>.svc:5432',
      ),
  })
  .describe('Build the new copy beside the current one, verify it, then swap; the previous copy is kept for rollback');

const strategyObject = z.discriminatedUnion('kind', [recreate, blueGreen], {
  error: (issue) =>
    issue.code === 'invalid_union' && issue.input && typeof issue.input === 'object' && 'kind' in issue.input
      ? `strategy kind "${String((issue.input as { kind: unknown }).kind)}" is not supported; use recreate or blueGreen`
      : 'must be recreate, blueGreen or {kind: blueGreen, …}',
});

export const strategySchema = z
  .preprocess((value) => (typeof value === 'string' ? { kind: value } : value), strategyObject.optional())
  .transform((s = { kind: 'recreate' as const }) =>
    s.kind === 'recreate' ? s : { ...s, keepPreviousSeconds: parseDurationSeconds(s.keepPrevious) ?? 3600 },
  )
  .describe('How a run replaces the copy: recreate (default), blueGreen, or {kind: blueGreen, keepPrevious, drainSeconds, …}');

export type StrategyConfig = z.output<typeof strategySchema>;
export type BlueGreenConfig = Extract<StrategyConfig, { kind: 'blueGreen' }>;

/** The longest cnpg Cluster name that still leaves room for the blue/green suffix (CNPG allows 50). */
export const BLUE_GREEN_MAX_CLUSTER_NAME = 48;

/**
 * Rules between the strategy and the target. Returns [path below the job, message] pairs, so the job
 * schema can report them where they belong.
 */
export function strategyIssues(
  strategy: StrategyConfig,
  target: { kind: string; port?: number; clusterName?: string },
): Array<{ path: (string | number)[]; message: string }> {
  if (strategy.kind !== 'blueGreen') return [];
  const issues: Array<{ path: (string | number)[]; message: string }> = [];
  if (target.kind === 'local') {
    if (strategy.serviceName !== undefined)
      issues.push({ path: ['strategy', 'serviceName'], message: 'applies to cnpg targets only; a local copy keeps its port' });
    if (strategy.connect !== undefined)
      issues.push({ path: ['strategy', 'connect'], message: 'applies to cnpg targets only; a local copy is reached on its port' });
    if (strategy.sparePort !== undefined && strategy.sparePort === target.port)
      issues.push({
        path: ['strategy', 'sparePort'],
        message: `must differ from target.port (${target.port}): the new copy runs beside the current one until the swap`,
      });
  }
  if (target.kind === 'cnpg') {
    if (strategy.sparePort !== undefined)
      issues.push({ path: ['strategy', 'sparePort'], message: 'applies to local targets only; the new Cluster has its own Services' });
    const name = target.clusterName ?? '';
    if (name.length > BLUE_GREEN_MAX_CLUSTER_NAME)
      issues.push({
        path: ['target', 'clusterName'],
        message: `must be at most ${BLUE_GREEN_MAX_CLUSTER_NAME} characters with strategy blueGreen: the two Clusters are named ${name}-a and ${name}-b, and CloudNativePG allows 50`,
      });
    const service = strategy.serviceName ?? name;
    // CNPG refuses to reconcile a Cluster when a Service it would create already exists and is not its own (BEHAVIOUR.md §10.5).
    const reserved = ['a', 'b'].flatMap((slot) => ['rw', 'ro', 'r', 'any'].map((suffix) => `${name}-${slot}-${suffix}`));
    if (reserved.includes(service))
      issues.push({
        path: ['strategy', 'serviceName'],
        message: `"${service}" is a name CloudNativePG gives one of the Clusters' own Services; choose another name`,
      });
  }
  return issues;
}
