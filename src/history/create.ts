import path from 'node:path';
import type { Config } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { RunStore } from '../ports.js';
import { FileRunStore } from './file-store.js';

/**
 * The run store `server.history` chooses. The Kubernetes store is imported
 * only when configured, so a file-only service never loads the client library.
 */
export async function createRunStore(config: Config, log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<RunStore> {
  const history = config.server.history;
  switch (history.kind) {
    case 'file': {
      const store = new FileRunStore(config.stateDir, { keepRuns: history.keepRuns });
      await store.sweep();
      return store;
    }
    case 'kubernetes': {
      const { KubernetesRunStore } = await import('./k8s-store.js');
      return KubernetesRunStore.create({
        ...(history.namespace ? { namespace: history.namespace } : {}),
        ...(history.kubeconfig ? { kubeconfig: path.resolve(path.dirname(path.resolve(config.path)), history.kubeconfig) } : {}),
        keepRuns: history.keepRuns,
        configMapPrefix: history.configMapPrefix,
        log,
        env,
      });
    }
  }
}
