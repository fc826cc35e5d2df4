import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PhaseFailure } from '../../src/errors.js';
import { silentLogger } from '../../src/observe/logger.js';
import { newRun } from '../../src/run/record.js';
import { MARKER_FILE } from '../../src/targets/local/commands.js';
import { asLocalJob, LocalTarget } from '../../src/targets/local/index.js';
import { freePort, LocalHarness } from '../support/local-harness.js';

/** db-refresher deletes a data directory only when it can prove it made it for this job. */

let harness: LocalHarness;

beforeAll(async () => {
  harness = await LocalHarness.start();
});

afterAll(async () => {
  await harness?.destroy();
});

function snapshotDir(dir: string): string[] {
  return readdirSync(dir, { recursive: true }).map(String).sort();
}

describe('safety rails of the local target', () => {
  it('never deletes a PostgreSQL data directory without the marker, and says how to adopt it', async () => {
    // A real, unrelated cluster that happens to sit where the job points.
    const bystander = await harness.sandbox.createCluster({ name: 'bystander' });
    await bystander.sql('CREATE TABLE precious (x int)');
    await bystander.stop();
    const before = snapshotDir(bystander.dataDir);
    const targetPort = await freePort();
    const config = harness.config(harness.jobYaml({ targetPort, dataDir: bystander.dataDir }));

    const run = await harness.run(config);
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ phase: 'preflight', class: 'unsafe-target' });
    expect(run.error?.message).toContain('that db-refresher did not create');
    expect(run.error?.message).toContain('jobs[0].target.adopt: true');
    expect(snapshotDir(bystander.dataDir)).toEqual(before);

    // Even called directly, past preflight, teardown refuses.
    const target = new LocalTarget({ job: asLocalJob(config.jobs[0] as (typeof config.jobs)[number]), jobPath: 'jobs[0]' });
    const directRun = newRun({
      id: 'direct',
      job: 'qa',
      trigger: { kind: 'cli' },
      dryRun: false,
      now: new Date(),
      source: { host: '', port: 0, user: '' },
      target: target.describe(),
    });
    const ctx = { runId: 'direct', run: directRun, log: silentLogger(), signal: new AbortController().signal, progress: () => undefined };
    await expect(target.teardown(ctx)).rejects.toBeInstanceOf(PhaseFailure);
    expect(snapshotDir(bystander.dataDir)).toEqual(before);
  });

  it('replaces such a directory once adopt: true says so, and marks it as its own', async () => {
    const stray = await harness.sandbox.createCluster({ name: 'stray' });
    await stray.stop();
    const targetPort = await freePort();
    const config = harness.config(harness.jobYaml({ name: 'adopter', targetPort, dataDir: stray.dataDir, target: '      adopt: true' }));
    const run = await harness.run(config);
    expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
    expect(JSON.parse(readFileSync(path.join(stray.dataDir, MARKER_FILE), 'utf8')).job).toBe('adopter');
  });

  it("refuses a directory that another job's marker claims", async () => {
    const targetPort = await freePort();
    const first = harness.config(harness.jobYaml({ name: 'first', targetPort, dataDir: 'copies/shared' }));
    expect((await harness.run(first)).status).toBe('succeeded');
    // Same directory, another job (in another config file, so the config check cannot see it).
    const second = harness.config(harness.jobYaml({ name: 'second', targetPort, dataDir: 'copies/shared', target: '      adopt: true' }));
    const run = await harness.run(second);
    expect(run.error).toMatchObject({ phase: 'preflight', class: 'unsafe-target' });
    expect(run.error?.message).toContain('belongs to job "first"');
  });

  it('will not delete a directory that is not a PostgreSQL data directory, even with adopt', async () => {
    const dir = path.join(harness.sandbox.root, 'home-directory');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'thesis.tex'), 'irreplaceable');
    const targetPort = await freePort();
    const run = await harness.run(
      harness.config(harness.jobYaml({ name: 'careless', targetPort, dataDir: dir, target: '      adopt: true' })),
    );
    expect(run.error).toMatchObject({ phase: 'preflight', class: 'unsafe-target' });
    expect(run.error?.message).toContain('is not a PostgreSQL data directory');
    expect(readFileSync(path.join(dir, 'thesis.tex'), 'utf8')).toBe('irreplaceable');
  });

  it("refuses to use the source's own data directory as the target", async () => {
    const targetPort = await freePort();
    const config = harness.config(
      harness
        .jobYaml({ name: 'self', targetPort, dataDir: harness.source.dataDir, target: '      adopt: true' })
        .replace(
          '      password: { env: SOURCE_PASSWORD }',
          '      password: { env: SOURCE_PASSWORD }\n      sql: { user: postgres, password: { env: SUPERUSER_PASSWORD } }',
        ),
      { ...harness.env, SUPERUSER_PASSWORD: harness.source.superuserPassword },
    );
    const run = await harness.run(config);
    expect(run.error).toMatchObject({ phase: 'preflight', class: 'unsafe-target' });
    expect(run.preflight?.find((c) => c.name === 'target is not the source')?.message).toContain("is the source's own data directory");
    expect(existsSync(path.join(harness.source.dataDir, 'PG_VERSION'))).toBe(true);
    expect((await harness.source.sql<{ one: number }>('SELECT 1 AS one'))[0]?.one).toBe(1);
  });

  it('will not stop a server running from the directory on another port, even with adopt', async () => {
    const live = await harness.sandbox.createCluster({ name: 'live' });
    const targetPort = await freePort();
    const run = await harness.run(
      harness.config(harness.jobYaml({ name: 'intruder', targetPort, dataDir: live.dataDir, target: '      adopt: true' })),
    );
    expect(run.error).toMatchObject({ phase: 'preflight', class: 'unsafe-target' });
    expect(run.error?.message).toContain(`is running from ${live.dataDir} on port ${live.port}`);
    expect((await live.sql<{ one: number }>('SELECT 1 AS one'))[0]?.one).toBe(1);
  });
});
