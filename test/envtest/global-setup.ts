/**
 * vitest globalSetup: one test API server for the whole run. Tests reach it through
 * `inject('kubeconfigPath')` and `inject('podLogDir')`, or the environment variables KUBECONFIG_TEST
 * and POD_LOG_DIR_TEST, which child processes (kubectl, the CLI under test) inherit.
 */
import type { TestProject } from 'vitest/node';
import { startTestApiServer } from './server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** kubeconfig file of the shared test API server. */
    kubeconfigPath: string;
    /** Pod logs are served from <podLogDir>/<namespace>/<pod>.log. */
    podLogDir: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const api = await startTestApiServer();
  process.stderr.write(`[envtest] API server ${api.server.origin} (${api.flavor}) ready in ${Date.now() - started} ms\n`);
  project.provide('kubeconfigPath', api.kubeconfigPath);
  project.provide('podLogDir', api.logDir);
  process.env.KUBECONFIG_TEST = api.kubeconfigPath;
  process.env.POD_LOG_DIR_TEST = api.logDir;
  return async () => {
    delete process.env.KUBECONFIG_TEST;
    delete process.env.POD_LOG_DIR_TEST;
    await api.stop();
  };
}
