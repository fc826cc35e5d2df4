import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunRecord } from '../../src/run/record.js';
import { type CliProcess, startCli } from '../support/crash.js';
import { freePort, LocalHarness } from '../support/local-harness.js';

/**
 * Faults of the environment a refresh meets halfway (issue #12): a file
 * system that fills up during the clone, and a pg_basebackup that fails and
 * says things a record must not keep. Driven through the built CLI against a
 * real source; the failures are classified from what the real programs print.
 */

let harness: LocalHarness;

beforeAll(async () => {
  harness = await LocalHarness.start();
});

afterAll(async () => {
  await harness?.destroy();
});

function writeConfig(name: string, jobYaml: string): string {
  const file = path.join(harness.sandbox.root, `${name}.yaml`);
  writeFileSync(file, `stateDir: state\njobs:${jobYaml}`);
  return file;
}

async function run(
  config: string,
  job: string,
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; record: RunRecord; cli: CliProcess }> {
  const cli = startCli(['run', job, '--config', config, '-o', 'json'], { ...harness.env, ...env });
  const code = await cli.exit;
  let record: RunRecord;
  try {
    record = JSON.parse(cli.stdout()) as RunRecord;
  } catch {
    throw new Error(`no record on stdout (exit ${code}):\n${cli.stdout()}\n${cli.stderr()}`);
  }
  return { code, record, cli };
}

/** A PG_BINDIR holding the real programs, except pg_basebackup, which is `script` (given the real one's path as $REAL). */
function binDirWith(name: string, script: string): string {
  const dir = path.join(harness.sandbox.root, `bin-${name}`);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const real = harness.source.binDir.dir;
  writeFileSync(path.join(dir, 'pg_basebackup'), `#!/bin/sh\nREAL=${real}/pg_basebackup\n${script}\n`, { mode: 0o755 });
  for (const program of ['pg_ctl', 'postgres', 'initdb']) symlinkSync(path.join(real, program), path.join(dir, program));
  return dir;
}

/** Whether this process may mount a tmpfs (root, or CAP_SYS_ADMIN): the disk-full case needs a small file system of its own. */
function canMountTmpfs(): boolean {
  const probe = mkdtempSync(path.join(tmpdir(), 'dbr-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

const MOUNT_OK = canMountTmpfs();

describe.skipIf(!MOUNT_OK)('disk full during the clone (a 160 MiB tmpfs; skipped where tmpfs cannot be mounted)', () => {
  let small: string;

  beforeAll(() => {
    small = path.join(harness.sandbox.root, 'small');
    mkdirSync(small);
    // 0777: the filler below is written by pg_basebackup's wrapper, which runs as the PostgreSQL OS user.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=160m,mode=0777', 'tmpfs', small]);
  });

  afterAll(() => {
    if (small) execFileSync('umount', ['-l', small], { stdio: 'ignore' });
  });

  it('fails classified disk-full, naming the directory and what to do; the space is freed, and the next run succeeds', async () => {
    const job = 'diskfull';
    const targetPort = await freePort();
    const config = writeConfig(job, harness.jobYaml({ name: job, targetPort, dataDir: `${small}/copies/${job}` }));
    const filler = path.join(small, 'filler');
    // Preflight finds room for the copy; then, as the clone starts, something else takes all but 2 MiB of it.
    const bin = binDirWith(
      'fill',
      `free=$(( $(stat -f -c '%a' ${small}) * $(stat -f -c '%S' ${small}) - 2097152 ))\nfallocate -l "$free" ${filler}\nexec "$REAL" "$@"`,
    );
    const failed = await run(config, job, { PG_BINDIR: bin });
    expect(failed.code, failed.cli.stderr()).toBe(1);
    expect(failed.record.preflight?.find((c) => c.name === 'room for the copy')?.ok).toBe(true);
    const error = failed.record.error;
    expect(error).toMatchObject({ phase: 'clone', class: 'disk-full' });
    expect(error?.message).toContain(`the file system holding ${small}/copies ran out of space while pg_basebackup wrote the copy`);
    expect(error?.message).toMatch(/No space left on device/);
    expect(error?.hint).toContain(
      `Free space on the file system that holds ${small}/copies, or move the copy (target.dataDir) to a larger one`,
    );
    expect(error?.hint).toContain('run the job again once there is room');
    // The captured lines are kept as evidence.
    expect(error?.details?.some((l) => /No space left on device/.test(l))).toBe(true);
    // The partial copy, the staging directory and the credentials are gone: only the filler takes space.
    expect(readdirSync(path.join(small, 'copies'))).toEqual([]);
    expect(existsSync(filler)).toBe(true);

    rmSync(filler);
    const next = await run(config, job);
    expect(next.code, next.cli.stderr()).toBe(0);
    expect(next.record.status).toBe('succeeded');
    expect(readdirSync(path.join(small, 'copies'))).toEqual([job]);
  });
});

describe('a pg_basebackup failure is classified from its own output, and the record keeps its last lines without secrets', () => {
  it('a rejected password: authentication-failed, with the real server message and no password in the record', async () => {
    const job = 'badauth';
    const targetPort = await freePort();
    const config = writeConfig(job, harness.jobYaml({ name: job, targetPort }));
    // Preflight logs in with the right password. The clone's program then uses a wrong one (as after a
    // password rotation on the source mid-run), and first prints its connection settings, password included.
    const bin = binDirWith(
      'badauth',
      [
        'echo "pg_basebackup: connecting with host=127.0.0.1 password=$(cut -d: -f5 "$PGPASSFILE") (passfile line: $(cat "$PGPASSFILE"))" >&2',
        'wrong="$(dirname "$PGPASSFILE")/wrong-pgpass"',
        'echo "*:*:*:*:not-the-password" > "$wrong"; chmod 600 "$wrong"',
        'PGPASSFILE="$wrong" exec "$REAL" "$@"',
      ].join('\n'),
    );
    const { code, record, cli } = await run(config, job, { PG_BINDIR: bin });
    expect(code, cli.stderr()).toBe(1);
    expect(record.error).toMatchObject({ phase: 'clone', class: 'authentication-failed' });
    expect(record.error?.message).toMatch(/password authentication failed for user "replicator"/);
    expect(record.error?.details?.join('\n')).toMatch(/FATAL: {2}password authentication failed for user "replicator"/);
    expect(record.error?.details?.join('\n')).toMatch(/connecting with host=127\.0\.0\.1 password=\[redacted\]/);
    // Nowhere: not in the JSON output, the saved record, or the log.
    const saved = readdirSync(path.join(harness.sandbox.root, 'state', 'runs', job)).map((f) =>
      readFileSync(path.join(harness.sandbox.root, 'state', 'runs', job, f), 'utf8'),
    );
    for (const text of [cli.stdout(), cli.stderr(), ...saved]) expect(text).not.toContain(harness.replicationPassword);
  });
});
