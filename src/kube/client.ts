import { readFileSync } from 'node:fs';
import {
  BatchV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
  type V1Lease,
  V1MicroTime,
  type V1Service,
  Watch,
} from '@kubernetes/client-node';

export type { V1ConfigMap, V1Lease, V1Service };
/** Lease times need exactly six fractional digits; a plain Date is refused with 400. */
export { V1MicroTime };

/**
 * The Kubernetes clients: the only importer of @kubernetes/client-node (a
 * test in test/unit/architecture.test.ts keeps it so). Load it with
 * `loadKube()` so that jobs that never touch Kubernetes never pay for
 * importing the library.
 */

/** The given kubeconfig file; else the pod's service account inside a cluster; else the default (KUBECONFIG, ~/.kube/config). */
export function loadKubeConfig(file?: string, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else if (env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

/** The pod's own namespace, from its service account; undefined outside a cluster. */
export function podNamespace(): string | undefined {
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export class Kube {
  readonly config: KubeConfig;
  readonly core: CoreV1Api;
  readonly batch: BatchV1Api;
  readonly custom: CustomObjectsApi;
  readonly coordination: CoordinationV1Api;
  readonly watcher: Watch;

  constructor(config: KubeConfig) {
    this.config = config;
    this.core = config.makeApiClient(CoreV1Api);
    this.batch = config.makeApiClient(BatchV1Api);
    this.custom = config.makeApiClient(CustomObjectsApi);
    this.coordination = config.makeApiClient(CoordinationV1Api);
    this.watcher = new Watch(config);
  }

  /** Options for a JSON merge patch; without them client-node sends json-patch and an object body fails. */
  readonly mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

  /** The namespace of the kubeconfig's current context, if it names one. */
  get contextNamespace(): string | undefined {
    return this.config.getContextObject(this.config.getCurrentContext())?.namespace;
  }

  static fromFile(file?: string, env?: NodeJS.ProcessEnv): Kube {
    return new Kube(loadKubeConfig(file, env));
  }
}
