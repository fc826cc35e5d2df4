import { z } from 'zod';
import clusterSpecJsonSchema from './cnpg-cluster-spec.schema.json' with { type: 'json' };
import { checkStructural, type StructuralSchema } from './structural-schema.js';

/**
 * `target.cluster`: a partial CloudNativePG Cluster spec merged over the one
 * the values render, so a copy can be sized, tuned, scheduled, monitored and
 * given test roles. Checked against the real CRD's spec schema
 * (cnpg-cluster-spec.schema.json, generated from CNPG 1.30's CRD by
 * scripts/cnpg-cluster-schema.ts) the way the API server checks it with
 * fieldValidation=Strict, and exported in the config's JSON Schema so editors
 * complete it. Fields that would break the refresh are refused by name.
 */

const SPEC_SCHEMA = clusterSpecJsonSchema as unknown as StructuralSchema & { $comment?: string };

/** Fields db-refresher sets itself: overriding them would clone something else, or nothing. */
export const REFUSED_CLUSTER_FIELDS: Readonly<Record<string, string>> = {
  bootstrap:
    'the copy is always bootstrapped with pg_basebackup from the values (bootstrapDB.pg_basebackup: source, database, owner, secret); set them there',
  externalClusters:
    "the source is the values' externalClusters entry, which db-refresher checks, snapshots and guards against being the target; set it there",
  replica:
    'a replica cluster keeps following its source and never becomes a writable copy; db-refresher makes an independent clone, so it cannot be one',
};

export const clusterOverridesSchema = z
  .record(z.string(), z.unknown())
  .superRefine((spec, ctx) => {
    const rest: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(spec)) {
      const why = REFUSED_CLUSTER_FIELDS[key];
      if (why) ctx.addIssue({ code: 'custom', path: [key], message: `may not be set in cluster: ${why}` });
      else rest[key] = value;
    }
    for (const problem of checkStructural(rest, SPEC_SCHEMA)) {
      const message = problem.message.startsWith('unknown field')
        ? `${problem.message} in CloudNativePG's Cluster spec (CNPG 1.30); check its spelling against \`db-refresher schema\``
        : problem.message;
      ctx.addIssue({ code: 'custom', path: problem.path, message });
    }
  })
  .meta({
    description:
      'A partial CloudNativePG Cluster spec merged over the one the values render (objects merge key by key, lists and values replace): resources, postgresql.parameters, affinity, monitoring, managed.roles … Not bootstrap, externalClusters or replica.',
    properties: SPEC_SCHEMA.properties,
    additionalProperties: false,
  });

export function isClusterSpecField(key: string): boolean {
  return key in (SPEC_SCHEMA.properties ?? {});
}

/**
 * A superuserSecret that cannot work for this Cluster: the owner's Secret
 * (CloudNativePG wants username postgres there) or a Secret CloudNativePG
 * generates for the Cluster and deletes with it at every refresh.
 */
export function superuserSecretConflict(input: {
  cluster: Record<string, unknown> | undefined;
  clusterName: string;
  /** bootstrapDB.pg_basebackup.secret and owner from the values. */
  ownerSecret: string | undefined;
  owner: string;
}): string | undefined {
  const { cluster, clusterName, owner } = input;
  const name = (cluster?.superuserSecret as { name?: unknown } | undefined)?.name;
  if (typeof name !== 'string') return undefined;
  const generated = ['ca', 'server', 'replication', 'app', 'superuser'].map((s) => `${clusterName}-${s}`);
  if (generated.includes(name)) {
    return `"${name}" is a Secret CloudNativePG generates for Cluster ${clusterName} and deletes with it at every refresh; create your own Secret (username postgres) under another name`;
  }
  if (input.ownerSecret === name) {
    return `"${name}" is the owner's Secret (bootstrapDB.pg_basebackup.secret, username ${owner}); CloudNativePG needs username postgres in the superuser Secret and would fail with "wrong username '${owner}' in secret, expected 'postgres'"`;
  }
  return undefined;
}
