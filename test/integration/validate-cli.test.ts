import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';

/**
 * `db-refresher validate`, the built CLI: --skip-secrets for CI checking a
 * rendered ConfigMap, the schedule warnings `schedule` shows, and every
 * problem of every stage (shape, cron, zone, cross-field, secrets) in one report.
 */

let dir: string;
const file = (name: string, text: string) => {
  const at = path.join(dir, name);
  writeFileSync(at, text);
  return at;
};

/** No secret of these configs exists in this environment. */
function env(): NodeJS.ProcessEnv {
  const e = { ...process.env };
  for (const key of ['SOURCE_PASSWORD', 'CHAT_URL', 'NO_COLOR', 'FORCE_COLOR']) delete e[key];
  return e;
}

function expectNoStackTrace(text: string): void {
  expect(text).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
}

const GOOD_WITH_SECRETS = `
server:
  tokens: [{ name: ci, token: { file: /run/secrets/does-not-exist/api-token } }]
notifications:
  chat: { kind: slack, url: { env: CHAT_URL } }
jobs:
  - name: qa
    notify: [chat]
    source: { host: prod-db.example.com, user: replicator, password: { env: SOURCE_PASSWORD } }
    target: { kind: local, dataDir: copies/qa, port: 5433 }
`;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'dbr-validate-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('db-refresher validate', () => {
  it('--skip-secrets: valid although no secret can be read (exit 0); without it, each unreadable secret is a problem (exit 2)', async () => {
    const config = file('secrets.yaml', GOOD_WITH_SECRETS);
    const strict = await runCli(['validate', '--config', config], env());
    expect(strict.code).toBe(2);
    // The SQL role's password defaults to the replication password, so that one is listed twice (source.sql.password).
    expect(strict.stderr).toContain('4 problems');
    expect(strict.stderr).toContain('jobs[0].source.password (job "qa"): environment variable SOURCE_PASSWORD is not set');
    expect(strict.stderr).toContain('notifications.chat.url (notification target "chat"): environment variable CHAT_URL is not set');
    expect(strict.stderr).toContain('server.tokens[0].token: secret file /run/secrets/does-not-exist/api-token does not exist');

    const skipped = await runCli(['validate', '--skip-secrets', '--config', config], env());
    expect(skipped.stderr).toBe('');
    expect(skipped.code).toBe(0);
    expect(skipped.stdout).toBe(`${config}: valid, 1 job (qa); secrets not read (--skip-secrets)\n`);
  });

  it('--skip-secrets still exits 2 on shape and rule errors, and lists no secret as a problem', async () => {
    const config = file(
      'shape.yaml',
      GOOD_WITH_SECRETS.replace('port: 5433', 'port: 5433, dataDri: oops').replace('notify: [chat]', 'notify: [chat, pager]'),
    );
    const result = await runCli(['validate', '--skip-secrets', '--config', config], env());
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('jobs[0].target.dataDri: unknown key "dataDri"');
    expect(result.stderr).toContain('jobs[0].notify[1]: no notification target named "pager"; defined: chat');
    expect(result.stderr).not.toMatch(/SOURCE_PASSWORD|CHAT_URL|api-token/);
    expect(result.stderr).toContain('2 problems');
    expectNoStackTrace(result.stderr);
  });

  it('prints the same schedule warnings as `schedule` (DST gap, both day fields), and still exits 0', async () => {
    const config = file(
      'warnings.yaml',
      `
jobs:
  - name: berlin
    schedule: "30 2 * * *"
    timezone: Europe/Berlin
    source: { host: prod-db.example.com, user: replicator }
    target: { kind: local, dataDir: copies/berlin, port: 5433 }
  - name: monthly
    schedule: "0 3 1 * 1"
    source: { host: prod-db.example.com, user: replicator }
    target: { kind: local, dataDir: copies/monthly, port: 5434 }
  - name: quiet
    schedule: "0 4 * * *"
    source: { host: prod-db.example.com, user: replicator }
    target: { kind: local, dataDir: copies/quiet, port: 5435 }
`,
    );
    const schedule = await runCli(['schedule', '--config', config, '-o', 'json'], env());
    expect(schedule.code, schedule.stderr).toBe(0);
    const expected = (JSON.parse(schedule.stdout) as Array<{ job: string; warnings: string[] }>).flatMap((s) =>
      s.warnings.map((w) => `warning: job "${s.job}": ${w}`),
    );
    expect(expected.some((w) => w.startsWith('warning: job "berlin"'))).toBe(true);
    expect(expected.some((w) => w.startsWith('warning: job "monthly"') && w.includes('BOTH'))).toBe(true);

    const result = await runCli(['validate', '--config', config], env());
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${config}: valid, 3 jobs (berlin, monthly, quiet)\n`);
    expect(result.stderr.trimEnd().split('\n')).toEqual(expected);
  });

  it('one report holds every stage: shape errors with cron, time zone, duplicate names, source/target rules and secrets', async () => {
    const config = file(
      'everything.yaml',
      `
jobs:
  - name: qa
    schedule: "0 25 * * *"
    timezone: Europe/Atlantis
    verfy: {}
    source: { host: prod-db.example.com, port: "5432", user: replicator, password: { env: SOURCE_PASSWORD } }
    target: { kind: local, dataDir: copies/qa, port: 5433 }
  - name: qa
    schedule: "*/5 * * *"
    source: { host: 127.0.0.1, port: 6000, user: replicator }
    target: { kind: local, dataDir: copies/qa-2, port: 6000 }
`,
    );
    const result = await runCli(['validate', '--config', config], env());
    expect(result.code).toBe(2);
    const expected = [
      // The schema's problems (shape).
      'jobs[0].verfy: unknown key "verfy"',
      'jobs[0].source.port: must be a number, got the text "5432"',
      // Rules that used to wait until the shape was fixed.
      'jobs[0].schedule: "0 25 * * *" is not a valid cron expression (hour must be 0-23)',
      'jobs[0].timezone: "Europe/Atlantis" is not an IANA time zone',
      'jobs[1].name: duplicate job name "qa" (also used by jobs[0])',
      'jobs[1].schedule: "*/5 * * *" is not a valid cron expression',
      'jobs[1].target.port: the target 127.0.0.1:6000 is the source 127.0.0.1:6000',
      'jobs[0].source.password (job "qa"): environment variable SOURCE_PASSWORD is not set',
    ];
    for (const line of expected) expect(result.stderr).toContain(line);
    expect(result.stderr).toContain(`${expected.length} problems`);
    expectNoStackTrace(result.stderr);
  });
});
