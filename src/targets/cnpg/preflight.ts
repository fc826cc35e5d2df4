import { lookup } from 'node:dns/promises';
import { formatBytes } from '../../config/byte-size.js';
import { sourceCluster } from '../../config/cnpg-values.js';
import type { CnpgTargetConfig, JobConfig } from '../../config/types.js';
import type { Check, SourceFacts } from '../../run/facts.js';
import type { ClusterApi } from './cluster-api.js';
import { configRefusals, ownershipRefusal, type SourceHost, sourceResolvesToTarget, targetServiceNames } from './guard.js';
import {
  ANNOTATIONS,
  buildCluster,
  imageMajorVersion,
  LABELS,
  MANAGED_BY_VALUE,
  quantityToBytes,
  type RenderedCluster,
} from './manifests.js';
import type { ClusterObject } from './readiness.js';

/**
 * The CNPG target's preflight: everything that can make the refresh fail or
 * do harm, checked before anything is deleted. Reads the API, changes nothing.
 */

export type CnpgJob = JobConfig & { target: CnpgTargetConfig };

/** Room on the PVC beyond the source's size, for WAL streamed during the copy. */
const ROOM_FACTOR = 1.1;

export interface PreflightInput {
  job: CnpgJob;
  jobPath: string;
  api: ClusterApi;
  /** What the Cluster will look like: image, storage, owner, from the values and `cluster:` together. */
  rendered: RenderedCluster;
}

export interface Ownership {
  existing: ClusterObject | undefined;
  /** Why the Cluster may not be replaced; undefined when it may. */
  refusal: string | undefined;
  /** absent: nothing to delete; ours: db-refresher made it for this job; adopted: someone else did, and adopt: true. */
  state: 'absent' | 'ours' | 'adopted';
}

/** The Cluster as it is now, and whether it may be replaced. Teardown asks again, right before deleting. */
export async function readOwnership(api: ClusterApi, job: CnpgJob, jobPath: string): Promise<Ownership> {
  const existing = await api.getCluster();
  const labels = existing?.metadata?.labels ?? {};
  const annotations = existing?.metadata?.annotations ?? {};
  const refusal = ownershipRefusal({
    job: job.name,
    jobPath,
    existing: existing ? { labels, annotations } : undefined,
    adopt: job.target.adopt,
    name: api.name,
    namespace: api.namespace,
  });
  const ours = labels[LABELS.managedBy] === MANAGED_BY_VALUE && annotations[ANNOTATIONS.job] === job.name;
  return { existing, refusal, state: !existing ? 'absent' : ours ? 'ours' : 'adopted' };
}

/**
 * Every host something clones from or connects to as the source: the
 * externalClusters entry CloudNativePG clones from, and db-refresher's own
 * `source` when it names another host.
 */
export function sourceHosts(job: CnpgJob, jobPath: string): SourceHost[] {
  const { values } = job.target;
  const external = sourceCluster(values);
  const index = values.externalClusters.indexOf(external);
  const hosts: SourceHost[] = [
    {
      host: external.connectionParameters.host ?? '',
      where: `${jobPath}.target.values.externalClusters[${index}].connectionParameters.host`,
    },
  ];
  if (job.source.host.toLowerCase() !== hosts[0]?.host.toLowerCase())
    hosts.unshift({ host: job.source.host, where: `${jobPath}.source.host` });
  return hosts;
}

export async function cnpgPreflight(input: PreflightInput, source: SourceFacts | undefined): Promise<Check[]> {
  const { job, api } = input;
  const checks: Check[] = [];
  const hosts = sourceHosts(job, input.jobPath);
  const refusals = configRefusals({ target: job.target, sourceHosts: hosts });
  checks.push(
    refusals.length === 0
      ? { name: 'target may be replaced', ok: true, message: `${api.where} is allowed and not protected` }
      : { name: 'target may be replaced', ok: false, failureClass: 'unsafe-target', message: refusals.join('; ') },
  );

  checks.push(
    (await api.namespaceExists())
      ? { name: 'target namespace exists', ok: true, message: `namespace ${api.namespace} exists` }
      : {
          name: 'target namespace exists',
          ok: false,
          failureClass: 'unsafe-target',
          message: `namespace ${api.namespace} does not exist; create it (kubectl create namespace ${api.namespace}) and the Secrets the values name`,
        },
  );

  const { refusal, state } = await readOwnership(api, job, input.jobPath);
  checks.push(
    refusal
      ? { name: 'target is ours to replace', ok: false, failureClass: 'unsafe-target', message: refusal }
      : { name: 'target is ours to replace', ok: true, message: ownershipMessage(state, api.where, input.jobPath) },
  );

  const orphans = await api.orphanPvcs();
  if (orphans.length > 0)
    checks.push({ name: 'no orphaned volumes', ok: false, failureClass: 'unsafe-target', message: orphanMessage(api, orphans) });

  checks.push(...(await foreignObjectChecks(api)));
  const rejected = await api.rejectsCluster(buildCluster({ name: api.name, namespace: api.namespace, spec: input.rendered.spec }));
  checks.push(
    rejected
      ? {
          name: 'Cluster spec accepted by the API server',
          ok: false,
          failureClass: 'unknown',
          message: `the Cluster db-refresher would create is refused by the CRD (a dry-run create with fieldValidation=Strict): ${rejected}. Fix the values or target.cluster; run \`db-refresher plan\` to see the manifest`,
        }
      : { name: 'Cluster spec accepted by the API server', ok: true, message: 'a dry-run create with fieldValidation=Strict passed' },
  );
  if (source) checks.push(...sourceFitChecks(input.rendered, source), ...ownerChecks(input, source));

  for (const host of hosts) {
    const resolvesToSelf = await resolvesToTarget(api, host);
    if (resolvesToSelf)
      checks.push({ name: 'source is not the target', ok: false, failureClass: 'unsafe-target', message: resolvesToSelf });
  }
  return checks;
}

function ownershipMessage(state: Ownership['state'], where: string, jobPath: string): string {
  switch (state) {
    case 'absent':
      return 'no Cluster exists yet';
    case 'ours':
      return `Cluster ${where} was created by db-refresher for this job`;
    case 'adopted':
      return `Cluster ${where} was not created by db-refresher; it is adopted (${jobPath}.target.adopt: true), so it will be deleted and recreated`;
  }
}

export function orphanMessage(api: ClusterApi, names: readonly string[]): string {
  return `PVC ${names.join(', ')} in ${api.namespace} carries cnpg.io/cluster=${api.name} but no owner (left by kubectl delete --cascade=orphan?); CloudNativePG would adopt it and reuse its old data instead of cloning. If it is disposable, delete it: kubectl delete pvc ${names.join(' ')} -n ${api.namespace}`;
}

/** "Cluster qa/old" or "no owner": who controls an object, in the words of its controller ownerReference. */
function controllerOf(object: { metadata?: { ownerReferences?: Array<{ kind: string; name: string }> } }): string {
  const refs = object.metadata?.ownerReferences ?? [];
  const controller = refs.find((r) => (r as { controller?: boolean }).controller) ?? refs[0];
  return controller ? `${controller.kind} "${controller.name}"` : 'no owner';
}

/**
 * Objects CloudNativePG creates under the Cluster's names (BEHAVIOUR.md §4.1)
 * that already exist and that it would not take over (§10.5, §4.1): the new
 * Cluster would stop at "Unable to create required cluster objects" after
 * the old one was deleted.
 */
async function foreignObjectChecks(api: ClusterApi): Promise<Check[]> {
  const problems: string[] = [];
  for (const service of await api.services(targetServiceNames(api.name))) {
    if (api.ownedByCluster(service)) continue;
    const name = service.metadata?.name ?? '';
    problems.push(
      `Service ${api.namespace}/${name} exists and is not owned by the Cluster (it has ${controllerOf(service)}); CloudNativePG would stop at "Unable to create required cluster objects" (refusing to reconcile service: ${name}, not owned by the cluster). Rename or delete that Service (kubectl delete service ${name} -n ${api.namespace}), or give the target another clusterName`,
    );
  }
  const lease = await api.readLease(api.name);
  const controller = lease?.metadata?.ownerReferences?.find((r) => (r as { controller?: boolean }).controller);
  if (lease && controller && !(controller.kind === 'Cluster' && controller.name === api.name)) {
    problems.push(
      `Lease ${api.namespace}/${api.name} is controlled by ${controller.kind} "${controller.name}"; CloudNativePG 1.30 uses a Lease named after the Cluster and would stop at "Unable to create required cluster objects" (primary lease ${api.namespace}/${api.name} is controlled by ${controller.kind} "${controller.name}", refusing to adopt). Give the target another clusterName`,
    );
  }
  return problems.length === 0
    ? [
        {
          name: "no foreign objects under the Cluster's names",
          ok: true,
          message: 'the Services and the Lease CloudNativePG creates are free',
        },
      ]
    : [{ name: "no foreign objects under the Cluster's names", ok: false, failureClass: 'unsafe-target', message: problems.join('; ') }];
}

/** Checks that compare the source with the Cluster that will be created: version and size. */
function sourceFitChecks(rendered: RenderedCluster, source: SourceFacts): Check[] {
  const checks: Check[] = [];
  const { image, imageIsDefault } = rendered;
  const imageMajor = imageMajorVersion(image);
  checks.push(
    imageMajor === source.majorVersion
      ? { name: 'same major version', ok: true, message: `source and image ${image} are both PostgreSQL ${source.majorVersion}` }
      : {
          name: 'same major version',
          ok: false,
          failureClass: 'version-mismatch',
          message: `the source runs PostgreSQL ${source.majorVersion} but imageName ${image}${imageIsDefault ? ' (the operator default, as the values name no image)' : ''} is PostgreSQL ${imageMajor ?? 'unknown'}; source and target must have same PostgreSQL version. Set imageName to a ${source.majorVersion}.x image, e.g. ghcr.io/cloudnative-pg/postgresql:${source.majorVersion}.x-y`,
        },
  );

  const capacity = quantityToBytes(rendered.storageSize);
  if (source.totalSizeBytes === undefined || capacity === undefined) {
    checks.push({
      name: 'source fits storage.size',
      ok: true,
      severity: 'warning',
      message: "cannot compare: the source's size is not readable by the SQL role",
    });
  } else {
    const needed = Math.ceil(source.totalSizeBytes * ROOM_FACTOR);
    const text = `storage.size ${rendered.storageSize} (${formatBytes(capacity)}); the source uses ${formatBytes(source.totalSizeBytes)}, about ${formatBytes(needed)} with WAL`;
    checks.push(
      needed <= capacity
        ? { name: 'source fits storage.size', ok: true, message: text }
        : { name: 'source fits storage.size', ok: false, failureClass: 'insufficient-space', message: `${text}; raise storage.size` },
    );
  }
  return checks;
}

/**
 * CloudNativePG creates the application database only when it is missing; an
 * existing one keeps the source's owner (BEHAVIOUR.md §2.4). When that owner
 * is not the one verification expects, every refresh would fail after the
 * copy was replaced, so say it now.
 */
function ownerChecks(input: PreflightInput, source: SourceFacts): Check[] {
  const configured = typeof input.job.verify.owner === 'object' ? input.job.verify.owner : undefined;
  const warnOnly = input.job.verify.owner === 'warn';
  const owner = configured ?? { user: input.rendered.owner, database: input.rendered.database };
  const actual = source.databaseOwners?.[owner.database];
  if (actual === undefined || actual === owner.user) return [];
  const fix = configured
    ? `set ${input.jobPath}.verify.owner.user: ${actual}`
    : `set bootstrapDB.pg_basebackup.owner: ${actual} in the values (and a secret whose username is ${actual})`;
  const kept = `database ${owner.database} on the source is owned by ${actual}, not ${owner.user}; CloudNativePG keeps an existing database's owner`;
  return [
    warnOnly
      ? {
          name: 'database owner kept by the clone',
          ok: false,
          severity: 'warning',
          message: `${kept}; verify.owner: warn, so verification will only warn about it`,
        }
      : {
          name: 'database owner kept by the clone',
          ok: false,
          failureClass: 'verification-failed',
          message: `${kept}, so verification would fail after the copy was replaced. Change the owner on the source (ALTER DATABASE ${owner.database} OWNER TO ${owner.user}), or ${fix}, or set ${input.jobPath}.verify.owner: warn to accept it`,
        },
  ];
}

/** A source host that resolves to (or is) a ClusterIP of the target's own Services. */
async function resolvesToTarget(api: ClusterApi, source: SourceHost): Promise<string | undefined> {
  let addresses: string[];
  try {
    addresses = (await lookup(source.host, { all: true })).map((a) => a.address);
  } catch {
    return undefined;
  }
  const services = (await api.services(targetServiceNames(api.name))).map((s) => ({
    name: s.metadata?.name ?? '',
    ips: [s.spec?.clusterIP, ...(s.spec?.clusterIPs ?? [])].filter(
      (ip): ip is string => typeof ip === 'string' && ip !== '' && ip !== 'None',
    ),
  }));
  return sourceResolvesToTarget(source, addresses, services);
}
