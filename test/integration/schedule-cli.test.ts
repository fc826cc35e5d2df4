import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';

/** `db-refresher schedule` as built: next fire times in each job's zone, with DST and day-field warnings. */

let dir: string;
let configFile: string;

const cli = (args: string[]) => runCli(args);

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'dbr-schedule-'));
  configFile = path.join(dir, 'c.yaml');
  writeFileSync(
    configFile,
    `jobs:
  - name: nightly
    schedule: "30 2 * * *"
    timezone: Europe/Berlin
    source: { host: db.example.com, user: r }
    target: { kind: local, dataDir: a, port: 5501 }
  - name: both
    schedule: "0 3 1 * mon"
    suspend: true
    source: { host: db.example.com, user: r }
    target: { kind: local, dataDir: b, port: 5502 }
  - name: manual
    source: { host: db.example.com, user: r }
    target: { kind: local, dataDir: c, port: 5503 }
`,
  );
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('db-refresher schedule', () => {
  it('prints the next fire times of every job in its zone, with warnings', async () => {
    const { code, stdout } = await cli(['schedule', '--config', configFile, '--next', '3']);
    expect(code).toBe(0);
    expect(stdout).toMatch(
      /^nightly: "30 2 \* \* \*" in Europe\/Berlin\n {2}next 3 runs:\n( {4}\d{4}-\d\d-\d\d 02:30 \+0[12]:00 {3}\(.+Z\)\n){3}/,
    );
    expect(stdout).toMatch(
      /warning: \d{4}-03-\d\d 02:30 \(Europe\/Berlin\) does not exist: clocks go forward 1 h at 02:00 local time; this run is skipped/,
    );
    expect(stdout).toMatch(/warning: \d{4}-10-\d\d 02:30 \(Europe\/Berlin\) happens twice/);
    expect(stdout).toContain('both: "0 3 1 * mon" in UTC (SUSPENDED: scheduled runs are skipped)');
    expect(stdout).toContain('runs only on days matching BOTH, while Kubernetes CronJob and Vixie cron run on days matching EITHER');
    expect(stdout).toContain('manual: no schedule (manual runs only)');
  });

  it('one job as JSON', async () => {
    const { code, stdout } = await cli(['schedule', 'both', '--config', configFile, '-n', '2', '-o', 'json']);
    expect(code).toBe(0);
    const parsed = JSON.parse(stdout);
    expect(parsed).toMatchObject({ job: 'both', schedule: '0 3 1 * mon', timezone: 'UTC', suspended: true });
    expect(parsed.nextRuns).toHaveLength(2);
    for (const run of parsed.nextRuns) {
      const day = new Date(run.at);
      expect([day.getUTCDate(), day.getUTCDay(), day.getUTCHours()]).toEqual([1, 1, 3]);
    }
  });

  it('usage errors exit 2 without a stack trace', async () => {
    const unknown = await cli(['schedule', 'nope', '--config', configFile]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no job named "nope"');
    const bad = await cli(['schedule', '--config', configFile, '--next', 'many']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--next must be a whole number 1-1000');
    expect(bad.stderr).not.toMatch(/^\s+at /m);
  });
});
