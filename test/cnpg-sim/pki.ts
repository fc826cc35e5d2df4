/**
 * The certificates CNPG generates for a Cluster (§4.1): a CA (X-ca), a server certificate for the
 * services (X-server) and a client certificate for streaming_replica (X-replication). ECDSA P-256 like
 * CNPG's, made with the openssl command line (Node cannot issue X.509 certificates).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CaMaterial {
  cert: string;
  key: string;
}

export interface ClusterPki {
  ca: CaMaterial;
  server: CaMaterial;
  replication: CaMaterial;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${e.stderr || e.message}`, { cause: err });
  }
}

export async function createCa(tmpRoot: string, commonName: string): Promise<CaMaterial> {
  const dir = mkdtempSync(join(tmpRoot, 'ca-'));
  try {
    await openssl(
      ['req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', `/OU=${commonName}/CN=${commonName}`, '-days', '90'],
      dir,
    );
    return { cert: readFileSync(join(dir, 'ca.crt'), 'utf8'), key: readFileSync(join(dir, 'ca.key'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A leaf certificate signed by `ca`. */
export async function issue(
  tmpRoot: string,
  ca: CaMaterial,
  opts: { commonName: string; usage: 'serverAuth' | 'clientAuth'; dnsNames?: readonly string[]; ips?: readonly string[] },
): Promise<CaMaterial> {
  const dir = mkdtempSync(join(tmpRoot, 'leaf-'));
  try {
    writeFileSync(join(dir, 'ca.crt'), ca.cert);
    writeFileSync(join(dir, 'ca.key'), ca.key, { mode: 0o600 });
    const sans = [...(opts.dnsNames ?? []).map((d) => `DNS:${d}`), ...(opts.ips ?? []).map((ip) => `IP:${ip}`)];
    const ext = [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${opts.usage}`,
      ...(sans.length ? [`subjectAltName=${sans.join(',')}`] : []),
    ];
    writeFileSync(join(dir, 'ext'), `${ext.join('\n')}\n`);
    await openssl(['req', '-new', ...EC, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', `/CN=${opts.commonName}`], dir);
    await openssl(
      [
        'x509',
        '-req',
        '-in',
        'leaf.csr',
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        'leaf.crt',
        '-days',
        '90',
        '-extfile',
        'ext',
      ],
      dir,
    );
    return { cert: readFileSync(join(dir, 'leaf.crt'), 'utf8'), key: readFileSync(join(dir, 'leaf.key'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The server certificate's names: the three services in every DNS form, plus loopback for the simulation. */
export function serverAltNames(cluster: string, namespace: string): string[] {
  const names: string[] = [];
  for (const svc of [`${cluster}-rw`, `${cluster}-r`, `${cluster}-ro`]) {
    names.push(svc, `${svc}.${namespace}`, `${svc}.${namespace}.svc`, `${svc}.${namespace}.svc.cluster.local`);
  }
  return [...names, 'localhost'];
}
