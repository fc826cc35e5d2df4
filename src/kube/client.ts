import { BatchV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions, Watch } from '@kubernetes/client-node';

/**
 * The Kubernetes clients, and with the Kubernetes run store the only importer
 * of @kubernetes/client-node. Load it with `loadKube()` so that jobs that never
 * touch Kubernetes never pay for importing the library.
 */

export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

export class Kube {
  readonly config: KubeConfig;
  readonly core: CoreV1Api;
  readonly batch: BatchV1Api;
  readonly custom: CustomObjectsApi;
  readonly watcher: Watch;

  constructor(config: KubeConfig) {
    this.config = config;
    this.core = config.makeApiClient(CoreV1Api);
    this.batch = config.makeApiClient(BatchV1Api);
    this.custom = config.makeApiClient(CustomObjectsApi);
    this.watcher = new Watch(config);
  }

  /** Options for a JSON merge patch; without them client-node sends json-patch and an object body fails. */
  readonly mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

  static fromFile(file?: string): Kube {
    return new Kube(loadKubeConfig(file));
  }
}
