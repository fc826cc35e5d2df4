import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/types.js';
import type { RunRecord } from '../../src/run/record.js';
import { postmasterPid, queryCopy } from '../support/copy-queries.js';
import { dataDirOf, freePort, LocalHarness } from '../support/local-harness.js';

/**
 * Every preflight failure must leave the existing copy running and untouched:
 * same postmaster, same data. A sentinel row written to the copy proves it.
 */

let harness: LocalHarness;
let targetPort: number;
let dataDir: string;
let pid: number | undefined;

beforeAll(async () => {
  harness = await LocalHarness.start();
  targetPort = await freePort();
  const config = harness.config(harness.jobYaml({ targetPort }));
  dataDir = dataDirOf(config);
  const first = await harness.run(config);
  expect(first.status, JSON.stringify(first.error)).toBe('succeeded');
  await queryCopy(targetPort, harness.ownerPassword, "INSERT INTO public.users (id, email) VALUES (777777, 'sentinel@example.com')");
  pid = postmasterPid(dataDir);
});

afterAll(async () => {
  await harness?.destroy();
});

async function expectUntouched(run: RunRecord): Promise<void> {
  expect(run.status).toBe('failed');
  expect(run.error?.phase).toBe('preflight');
  expect(run.phases.filter((p) => p.status === 'skipped').map((p) => p.name)).toEqual([
    'snapshot',
    'teardown',
    'clone',
    'start',
    'neutralise',
    'prepare',
    'mask',
    'open',
    'verify',
  ]);
  expect(postmasterPid(dataDir)).toBe(pid);
  const rows = await queryCopy<{ n: string }>(
    targetPort,
    harness.ownerPassword,
    'SELECT count(*) AS n FROM public.users WHERE id = 777777',
  );
  expect(Number(rows[0]?.n)).toBe(1);
}

function job(overrides: { source?: string; port?: number } = {}): Config {
  const yaml = harness.jobYaml({ targetPort, ...(overrides.source ? { source: overrides.source } : {}) });
  return harness.config(overrides.port ? yaml.replace(`port: ${harness.source.port}`, `port: ${overrides.port}`) : yaml);
}

describe('preflight failures leave the current copy running and untouched', () => {
  it('source down', async () => {
    const nobody = await freePort();
    const run = await harness.run(job({ port: nobody }));
    await expectUntouched(run);
    expect(run.error?.class).toBe('source-unreachable');
    expect(run.error?.message).toContain(`cannot connect to 127.0.0.1:${nobody}`);
    expect(run.error?.hint).toContain('Check network connectivity');
  });

  it('wrong password', async () => {
    const run = await harness.run(harness.config(harness.jobYaml({ targetPort }), { ...harness.env, SOURCE_PASSWORD: 'wrong' }));
    await expectUntouched(run);
    expect(run.error?.class).toBe('authentication-failed');
    expect(run.error?.message).toMatch(/password authentication failed for user "replicator"/);
    expect(run.error?.hint).toContain('verify the secret exists and has the correct key');
  });

  it('role without REPLICATION', async () => {
    await harness.source.sql("CREATE ROLE plain_login LOGIN PASSWORD 'plain-pw'");
    const config = harness.config(harness.jobYaml({ targetPort }).replace('user: replicator', 'user: plain_login'), {
      ...harness.env,
      SOURCE_PASSWORD: 'plain-pw',
    });
    const run = await harness.run(config);
    await expectUntouched(run);
    expect(run.error?.class).toBe('replication-not-permitted');
    expect(run.preflight?.find((c) => c.name === 'role has REPLICATION')?.ok).toBe(false);
    expect(run.error?.hint).toContain('REPLICATION LOGIN');
  });

  it('pg_hba.conf rejecting replication', async () => {
    await harness.source.sql("CREATE ROLE other_replicator LOGIN REPLICATION PASSWORD 'other-pw'");
    harness.source.setHba([
      'local all all trust',
      'host all all 127.0.0.1/32 scram-sha-256',
      'host replication replicator 127.0.0.1/32 scram-sha-256',
    ]);
    await harness.source.reload();
    try {
      const config = harness.config(harness.jobYaml({ targetPort }).replace('user: replicator', 'user: other_replicator'), {
        ...harness.env,
        SOURCE_PASSWORD: 'other-pw',
      });
      const run = await harness.run(config);
      await expectUntouched(run);
      expect(run.error?.class).toBe('pg-hba-rejected');
      expect(run.error?.message).toContain('no pg_hba.conf entry for replication connection');
      expect(run.error?.hint).toContain('host replication streaming_replica all md5');
    } finally {
      harness.source.setHba([
        'local all all trust',
        'host all all 127.0.0.1/32 scram-sha-256',
        'host replication all 127.0.0.1/32 scram-sha-256',
      ]);
      await harness.source.reload();
    }
  });

  it('no PostgreSQL binaries of the source major version', async () => {
    // A directory whose pg_ctl claims another major version stands in for "PostgreSQL 14 installed, source runs 15".
    const fake = path.join(harness.sandbox.root, 'pg14bin');
    mkdirSync(fake);
    for (const program of ['pg_ctl', 'pg_basebackup']) {
      writeFileSync(path.join(fake, program), `#!/bin/sh\necho "${program} (PostgreSQL) 14.11"\n`);
      chmodSync(path.join(fake, program), 0o755);
    }
    const config = harness.config(harness.jobYaml({ targetPort }), { ...harness.env, PG_BINDIR: fake });
    const { buildRunner } = await import('../../src/composition-root.js');
    const { silentLogger } = await import('../../src/observe/logger.js');
    const { runner } = buildRunner(config, silentLogger(), { env: { ...harness.env, PG_BINDIR: fake } });
    const run = await runner.run(config.jobs[0] as Config['jobs'][number], { kind: 'cli' });
    await expectUntouched(run);
    expect(run.error?.class).toBe('version-mismatch');
    expect(run.error?.message).toContain('the source runs PostgreSQL 15');
    expect(run.error?.message).toContain('found 14 in');
  });

  it('target port taken by another process', async () => {
    const otherPort = await freePort();
    const { createServer } = await import('node:net');
    const squatter = createServer().listen(otherPort, '127.0.0.1');
    await new Promise((resolve) => squatter.once('listening', resolve));
    try {
      const config = harness.config(harness.jobYaml({ name: 'squatted', targetPort: otherPort }));
      const run = await harness.run(config);
      await expectUntouched(run);
      expect(run.error?.class).toBe('target-port-in-use');
    } finally {
      squatter.close();
    }
  });

  // Last: it restarts the source.
  it('max_wal_senders too low', async () => {
    await harness.source.sql('ALTER SYSTEM SET max_wal_senders = 1');
    await harness.source.restart();
    try {
      const run = await harness.run(job());
      await expectUntouched(run);
      expect(run.error?.class).toBe('wal-senders-exhausted');
      expect(run.error?.message).toContain('source has max_wal_senders=1 and 0 in use');
      expect(run.error?.hint).toContain('Increase max_wal_senders on the source cluster or wait for available slots');
    } finally {
      await harness.source.sql('ALTER SYSTEM RESET max_wal_senders');
      await harness.source.restart();
    }
  });
});
