import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, runCli } from '../support/cli.js';
import { freePort } from '../support/local-harness.js';
import { killServes, type Served, serve } from '../support/serve.js';

/**
 * `db-refresher completion bash` loaded into a real bash, driven the way bash
 * drives it on Tab (COMP_WORDS, COMP_CWORD, then the function `complete -p`
 * names), with the built CLI on PATH: it offers verbs, options, option values,
 * job names from the config file, and job names from a running service.
 */

const run = promisify(execFile);
const TOKEN = 'completion-test-token-0123456789';

let dir: string;
let configFile: string;
let served: Served | undefined;

function localJob(name: string, port: number): string {
  return `
  - name: ${name}
    source: { host: 127.0.0.1, port: ${port}, user: replicator }
    target: { kind: local, dataDir: data-${name}, port: ${port + 1} }`;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'dbr-completion-'));
  mkdirSync(path.join(dir, 'bin'));
  // How npm installs the CLI: an executable named db-refresher on PATH.
  const wrapper = path.join(dir, 'bin', 'db-refresher');
  writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${CLI_BIN}" "$@"\n`);
  chmodSync(wrapper, 0o755);
  const port = await freePort();
  configFile = path.join(dir, 'local.yaml');
  writeFileSync(configFile, `stateDir: state\njobs:${localJob('qa', port)}${localJob('staging-eu', port + 2)}\n`);
});

afterAll(async () => {
  await served?.stop();
  killServes();
  rmSync(dir, { recursive: true, force: true });
});

/** Loads the script into a fresh bash and presses Tab after `line` (words split on spaces; a trailing space starts a new word). */
async function tab(line: string, env: NodeJS.ProcessEnv = {}): Promise<{ spec: string; offered: string[] }> {
  const words = line.split(' ');
  const quoted = words.map((w) => `'${w}'`).join(' ');
  const script = `
source <(db-refresher completion bash)
spec=$(complete -p db-refresher)
echo "$spec"
fn=$(echo "$spec" | sed -E 's/.* -F ([^ ]+) .*/\\1/')
COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; COMP_LINE='${line}'; COMP_POINT=\${#COMP_LINE}
"$fn"
printf '%s\\n' "\${COMPREPLY[@]}"
`;
  const { stdout } = await run('bash', ['--norc', '--noprofile', '-c', script], {
    cwd: dir,
    env: { PATH: `${path.join(dir, 'bin')}:${process.env.PATH}`, HOME: dir, ...env },
    timeout: 30_000,
  });
  const [spec = '', ...offered] = stdout.trimEnd().split('\n');
  return { spec, offered: offered.filter(Boolean) };
}

describe('db-refresher completion', () => {
  it('bash: registers a function for db-refresher and completes verbs, options and -o values', async () => {
    const verbs = await tab('db-refresher ');
    expect(verbs.spec).toMatch(/^complete .*-F _db_refresher_complete db-refresher$/);
    expect(verbs.offered).toEqual(expect.arrayContaining(['validate', 'run', 'plan', 'status', 'trigger', 'completion']));
    expect(verbs.offered).not.toContain('__complete');

    expect((await tab('db-refresher tr')).offered).toEqual(['trigger']);
    expect((await tab('db-refresher run --d')).offered).toEqual(['--dry-run']);
    expect((await tab('db-refresher run qa -o ')).offered).toEqual(['text', 'json', 'yaml']);
  });

  it('bash: completes job names from --config, from $DB_REFRESHER_CONFIG, and file names after --config', async () => {
    expect((await tab(`db-refresher --config ${configFile} run `)).offered).toEqual(['qa', 'staging-eu']);
    expect((await tab(`db-refresher -c ${configFile} plan st`)).offered).toEqual(['staging-eu']);
    expect((await tab('db-refresher schedule ', { DB_REFRESHER_CONFIG: configFile })).offered).toEqual(['qa', 'staging-eu']);
    // The job name is the only argument: nothing more after it.
    expect((await tab(`db-refresher --config ${configFile} run qa `)).offered).toEqual([]);
    expect((await tab('db-refresher --config loc')).offered).toEqual(['local.yaml']);
  });

  it('bash: completes job names from the server the line names (--server, --token-file), or $DB_REFRESHER_SERVER', async () => {
    const port = await freePort();
    const serverConfig = path.join(dir, 'served.yaml');
    writeFileSync(
      serverConfig,
      `stateDir: served-state
server:
  host: 127.0.0.1
  port: 0
  tokens: [{ name: ci, token: { env: API_TOKEN } }]
jobs:${localJob('billing', port)}${localJob('billing-archive', port + 2)}${localJob('reports', port + 4)}
`,
    );
    served = await serve(serverConfig, { ...process.env, API_TOKEN: TOKEN });
    const tokenFile = path.join(dir, 'token');
    writeFileSync(tokenFile, TOKEN);

    const named = await tab(`db-refresher --server ${served.base} --token-file ${tokenFile} trigger bill`);
    expect(named.offered).toEqual(['billing', 'billing-archive']);
    const fromEnv = await tab('db-refresher suspend ', { DB_REFRESHER_SERVER: served.base, DB_REFRESHER_TOKEN: TOKEN });
    expect(fromEnv.offered).toEqual(['billing', 'billing-archive', 'reports']);
    // A wrong token offers nothing and prints nothing into the command line.
    const refused = await tab(`db-refresher --server ${served.base} trigger `, { DB_REFRESHER_TOKEN: 'wrong-token-0123456789abcdef' });
    expect(refused.offered).toEqual([]);
  });

  it('every verb the completion offers has examples in its --help', async () => {
    const verbs = (await tab('db-refresher ')).offered;
    expect(verbs.length).toBeGreaterThan(15);
    for (const verb of verbs) {
      const help = await runCli([verb, '--help']);
      expect(help.code, verb).toBe(0);
      expect(help.stdout, verb).toMatch(new RegExp(`Examples:\\n  \\$ .*db-refresher .*${verb}`));
    }
  });

  it('zsh and fish scripts are printed; an unknown shell is a usage error', async () => {
    const zsh = await runCli(['completion', 'zsh']);
    expect(zsh.code).toBe(0);
    expect(zsh.stdout).toContain('compdef _db_refresher_complete db-refresher');
    const fish = await runCli(['completion', 'fish']);
    expect(fish.code).toBe(0);
    expect(fish.stdout).toContain("complete -c db-refresher -f -a '(__db_refresher_complete)'");
    const bad = await runCli(['completion', 'tcsh']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('bash, zsh, fish');
  });
});
