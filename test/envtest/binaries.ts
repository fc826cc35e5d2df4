/**
 * Where the test API server's binaries come from: a folder of real envtest binaries named by
 * KUBEBUILDER_ASSETS, or else our own kube-apiserver-lite and etcd, built by build.sh into a cache.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ApiServerFlavor =
  /** test/envtest/apiserver: apiextensions + built-in types, pod logs from files. */
  | 'lite'
  /** A real kube-apiserver from KUBEBUILDER_ASSETS: no pod logs (they need a kubelet). */
  | 'kube-apiserver';

export interface Binaries {
  flavor: ApiServerFlavor;
  apiServer: string;
  etcd: string;
}

export const buildScript = fileURLToPath(new URL('./build.sh', import.meta.url));

/** The cache build.sh fills; the same rule as in build.sh. */
export function envtestCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DB_REFRESHER_ENVTEST_CACHE) {
    return env.DB_REFRESHER_ENVTEST_CACHE;
  }
  const base = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(base, 'db-refresher', 'envtest');
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

let building: Promise<void> | undefined;

/**
 * Resolves the binaries, building them first when needed. build.sh runs every time: when everything
 * is cached it only hashes the Go sources (well under a second), and that is what notices a changed
 * server source. Its progress goes to this process's stderr, since a cold build takes minutes.
 */
export async function ensureBinaries(env: NodeJS.ProcessEnv = process.env): Promise<Binaries> {
  const assets = env.KUBEBUILDER_ASSETS;
  if (assets && isExecutable(join(assets, 'kube-apiserver')) && isExecutable(join(assets, 'etcd'))) {
    return { flavor: 'kube-apiserver', apiServer: join(assets, 'kube-apiserver'), etcd: join(assets, 'etcd') };
  }
  building ??= runBuildScript(env).finally(() => {
    building = undefined;
  });
  await building;
  const bin = join(envtestCacheDir(env), 'bin');
  const binaries: Binaries = { flavor: 'lite', apiServer: join(bin, 'kube-apiserver-lite'), etcd: join(bin, 'etcd') };
  for (const path of [binaries.apiServer, binaries.etcd]) {
    if (!isExecutable(path)) {
      throw new Error(`${buildScript} finished but ${path} is missing or not executable`);
    }
  }
  return binaries;
}

function runBuildScript(env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    // KUBEBUILDER_ASSETS was not usable (checked above): do not let build.sh take it as a reason to skip.
    const { KUBEBUILDER_ASSETS: _unused, ...buildEnv } = env;
    const child = spawn('bash', [buildScript], { env: buildEnv, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', (err) => reject(new Error(`could not run ${buildScript}: ${err.message}`, { cause: err })));
    child.once('exit', (code, signal) => {
      if (code === 0) {
        resolve();
      } else {
        reject(new Error(`${buildScript} failed (${signal ?? `exit code ${code}`}); its messages are above`));
      }
    });
  });
}
