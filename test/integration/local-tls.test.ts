import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryCopy } from '../support/copy-queries.js';
import { freePort, LocalHarness } from '../support/local-harness.js';
import { createPki, type TestPki } from '../support/tls.js';

let pki: TestPki;
let pkiRoot: string;
let harness: LocalHarness;

// The replication role authenticates with its client certificate only; the sandbox superuser keeps a password.
const HBA = [
  'local all all trust',
  'host all postgres 127.0.0.1/32 scram-sha-256',
  'hostssl replication replicator 127.0.0.1/32 cert',
  'hostssl all replicator 127.0.0.1/32 cert',
  'hostssl all all 127.0.0.1/32 scram-sha-256',
];

beforeAll(async () => {
  pkiRoot = mkdtempSync(path.join(tmpdir(), 'dbr-pki-'));
  // The server reads its key and certificate from here as the PostgreSQL OS user.
  chmodSync(pkiRoot, 0o755);
  pki = createPki(pkiRoot);
  harness = await LocalHarness.start({ tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca }, hba: HBA });
});

afterAll(async () => {
  await harness?.destroy();
  if (pkiRoot) rmSync(pkiRoot, { recursive: true, force: true });
});

function tlsSource(client: { cert: string; key: string }): string {
  return [
    '      sslmode: verify-full',
    `      sslCert: { file: ${client.cert} }`,
    `      sslKey: { file: ${client.key} }`,
    `      sslRootCert: { file: ${pki.ca} }`,
  ].join('\n');
}

describe('local target, TLS client-certificate authentication', () => {
  it('refreshes with a client certificate (hostssl + cert), even when the mounted key file is world-readable', async () => {
    // Kubernetes mounts secret files 0644 by default; libpq refuses such a key, so db-refresher must copy it to a 0600 file.
    const client = pki.client('replicator', { keyMode: 0o644 });
    const targetPort = await freePort();
    const config = harness.config(harness.jobYaml({ targetPort, source: tlsSource(client) }));
    const run = await harness.run(config);
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(run.preflight?.find((c) => c.name === 'replication connection')?.ok).toBe(true);
    const rows = await queryCopy<{ ssl: boolean }>(
      targetPort,
      harness.ownerPassword,
      'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
      { tls: true },
    );
    // The copy keeps the source's TLS setup, and verification used it.
    expect(rows[0]?.ssl).toBe(true);
  });

  it('refuses a certificate from another CA before touching anything', async () => {
    const stranger = pki.client('replicator', { otherCa: true });
    const targetPort = await freePort();
    const run = await harness.run(harness.config(harness.jobYaml({ name: 'stranger', targetPort, source: tlsSource(stranger) })));
    expect(run.status).toBe('failed');
    expect(run.error?.phase).toBe('preflight');
    expect(['tls-failed', 'authentication-failed']).toContain(run.error?.class);
  });

  it('refuses a server whose certificate does not match the host name under verify-full', async () => {
    const client = pki.client('replicator');
    const targetPort = await freePort();
    // The server certificate names 127.0.0.1 and localhost, not 127.0.0.2 (which still reaches the server on Linux).
    const yaml = harness
      .jobYaml({ name: 'wrong-name', targetPort, source: tlsSource(client) })
      .replace('host: 127.0.0.1\n      port', 'host: 127.0.0.2\n      port');
    const config = harness.config(yaml);
    const run = await harness.run(config);
    expect(run.status).toBe('failed');
    expect(run.error?.phase).toBe('preflight');
  });
});
