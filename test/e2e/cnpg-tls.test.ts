/**
 * A CNPG refresh whose source accepts the replication role only with a TLS
 * client certificate (hostssl … cert), as the guide recommends. db-refresher
 * reads the certificate, key and CA from the same Secrets the Cluster uses.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildRunner } from '../../src/composition-root.js';
import { type SimulatedOperator, startSimulatedOperator } from '../cnpg-sim/index.js';
import { CnpgHarness } from '../support/cnpg-harness.js';
import { queryCopy } from '../support/copy-queries.js';
import { createPki, type TestPki } from '../support/tls.js';

const HBA = [
  'local all all trust',
  'host all postgres 127.0.0.1/32 scram-sha-256',
  'hostssl replication replicator 127.0.0.1/32 cert',
  'hostssl all replicator 127.0.0.1/32 cert',
  'hostssl all all 127.0.0.1/32 scram-sha-256',
];

let pkiRoot: string;
let pki: TestPki;
let h: CnpgHarness;
let sim: SimulatedOperator;

beforeAll(async () => {
  pkiRoot = mkdtempSync(path.join(tmpdir(), 'dbr-cnpg-pki-'));
  chmodSync(pkiRoot, 0o755);
  pki = createPki(pkiRoot);
  h = await CnpgHarness.start(inject('kubeconfigPath'), 'cnpg-tls', {
    tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca },
    hba: HBA,
  });
  const client = pki.client('replicator');
  await h.putSecret(
    'source-replication-tls',
    { 'tls.crt': readFileSync(client.cert, 'utf8'), 'tls.key': readFileSync(client.key, 'utf8') },
    'kubernetes.io/tls',
  );
  await h.putSecret('source-ca', { 'ca.crt': readFileSync(pki.ca, 'utf8') });
  // The role here may not CHECKPOINT, so CNPG's spread checkpoint would wait out the sample data's dirty buffers (minutes).
  await h.local.source.sql('CHECKPOINT');
  sim = await startSimulatedOperator({
    kubeConfig: h.kc,
    logDir: inject('podLogDir'),
    namespaces: [h.namespace],
    probeRetryMs: 200,
    phaseStepMs: 50,
    deletionDelayMs: 200,
  });
});

afterAll(async () => {
  await sim?.stop();
  await h?.destroy();
  if (pkiRoot) rmSync(pkiRoot, { recursive: true, force: true });
});

describe('CNPG refresh with TLS client-certificate authentication', () => {
  it('clones, verifies, and never needed a password for the source', async () => {
    const port = await sim.clusterPort(h.namespace, 'tls-db');
    const yaml = h.jobYaml({ name: 'tls', clusterName: 'tls-db', connectPort: port }).replace(
      `connectionParameters: { host: 127.0.0.1, port: "${h.local.source.port}", user: replicator, dbname: postgres, sslmode: disable }
            password: { name: source-replication, key: password }`,
      `connectionParameters: { host: localhost, port: "${h.local.source.port}", user: replicator, dbname: postgres, sslmode: verify-full }
            sslKey: { name: source-replication-tls, key: tls.key }
            sslCert: { name: source-replication-tls, key: tls.crt }
            sslRootCert: { name: source-ca, key: ca.crt }`,
    );
    expect(yaml).toContain('sslmode: verify-full');
    const config = h.local.config(yaml, h.local.env);
    expect(config.jobs[0]?.source).toMatchObject({ host: 'localhost', sslmode: 'verify-full' });
    const { runner } = buildRunner(config, pino({ level: 'silent' }));
    const job = config.jobs[0];
    if (!job) throw new Error('no job');
    const run = await runner.run(job, { kind: 'cli' });
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(run.preflight?.find((c) => c.name === 'referenced secrets exist')?.ok).toBe(true);
    // The replication role is no superuser and not in pg_checkpoint: the CHECKPOINT is skipped, and the record says so.
    const clone = run.phases.find((p) => p.name === 'clone')?.detail as { checkpoint?: string } | undefined;
    expect(clone?.checkpoint).toMatch(/^skipped/);
    const rows = await queryCopy<{ n: string }>(port, h.local.ownerPassword, 'SELECT count(*) AS n FROM billing.invoices');
    expect(Number(rows[0]?.n)).toBe(1000);
    expect(JSON.stringify(run)).not.toContain('BEGIN PRIVATE KEY');
  });
});
