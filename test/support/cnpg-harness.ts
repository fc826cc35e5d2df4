import { randomBytes } from 'node:crypto';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import type { Config } from '../../src/config/types.js';
import { LocalHarness } from './local-harness.js';

export interface ClusterObject {
  metadata?: { uid?: string; annotations?: Record<string, string> };
  status?: Record<string, unknown>;
}

/**
 * A real PostgreSQL source (from LocalHarness) and a namespace on the test
 * Kubernetes API server holding the Secret the Cluster's externalClusters
 * entry names, plus YAML for cnpg jobs against them.
 */
export class CnpgHarness {
  readonly local: LocalHarness;
  readonly kubeconfigPath: string;
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly namespace: string;

  private constructor(local: LocalHarness, kubeconfigPath: string, namespace: string) {
    this.local = local;
    this.kubeconfigPath = kubeconfigPath;
    this.namespace = namespace;
    this.kc = new KubeConfig();
    this.kc.loadFromFile(kubeconfigPath);
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.custom = this.kc.makeApiClient(CustomObjectsApi);
  }

  static async start(
    kubeconfigPath: string,
    prefix = 'cnpg',
    options: Parameters<typeof LocalHarness.start>[0] = {},
  ): Promise<CnpgHarness> {
    const local = await LocalHarness.start(options);
    const harness = new CnpgHarness(local, kubeconfigPath, `${prefix}-${randomBytes(3).toString('hex')}`);
    await harness.core.createNamespace({ body: { metadata: { name: harness.namespace } } });
    await harness.putSecret('source-replication', { password: local.replicationPassword });
    await harness.putSecret('app-secret', { username: 'app', password: local.ownerPassword }, 'kubernetes.io/basic-auth');
    return harness;
  }

  async putSecret(name: string, data: Record<string, string>, type = 'Opaque'): Promise<void> {
    const body = { metadata: { name, namespace: this.namespace }, type, stringData: data };
    try {
      await this.core.createNamespacedSecret({ namespace: this.namespace, body });
    } catch {
      await this.core.replaceNamespacedSecret({ name, namespace: this.namespace, body });
    }
  }

  /** A cnpg job; `values` and `target` lines are spliced in. */
  jobYaml(input: {
    name?: string;
    clusterName?: string;
    connectPort?: number;
    target?: string;
    values?: string;
    job?: string;
    imageTag?: string;
  }): string {
    const source = this.local.source;
    return `
  - name: ${input.name ?? 'qa'}
${input.job ?? ''}    target:
      kind: cnpg
      namespace: ${this.namespace}
      clusterName: ${input.clusterName ?? 'qa-db'}
      kubeconfig: ${this.kubeconfigPath}
      connect: { host: 127.0.0.1, port: ${input.connectPort ?? 1} }
${input.target ?? ''}      values:
        instances: 1
        imageName: ghcr.io/cloudnative-pg/postgresql:${input.imageTag ?? '15.8-1'}
        storage: { size: 1Gi }
        bootstrapDB:
          pg_basebackup: { source: source-db, database: app, owner: app, secret: { name: app-secret } }
        externalClusters:
          - name: source-db
            connectionParameters: { host: 127.0.0.1, port: "${source.port}", user: replicator, dbname: postgres, sslmode: disable }
            password: { name: source-replication, key: password }
${input.values ?? ''}    verify:
      databases:
        - name: app
          minTables: 5
`;
  }

  /**
   * A job's `source:` lines for the end-to-end refreshes: db-refresher reaches the sandbox source
   * directly, with the superuser for SQL so it may CHECKPOINT (otherwise the clone waits for a spread
   * checkpoint). The password comes from SUPERUSER_PASSWORD (see directEnv).
   */
  directSourceYaml(): string {
    return `    source:
      host: 127.0.0.1
      port: ${this.local.source.port}
      user: replicator
      sslmode: disable
      password: { env: SOURCE_PASSWORD }
      sql: { user: postgres, password: { env: SUPERUSER_PASSWORD } }
`;
  }

  /** The environment directSourceYaml's references resolve in. */
  directEnv(): NodeJS.ProcessEnv {
    return { ...this.local.env, SUPERUSER_PASSWORD: this.local.source.superuserPassword };
  }

  config(jobsYaml: string): Config {
    return this.local.config(jobsYaml, this.local.env);
  }

  /** The Cluster as the API server has it now, or undefined when there is none. */
  async getCluster(name: string): Promise<ClusterObject | undefined> {
    try {
      return (await this.custom.getNamespacedCustomObject({
        group: 'postgresql.cnpg.io',
        version: 'v1',
        namespace: this.namespace,
        plural: 'clusters',
        name,
      })) as ClusterObject;
    } catch {
      return undefined;
    }
  }

  async clusterExists(name: string): Promise<boolean> {
    return (await this.getCluster(name)) !== undefined;
  }

  async clusterAnnotations(name: string): Promise<Record<string, string>> {
    return (await this.getCluster(name))?.metadata?.annotations ?? {};
  }

  async destroy(): Promise<void> {
    await this.core.deleteNamespace({ name: this.namespace }).catch(() => undefined);
    await this.local.destroy();
  }
}
