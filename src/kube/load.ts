import type { Kube } from './client.js';

/** Imports the Kubernetes client on first use (it takes most of a second) and builds clients from a kubeconfig. */
export async function loadKube(kubeconfig: string | undefined): Promise<Kube> {
  const { Kube: KubeClass } = await import('./client.js');
  return KubeClass.fromFile(kubeconfig);
}
