/**
 * Test helpers for the Helm charts in charts/: build and run chart-render (test/charts/render, Helm's
 * template engine on Go's text/template and sprig), an RBAC check of recorded requests, and a strict
 * dry-run create of rendered objects.
 */
import { execFile, spawn } from 'node:child_process';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const repoRoot = path.resolve(import.meta.dirname, '../..');
export const chartsDir = path.join(repoRoot, 'charts');

function cacheDir(): string {
  return (
    process.env.DB_REFRESHER_ENVTEST_CACHE ??
    path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'db-refresher', 'envtest')
  );
}

export const rendererPath = (): string => path.join(cacheDir(), 'bin', 'chart-render');

/** Builds chart-render when missing or stale (seconds when cached; the first build fetches a few .debs). */
export async function buildRenderer(): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn('bash', [path.join(repoRoot, 'test/charts/build.sh')], { stdio: ['ignore', 'inherit', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      process.stderr.write(chunk);
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`test/charts/build.sh failed (${code}):\n${stderr.slice(-2000)}`)),
    );
  });
}

export interface RenderedManifest {
  template: string;
  index: number;
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  object: Record<string, unknown> & { metadata: { name: string; namespace?: string; labels?: Record<string, string> } };
  yaml: string;
  /** strict: decoded strictly into its k8s.io/api type; unregistered: not a k8s.io/api type (CRDs). */
  decode: 'strict' | 'unregistered' | 'failed';
  decodeError?: string;
}

export interface Rendered {
  values: Record<string, unknown>;
  manifests: RenderedManifest[];
  notes: string;
  warnings: string[];
}

export interface RenderOptions {
  valuesFiles?: string[];
  name?: string;
  namespace?: string;
}

function renderArgs(chart: string, options: RenderOptions): string[] {
  return [
    'render',
    '--chart',
    path.join(chartsDir, chart),
    '--name',
    options.name ?? 'release-name',
    '--namespace',
    options.namespace ?? 'default',
    ...(options.valuesFiles ?? []).flatMap((f) => ['-f', f]),
  ];
}

/** `helm template` equivalent; throws with Helm's error text when rendering fails. */
export async function render(chart: string, options: RenderOptions = {}): Promise<Rendered> {
  try {
    const { stdout } = await run(rendererPath(), renderArgs(chart, options), { maxBuffer: 64 * 1024 * 1024 });
    return JSON.parse(stdout) as Rendered;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr;
    throw new Error(stderr?.trim() || (error as Error).message);
  }
}

/** The error text of a render that must fail. */
export async function renderError(chart: string, options: RenderOptions = {}): Promise<string> {
  try {
    await render(chart, options);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`rendering ${chart} succeeded but was expected to fail`);
}

export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

export interface RbacDecision {
  method: string;
  url: string;
  resourceRequest: boolean;
  verb: string;
  apiGroup: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  allowed: boolean;
}

/** Would these rules allow these requests? kube-apiserver's RequestInfoFactory plus RBAC's Covers, in Go. */
export async function rbacCheck(input: {
  namespaced: Array<{ namespace: string; rules: PolicyRule[] }>;
  cluster: PolicyRule[];
  requests: Array<{ method: string; url: string }>;
}): Promise<RbacDecision[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(rendererPath(), ['rbac-check'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(stdout) as RbacDecision[]) : reject(new Error(stderr))));
    child.stdin.end(JSON.stringify(input));
  });
}

/**
 * POSTs a rendered object to the API server exactly as rendered, with dryRun=All and
 * fieldValidation=Strict. (client-node's typed create methods serialize through their model classes,
 * which drop unknown fields before the server could refuse them.) Resolves with the status and body.
 */
export async function strictDryRunCreate(
  server: string,
  object: { apiVersion: string; kind: string; metadata: { namespace?: string } },
  plural: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const [group, version] = object.apiVersion.includes('/') ? object.apiVersion.split('/') : ['', object.apiVersion];
  const base = group ? `/apis/${group}/${version}` : `/api/${version}`;
  const ns = object.metadata.namespace ? `/namespaces/${object.metadata.namespace}` : '';
  const url = new URL(`${base}${ns}/${plural}?dryRun=All&fieldValidation=Strict`, server);
  const payload = JSON.stringify(object);
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: 'POST',
        rejectUnauthorized: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
