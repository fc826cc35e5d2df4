/**
 * The Cluster controller, level-triggered like CNPG's `ClusterReconciler.Reconcile` (BEHAVIOUR.md
 * §2.1): every pass reads the Cluster and the objects labelled `cnpg.io/cluster=X`, decides one step,
 * writes it, and asks to be run again. Owned objects are recognised by the controller reference's
 * name (as CNPG does), so objects an earlier Cluster of the same name left behind count until the
 * garbage collector removes them (§4.5). Status writes use the /status subresource with the
 * Cluster's resourceVersion (optimistic locking); a conflict just runs the pass again.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  ANNOTATION,
  CLUSTER_API_VERSION,
  CLUSTER_KIND,
  CNPG_COMMIT,
  CONDITION,
  JOB_ROLE,
  LABEL,
  LOG_MSG,
  PHASE,
  PVC_ROLE_DATA,
  PVC_STATUS,
  REASON,
} from './constants.js';
import type { SimContext } from './context.js';
import { isAlreadyExists, isConflict, isDeleting, isNotFound, isOwnedByClusterName, type Kind, type Obj } from './kube.js';
import type { Kubelet } from './kubelet.js';
import { createCa, issue, serverAltNames } from './pki.js';
import { isPodActive, isPodReady, jobHasCondition } from './podstatus.js';
import {
  boundPvcStatus,
  buildCredentialSecret,
  buildInstancePod,
  buildJob,
  buildLease,
  buildPkiSecret,
  buildPvc,
  buildServiceAccount,
  buildServices,
  cnpgTimestamp,
  initializedCondition,
  instanceName,
  isInitialized,
  jobName,
  ownedBy,
  readyCondition,
  secretNames,
  serialOf,
  serviceNames,
  setCondition,
} from './specs.js';
import { computeDefaults, formatInvalid, imageMajorVersion, validateCluster, violationPaths, withDefaults } from './validate.js';

class ClusterObjectsError extends Error {}

/** JSON equality that ignores key order (the API server returns map keys sorted). */
export function sameJson(a: unknown, b: unknown): boolean {
  return stable(a) === stable(b);
}

function stable(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .filter((k) => (value as Obj)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stable((value as Obj)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

const decode = (value: unknown): string => Buffer.from(String(value ?? ''), 'base64').toString('utf8');
const ALPHANUMERIC = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function randomPassword(length = 64): string {
  return [...randomBytes(length)].map((b) => ALPHANUMERIC[b % ALPHANUMERIC.length]).join('');
}

const pvcStatusOf = (pvc: Obj): string | undefined => pvc.metadata?.annotations?.[ANNOTATION.pvcStatus];
const serialAnnotation = (obj: Obj): number => Number(obj.metadata?.annotations?.[ANNOTATION.nodeSerial] ?? 0);

interface Observed {
  /** Every PVC labelled with the Cluster, whoever owns it. */
  pvcs: Obj[];
  /** Every Pod labelled with the Cluster (instance and Job Pods). */
  pods: Obj[];
  /** PG_DATA PVCs owned by the Cluster's name and not terminating. */
  instancePvcs: Obj[];
  instancePods: Obj[];
  jobs: Obj[];
}

export class ClusterReconciler {
  readonly #ctx: SimContext;
  readonly #kubelet: Kubelet;
  /** Cluster uid → when its objects (secrets, services, …) were last checked. */
  readonly #objectsCheckedAt = new Map<string, number>();

  constructor(ctx: SimContext, kubelet: Kubelet) {
    this.#ctx = ctx;
    this.#kubelet = kubelet;
  }

  /** One pass; returns the delay before the next one (undefined: only when something changes). */
  async reconcile(key: string): Promise<number | undefined> {
    const [ns = '', name = ''] = key.split('/');
    const { kube } = this.#ctx;
    let cluster = await kube.getOrNull('clusters', ns, name);
    if (!cluster || isDeleting(cluster)) return undefined;
    const annotations = (cluster.metadata.annotations ?? {}) as Record<string, string>;
    if (annotations[ANNOTATION.reconciliationLoop] === 'disabled') {
      this.#log('info', 'Disable reconciliation loop annotation set, skipping the reconciliation.', cluster);
      return undefined;
    }
    try {
      // The in-operator admission guard (v1.30): validate, then write the defaults back.
      if (annotations[ANNOTATION.validation] !== 'disabled') {
        const violations = validateCluster(withDefaults(cluster));
        if (violations.length > 0) {
          this.#log('error', formatInvalid(name, violations), cluster);
          await this.#registerPhase(cluster, PHASE.definitionInvalid, REASON.admission(violationPaths(violations)));
          return undefined;
        }
      }
      const { patch } = computeDefaults(cluster);
      if (patch) {
        this.#log('info', LOG_MSG.webhooksDisabled, cluster);
        await kube.mergePatch('clusters', ns, name, { metadata: { resourceVersion: cluster.metadata.resourceVersion }, spec: patch });
        return 0;
      }
      if (cluster.spec?.imageCatalogRef) {
        await this.#registerPhase(cluster, PHASE.imageCatalogError, 'image catalogs are not simulated (test/cnpg-sim): use spec.imageName');
        return undefined;
      }
      if (!cluster.spec?.bootstrap?.pg_basebackup) {
        this.#log('error', 'test/cnpg-sim only simulates bootstrap.pg_basebackup; this Cluster is left alone', cluster);
        return undefined;
      }
      // reconcileImage: status.image, and pgDataImageInfo on the first loop.
      const image = String(cluster.spec.imageName);
      cluster = await this.#patchStatus(cluster, {
        image,
        ...(cluster.status?.pgDataImageInfo ? {} : { pgDataImageInfo: { image, majorVersion: imageMajorVersion(image) ?? 0 } }),
      });
      const observed = await this.#observe(cluster);
      if (!isInitialized(cluster)) {
        const orphans = observed.pvcs.filter(
          (p) => !(p.metadata.ownerReferences ?? []).length && p.metadata.annotations?.[ANNOTATION.nodeSerial] && !isDeleting(p),
        );
        if (orphans.length > 0) return await this.#adoptOrphans(cluster, orphans, observed.pods);
      }
      try {
        await this.#ensureClusterObjects(cluster);
      } catch (err) {
        if (!(err instanceof ClusterObjectsError)) throw err;
        await this.#registerPhase(cluster, PHASE.cannotCreateObjects, err.message);
        return 5000;
      }
      cluster = await this.#updateResourceStatus(cluster, observed);
      return await this.#reconcileResources(cluster, observed);
    } catch (err) {
      if (isConflict(err)) return 0;
      throw err;
    }
  }

  #log(level: 'info' | 'error', msg: string, cluster: Obj, fields: Record<string, unknown> = {}): void {
    this.#ctx.log(level, msg, { controller: 'cluster', namespace: cluster.metadata.namespace, name: cluster.metadata.name, ...fields });
  }

  async #observe(cluster: Obj): Promise<Observed> {
    const { kube } = this.#ctx;
    const ns = cluster.metadata.namespace;
    const name = cluster.metadata.name;
    const selector = `${LABEL.cluster}=${name}`;
    const [pvcs, pods, jobs] = await Promise.all([
      kube.list('pvcs', ns, selector),
      kube.list('pods', ns, selector),
      kube.list('jobs', ns, selector),
    ]);
    return {
      pvcs,
      pods,
      instancePvcs: pvcs.filter(
        (p) => isOwnedByClusterName(p, name) && p.metadata.labels?.[LABEL.pvcRole] === PVC_ROLE_DATA && !isDeleting(p),
      ),
      instancePods: pods.filter((p) => isOwnedByClusterName(p, name) && p.metadata.labels?.[LABEL.podRole] === 'instance'),
      jobs: jobs.filter((j) => isOwnedByClusterName(j, name)),
    };
  }

  /** Patches the given status fields with optimistic locking; a no-op when they already hold. */
  async #patchStatus(cluster: Obj, fields: Obj): Promise<Obj> {
    const status = (cluster.status ?? {}) as Obj;
    if (Object.entries(fields).every(([k, v]) => sameJson(status[k], v))) return cluster;
    return this.#ctx.kube.mergePatch(
      'clusters',
      cluster.metadata.namespace,
      cluster.metadata.name,
      { metadata: { resourceVersion: cluster.metadata.resourceVersion }, status: fields },
      'status',
    );
  }

  /** RegisterPhase: phase, phaseReason and the Ready condition in one optimistic-lock status patch. */
  #registerPhase(cluster: Obj, phase: string, reason: string, extra: Obj = {}): Promise<Obj> {
    const conditions = setCondition(cluster.status?.conditions, readyCondition(phase));
    if (cluster.status?.phase !== phase || cluster.status?.phaseReason !== reason) {
      this.#log('info', 'Cluster phase', cluster, { phase, phaseReason: reason });
    }
    return this.#patchStatus(cluster, { ...extra, phase, phaseReason: reason, conditions });
  }

  async #event(cluster: Obj, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    await this.#ctx.kube
      .create('events', cluster.metadata.namespace, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: `${cluster.metadata.name}.${randomBytes(8).toString('hex')}`, namespace: cluster.metadata.namespace },
        involvedObject: {
          apiVersion: CLUSTER_API_VERSION,
          kind: CLUSTER_KIND,
          name: cluster.metadata.name,
          namespace: cluster.metadata.namespace,
          uid: cluster.metadata.uid,
          resourceVersion: cluster.metadata.resourceVersion,
        },
        reason,
        message,
        type,
        source: { component: 'cloudnative-pg' },
        reportingComponent: 'cloudnative-pg',
        reportingInstance: '',
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      })
      .catch(() => undefined);
  }

  async #createIfMissing(kind: Kind, body: Obj): Promise<Obj> {
    try {
      return await this.#ctx.kube.create(kind, body.metadata.namespace, body);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      return this.#ctx.kube.get(kind, body.metadata.namespace, body.metadata.name);
    }
  }

  /** reconcileRestoredCluster (§4.6): adopt orphan PVCs instead of cloning. */
  async #adoptOrphans(cluster: Obj, orphans: Obj[], pods: Obj[]): Promise<number> {
    const { kube } = this.#ctx;
    const ns = cluster.metadata.namespace;
    this.#log('info', 'Found orphan PVCs: adopting them instead of bootstrapping', cluster, { pvcs: orphans.map((p) => p.metadata.name) });
    for (const pod of pods.filter((p) => !(p.metadata.ownerReferences ?? []).length)) {
      await kube.delete('pods', ns, pod.metadata.name);
    }
    for (const svc of Object.values(serviceNames(cluster.metadata.name))) {
      const existing = await kube.getOrNull('services', ns, svc);
      if (!existing) continue;
      const refs = (existing.metadata.ownerReferences ?? []) as Obj[];
      if (refs.length === 0) await kube.delete('services', ns, svc);
      else if (!refs.some((r) => r.uid === cluster.metadata.uid))
        throw new Error(`service ${svc}: service has owner references and it is not orphan`);
    }
    const primary = orphans.find(
      (p) => p.metadata.labels?.[LABEL.role] === 'primary' || p.metadata.labels?.[LABEL.instanceRole] === 'primary',
    );
    const serial = primary ? serialAnnotation(primary) : Math.max(...orphans.map(serialAnnotation));
    await this.#patchStatus(cluster, {
      targetPrimary: instanceName(cluster.metadata.name, serial),
      targetPrimaryTimestamp: cnpgTimestamp(),
      conditions: setCondition(cluster.status?.conditions, initializedCondition(true)),
    });
    for (const pvc of orphans) {
      await kube.mergePatch('pvcs', ns, pvc.metadata.name, {
        metadata: {
          resourceVersion: pvc.metadata.resourceVersion,
          ownerReferences: [ownedBy(cluster)],
          annotations: { [ANNOTATION.pvcStatus]: PVC_STATUS.ready },
        },
      });
      this.#ctx.volumes.ensure(pvc);
    }
    return 0;
  }

  /** createPostgresClusterObjects: PKI and credential secrets, services, ServiceAccount, Lease. */
  async #ensureClusterObjects(cluster: Obj): Promise<void> {
    const uid = String(cluster.metadata.uid);
    const checked = this.#objectsCheckedAt.get(uid);
    if (checked !== undefined && Date.now() - checked < this.#ctx.timings.resyncMs) return;
    const { kube } = this.#ctx;
    const ns = cluster.metadata.namespace;
    const name = cluster.metadata.name;
    const names = secretNames(name);
    const spec = cluster.spec as Obj;

    let ca = await kube.getOrNull('secrets', ns, names.ca);
    if (!ca) {
      const tmp = mkdtempSync(join(this.#ctx.workDir, 'pki-'));
      try {
        const material = await createCa(tmp, name);
        ca = await this.#createIfMissing(
          'secrets',
          buildPkiSecret(cluster, names.ca, 'Opaque', { 'ca.crt': material.cert, 'ca.key': material.key }),
        );
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    }
    const caMaterial = { cert: decode(ca.data?.['ca.crt']), key: decode(ca.data?.['ca.key']) };
    for (const [secret, opts] of [
      [
        names.server,
        { commonName: serviceNames(name).rw, usage: 'serverAuth' as const, dnsNames: serverAltNames(name, ns), ips: ['127.0.0.1'] },
      ],
      [names.replication, { commonName: 'streaming_replica', usage: 'clientAuth' as const }],
    ] as const) {
      if (await kube.getOrNull('secrets', ns, secret)) continue;
      const tmp = mkdtempSync(join(this.#ctx.workDir, 'pki-'));
      try {
        const leaf = await issue(tmp, caMaterial, opts);
        await this.#createIfMissing(
          'secrets',
          buildPkiSecret(cluster, secret, 'kubernetes.io/tls', { 'tls.crt': leaf.cert, 'tls.key': leaf.key }),
        );
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    }

    const bootstrap = spec.bootstrap.pg_basebackup as Obj;
    if (!bootstrap.secret?.name && !(await kube.getOrNull('secrets', ns, names.app))) {
      const database = String(bootstrap.database);
      const owner = String(bootstrap.owner);
      await this.#createIfMissing(
        'secrets',
        buildCredentialSecret(cluster, { name: names.app, username: owner, password: randomPassword(), dbname: database, userType: 'app' }),
      );
    }
    if (spec.enableSuperuserAccess === true) {
      if (!spec.superuserSecret?.name && !(await kube.getOrNull('secrets', ns, names.superuser))) {
        await this.#createIfMissing(
          'secrets',
          buildCredentialSecret(cluster, {
            name: names.superuser,
            username: 'postgres',
            password: randomPassword(),
            dbname: '*',
            userType: 'superuser',
          }),
        );
      }
    } else {
      const superuser = await kube.getOrNull('secrets', ns, names.superuser);
      if (superuser && isOwnedByClusterName(superuser, name)) await kube.delete('secrets', ns, names.superuser);
    }

    const port = await this.#ctx.portFor(ns, name);
    for (const svc of buildServices(cluster, port)) {
      const existing = await kube.getOrNull('services', ns, svc.metadata.name);
      if (!existing) {
        await this.#createIfMissing('services', svc);
        continue;
      }
      if (!isOwnedByClusterName(existing, name)) throw new ClusterObjectsError(REASON.serviceNotOwned(svc.metadata.name));
      const wanted = svc.metadata.annotations?.[ANNOTATION.loopbackPort];
      if (!sameJson(existing.spec?.selector, svc.spec.selector) || existing.metadata.annotations?.[ANNOTATION.loopbackPort] !== wanted) {
        await kube.mergePatch('services', ns, svc.metadata.name, {
          metadata: { annotations: { [ANNOTATION.loopbackPort]: wanted ?? null } },
          spec: { selector: svc.spec.selector },
        });
      }
    }
    if (!spec.serviceAccountName && !(await kube.getOrNull('serviceaccounts', ns, name))) {
      await this.#createIfMissing('serviceaccounts', buildServiceAccount(cluster));
    }
    await this.#reconcilePrimaryLease(cluster);
    this.#objectsCheckedAt.set(uid, Date.now());
  }

  /**
   * reconcilePrimaryLease (v1.30, §4.1): a Lease named after the Cluster is created, or adopted when it
   * is an orphan or belonged to an earlier Cluster of the same name; one another controller owns is refused.
   */
  async #reconcilePrimaryLease(cluster: Obj): Promise<void> {
    const ns = cluster.metadata.namespace;
    const name = cluster.metadata.name;
    const existing = await this.#ctx.kube.getOrNull('leases', ns, name);
    if (!existing) {
      await this.#createIfMissing('leases', buildLease(cluster));
      return;
    }
    const controller = ((existing.metadata.ownerReferences ?? []) as Obj[]).find((r) => r.controller === true);
    if (controller?.uid === cluster.metadata.uid) return;
    if (controller && !(controller.kind === CLUSTER_KIND && controller.apiVersion === CLUSTER_API_VERSION && controller.name === name)) {
      const message = REASON.leaseConflict(ns, name, String(controller.kind), String(controller.name));
      await this.#event(cluster, 'Warning', 'PrimaryLeaseConflict', message);
      throw new ClusterObjectsError(message);
    }
    await this.#ctx.kube.mergePatch('leases', ns, name, {
      metadata: { resourceVersion: existing.metadata.resourceVersion, ownerReferences: [ownedBy(cluster)] },
    });
    this.#log('info', 'Adopted orphan primary lease', cluster, { leaseName: name });
  }

  /** updateResourceStatus (§1.3). */
  #updateResourceStatus(cluster: Obj, o: Observed): Promise<Obj> {
    const name = cluster.metadata.name;
    const names = o.instancePvcs.map((p) => String(p.metadata.name)).sort((a, b) => (serialOf(name, a) ?? 0) - (serialOf(name, b) ?? 0));
    const healthy = o.instancePods.filter((p) => isPodActive(p) && isPodReady(p)).map((p) => String(p.metadata.name));
    const replicating = o.instancePods.filter((p) => isPodActive(p) && !isPodReady(p)).map((p) => String(p.metadata.name));
    const failed = o.instancePods.filter((p) => !isPodActive(p)).map((p) => String(p.metadata.name));
    const withPod = (p: Obj): boolean => o.instancePods.some((pod) => pod.metadata.name === p.metadata.name);
    const byStatus = (status: string): string[] =>
      o.instancePvcs.filter((p) => pvcStatusOf(p) === status).map((p) => String(p.metadata.name));
    const initialized = names.length > 0 || isInitialized(cluster);
    let conditions = setCondition(cluster.status?.conditions, initializedCondition(initialized));
    const fields: Obj = {
      instances: names.length,
      instanceNames: names,
      readyInstances: healthy.length,
      instancesStatus: { healthy, replicating, failed },
      writeService: serviceNames(name).rw,
      readService: serviceNames(name).r,
      jobCount: o.jobs.length,
      pvcCount: o.instancePvcs.length,
      initializingPVC: byStatus(PVC_STATUS.initializing),
      healthyPVC: o.instancePvcs.filter((p) => pvcStatusOf(p) === PVC_STATUS.ready && withPod(p)).map((p) => String(p.metadata.name)),
      danglingPVC: o.instancePvcs.filter((p) => pvcStatusOf(p) === PVC_STATUS.ready && !withPod(p)).map((p) => String(p.metadata.name)),
      selector: `${LABEL.cluster}=${name},${LABEL.podRole}=instance`,
      cloudNativePGCommitHash: CNPG_COMMIT,
      certificates: {
        clientCASecret: secretNames(name).ca,
        serverCASecret: secretNames(name).ca,
        serverTLSSecret: secretNames(name).server,
        replicationTLSSecret: secretNames(name).replication,
        serverAltDNSNames: serverAltNames(name, cluster.metadata.namespace).filter((n) => n !== 'localhost'),
      },
    };
    const reporting = this.#kubelet.instances(cluster.metadata.namespace, name).filter((i) => i.systemId);
    const ids = [...new Set(reporting.map((i) => i.systemId))];
    const c = CONDITION.consistentSystemId;
    if (ids.length === 1) {
      fields.systemID = ids[0];
      fields.timelineID = reporting[0]?.timeline ?? 1;
      conditions = setCondition(conditions, { type: c.type, status: 'True', reason: c.trueReason, message: c.trueMessage });
    } else if (ids.length > 1) {
      conditions = setCondition(conditions, {
        type: c.type,
        status: 'False',
        reason: 'Mismatch',
        message: `Multiple differing system IDs reported by instances: [${ids.join(' ')}]`,
      });
    } else {
      const message = o.instancePods.length
        ? 'Instances are present, but none have reported a system ID.'
        : 'No instances are present in the cluster to report a system ID.';
      conditions = setCondition(conditions, { type: c.type, status: 'False', reason: 'NotFound', message });
    }
    fields.conditions = conditions;
    return this.#patchStatus(cluster, fields);
  }

  /** reconcileResources / reconcilePods (§2.1 steps 5–10). */
  async #reconcileResources(cluster: Obj, o: Observed): Promise<number | undefined> {
    const { kube, timings } = this.#ctx;
    const ns = cluster.metadata.namespace;
    const name = cluster.metadata.name;
    const status = (cluster.status ?? {}) as Obj;

    const failedJobs = o.jobs.filter((j) => jobHasCondition(j, 'Failed'));
    if (failedJobs.length > 0) {
      await this.#registerPhase(cluster, PHASE.unrecoverable, REASON.jobsFailed(failedJobs.map((j) => String(j.metadata.name)).sort()));
      return 5000;
    }
    // MarkPVCReadyForCompletedJobs
    let marked = false;
    for (const job of o.jobs.filter((j) => jobHasCondition(j, 'Complete'))) {
      const pvc = o.instancePvcs.find((p) => p.metadata.name === job.metadata.labels?.[LABEL.instanceName]);
      if (pvc && pvcStatusOf(pvc) === PVC_STATUS.initializing) {
        await kube.mergePatch('pvcs', ns, pvc.metadata.name, {
          metadata: { resourceVersion: pvc.metadata.resourceVersion, annotations: { [ANNOTATION.pvcStatus]: PVC_STATUS.ready } },
        });
        marked = true;
      }
    }
    if (marked) return 0;
    const running = o.jobs.filter((j) => !jobHasCondition(j, 'Complete') && !isDeleting(j));
    if (running.length > 0) return 5000; // "A job is currently running"

    if (o.instancePvcs.length === 0) {
      if (isInitialized(cluster)) {
        await this.#registerPhase(cluster, PHASE.unrecoverable, REASON.noPvcs);
        return 5000;
      }
      return this.#createInstance(cluster, 1, JOB_ROLE.pgbasebackup);
    }

    // An initializing PVC whose Job is gone (CNPG after 1.30.0 creates bootstrap Jobs PVC-driven).
    for (const pvc of o.instancePvcs.filter((p) => pvcStatusOf(p) === PVC_STATUS.initializing)) {
      if (o.jobs.some((j) => j.metadata.labels?.[LABEL.instanceName] === pvc.metadata.name)) continue;
      const serial = serialAnnotation(pvc);
      const role = pvc.metadata.name === status.targetPrimary ? JOB_ROLE.pgbasebackup : JOB_ROLE.join;
      await this.#createIfMissing('jobs', buildJob(cluster, serial, role));
      return 0;
    }

    // ensureInstancesAreCreated
    let created = false;
    for (const pvc of o.instancePvcs.filter((p) => pvcStatusOf(p) === PVC_STATUS.ready)) {
      if (o.pods.some((p) => p.metadata.name === pvc.metadata.name)) continue;
      try {
        await kube.create('pods', ns, buildInstancePod(cluster, serialAnnotation(pvc), this.#ctx.nodeName));
        created = true;
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        return 500;
      }
    }
    if (created) return 0;
    if (o.instancePods.some((p) => !isPodActive(p))) {
      await this.#registerPhase(cluster, PHASE.waitingForInstances, REASON.instancesNotActive);
      return 1000;
    }
    if (o.instancePods.length === 0) return 1000;

    // The instance manager of the target primary marks itself primary.
    let target = status.targetPrimary as string | undefined;
    if (!target) {
      const first = o.instancePods.filter(isPodReady).sort((a, b) => serialAnnotation(a) - serialAnnotation(b))[0];
      if (!first) return 1000;
      target = String(first.metadata.name);
      cluster = await this.#patchStatus(cluster, { targetPrimary: target, targetPrimaryTimestamp: cnpgTimestamp() });
    }
    const targetPod = o.instancePods.find((p) => p.metadata.name === target);
    if (targetPod && isPodReady(targetPod) && status.currentPrimary !== target) {
      this.#kubelet.podLog(ns, target).info(status.currentPrimary ? 'Setting myself as primary' : LOG_MSG.firstPrimary);
      await this.#patchStatus(cluster, { currentPrimary: target, currentPrimaryTimestamp: cnpgTimestamp() });
      return 0;
    }
    if (o.instancePods.some((p) => !isPodReady(p))) return 1000;
    if (!status.currentPrimary) return 1000;
    await this.#updateRoleLabels(String(status.currentPrimary), o);
    await this.#kubelet.refreshCredentials(cluster);

    const desired = Number(cluster.spec?.instances ?? 1);
    if (o.instancePvcs.length < desired) {
      const used = new Set(o.pvcs.map((p) => serialOf(name, String(p.metadata.name))).filter((s) => s !== undefined));
      let serial = 1;
      while (used.has(serial)) serial++;
      return this.#createInstance(cluster, serial, JOB_ROLE.join);
    }
    // Every instance reports: completed Jobs go (foreground propagation), then the loop ends healthy.
    for (const job of o.jobs.filter((j) => jobHasCondition(j, 'Complete') && !isDeleting(j))) {
      await kube.delete('jobs', ns, job.metadata.name, { propagationPolicy: 'Foreground' });
    }
    await this.#registerPhase(cluster, PHASE.healthy, '');
    return timings.resyncMs;
  }

  /** createPrimaryInstance / joinReplicaInstance: PVC (initializing), phase, Job. */
  async #createInstance(cluster: Obj, serial: number, role: typeof JOB_ROLE.pgbasebackup | typeof JOB_ROLE.join): Promise<number> {
    const { kube } = this.#ctx;
    const ns = cluster.metadata.namespace;
    const name = cluster.metadata.name;
    const instance = instanceName(name, serial);
    let pvc: Obj;
    try {
      pvc = await kube.create('pvcs', ns, buildPvc(cluster, serial));
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      const existing = await kube.getOrNull('pvcs', ns, instance);
      if (existing && isDeleting(existing)) this.#log('info', LOG_MSG.waitingPreviousPvc, cluster, { pvc: instance });
      return 1000;
    }
    this.#ctx.volumes.ensure(pvc);
    try {
      await kube.mergePatch('pvcs', ns, instance, { status: boundPvcStatus(pvc) }, 'status');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    const job = jobName(name, serial, role);
    if (role === JOB_ROLE.pgbasebackup) {
      cluster = await this.#registerPhase(cluster, PHASE.firstPrimary, REASON.creatingPrimary(instance), {
        targetPrimary: instance,
        targetPrimaryTimestamp: cnpgTimestamp(),
      });
    } else {
      cluster = await this.#registerPhase(cluster, PHASE.creatingReplica, REASON.creatingReplica(job));
    }
    await this.#createIfMissing('jobs', buildJob(cluster, serial, role));
    await this.#event(
      cluster,
      'Normal',
      'CreatingInstance',
      role === JOB_ROLE.pgbasebackup ? 'Primary instance (from physical backup)' : 'Creating replica',
    );
    this.#log('info', role === JOB_ROLE.pgbasebackup ? 'Creating primary instance' : 'Creating replica', cluster, { instance, job });
    return 0;
  }

  /** updateRoleLabels: `role` and `cnpg.io/instanceRole` on the Pods and their PVCs. */
  async #updateRoleLabels(primary: string, o: Observed): Promise<void> {
    const { kube } = this.#ctx;
    const targets: Array<[Kind, Obj]> = [
      ...o.instancePods.map((p) => ['pods', p] as [Kind, Obj]),
      ...o.instancePvcs.map((p) => ['pvcs', p] as [Kind, Obj]),
    ];
    for (const [kind, obj] of targets) {
      const role = obj.metadata.name === primary ? 'primary' : 'replica';
      const labels = (obj.metadata.labels ?? {}) as Record<string, string>;
      if (labels[LABEL.role] === role && labels[LABEL.instanceRole] === role) continue;
      try {
        await kube.mergePatch(kind, obj.metadata.namespace, obj.metadata.name, {
          metadata: { labels: { [LABEL.role]: role, [LABEL.instanceRole]: role } },
        });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }
}
