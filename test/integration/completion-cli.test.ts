import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { CLI_BIN, runCli } from '../support/cli.js';
import { freePort } from '../support/local-harness.js';
import { killServes, type Served, serve } from '../support/serve.js';

/**
 * `db-refresher completion bash|zsh|fish` loaded into the real shells, with the
 * built CLI on PATH: bash driven the way it drives a completion on Tab
 * (COMP_WORDS, COMP_CWORD, then the function `complete -p` names), zsh through
 * its completion system on a pseudo-terminal (compinit, then Tab in an
 * interactive zsh run by zpty), fish through `complete -C`. Each offers verbs,
 * options, option values, job names from the config file, and job names from
 * a running service. zsh and fish come from scripts/install-system-deps.sh.
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

const hasShell = (shell: string): boolean => {
  try {
    execFileSync(shell, ['-c', 'exit 0'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** Skips a shell's test where the shell is missing, naming the Debian package that brings it. */
function needShell(ctx: TestContext, shell: 'zsh' | 'fish'): void {
  if (!hasShell(shell)) ctx.skip(`${shell} is not installed: install the Debian package "${shell}" (scripts/install-system-deps.sh does)`);
}

/** The service whose job names the completions fetch, started once for every shell's test. */
async function service(): Promise<{ base: string; tokenFile: string }> {
  const tokenFile = path.join(dir, 'token');
  if (!served) {
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
    writeFileSync(tokenFile, TOKEN);
  }
  return { base: served.base, tokenFile };
}

function shellEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  // HOME and XDG folders in the test folder: fish writes its universal variables and history there.
  return {
    PATH: `${path.join(dir, 'bin')}:${process.env.PATH}`,
    HOME: dir,
    XDG_CONFIG_HOME: path.join(dir, '.config'),
    XDG_DATA_HOME: path.join(dir, '.local/share'),
    TERM: 'xterm',
    ...env,
  };
}

/**
 * Drives zsh's completion system for real: an interactive `zsh -f` on a
 * pseudo-terminal (zpty) runs compinit, sources the script, and gets the line
 * typed with a Tab. compadd is wrapped to print what the completion adds
 * (after zsh's own matching against the word, through `compadd -A`), and a
 * comppostfuncs hook marks the end of the completion.
 */
const ZSH_DRIVER = String.raw`zmodload zsh/zpty || exit 3
zpty z zsh -f -i
zpty -w z 'PS1= PROMPT= RPROMPT=; autoload -Uz compinit && compinit -u -d "$HOME/.zcompdump"'
zpty -w z "source $2"
zpty -w z $'compadd() { local -a __hits; builtin compadd -A __hits "$@"; local h; for h in $__hits; do print -r -- $\'\\x3cHIT\\x3e\'"$h"; done; builtin compadd "$@" }'
zpty -w z $'_dbr_done() { print -r -- $\'\\x3cDONE\\x3e\' }; comppostfuncs=(_dbr_done)'
zpty -w z 'bindkey "^I" complete-word'
zpty -w -n z "$1"$'\t'
zpty -r z out '*<DONE>*'
print -r -- "$out" | tr -d '\r' | grep -a -o '<HIT>[^[:cntrl:]]*' | sed 's/^<HIT>//'
zpty -d z
`;

/**
 * The script as `db-refresher completion SHELL` prints it, saved once: each Tab
 * below starts a fresh shell, and a Node start-up per shell adds seconds on a
 * busy machine. (The loading tests use the documented one-liners.)
 */
async function savedScript(shell: 'zsh' | 'fish'): Promise<string> {
  const file = path.join(dir, `completion.${shell}`);
  if (!existsSync(file)) {
    const printed = await runCli(['completion', shell]);
    expect(printed.code).toBe(0);
    writeFileSync(file, printed.stdout);
  }
  return file;
}

async function zshTab(line: string, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  const driver = path.join(dir, 'drive.zsh');
  writeFileSync(driver, ZSH_DRIVER);
  // compinit's dump ($HOME/.zcompdump, made by the first call) spares the later ones a scan of every completion function.
  const { stdout } = await run('zsh', ['-f', driver, line, await savedScript('zsh')], { cwd: dir, env: shellEnv(env), timeout: 30_000 });
  // _files may add the same name in two passes (its file patterns, then all files); zsh lists it once.
  return [...new Set(stdout.split('\n').filter(Boolean))];
}

/** fish's own completion of `line`, as Tab would list it (candidates only, descriptions dropped). */
async function fishTab(line: string, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  const { stdout, stderr } = await run(
    'fish',
    ['--no-config', '-c', 'source $argv[2]; and complete -C $argv[1]', line, await savedScript('fish')],
    { cwd: dir, env: shellEnv(env), timeout: 30_000 },
  );
  expect(stderr).toBe('');
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t')[0] as string);
}

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
    const { base, tokenFile } = await service();
    const named = await tab(`db-refresher --server ${base} --token-file ${tokenFile} trigger bill`);
    expect(named.offered).toEqual(['billing', 'billing-archive']);
    const fromEnv = await tab('db-refresher suspend ', { DB_REFRESHER_SERVER: base, DB_REFRESHER_TOKEN: TOKEN });
    expect(fromEnv.offered).toEqual(['billing', 'billing-archive', 'reports']);
    // A wrong token offers nothing and prints nothing into the command line.
    const refused = await tab(`db-refresher --server ${base} trigger `, { DB_REFRESHER_TOKEN: 'wrong-token-0123456789abcdef' });
    expect(refused.offered).toEqual([]);
  });

  it('zsh: the script loads after compinit without a word on stderr, and Tab completes verbs, options and -o values', async (ctx) => {
    needShell(ctx, 'zsh');
    const loaded = await run(
      'zsh',
      ['-f', '-c', 'autoload -Uz compinit && compinit -u -D && source <(db-refresher completion zsh) && print -r -- $_comps[db-refresher]'],
      {
        cwd: dir,
        env: shellEnv({}),
      },
    );
    expect(loaded.stderr).toBe('');
    expect(loaded.stdout.trim()).toBe('_db_refresher_complete');
    // Without compinit it stays quiet too (it registers nothing).
    expect((await run('zsh', ['-f', '-c', 'source <(db-refresher completion zsh)'], { cwd: dir, env: shellEnv({}) })).stderr).toBe('');

    const verbs = await zshTab('db-refresher ');
    expect(verbs).toEqual(expect.arrayContaining(['validate', 'run', 'plan', 'status', 'trigger', 'completion']));
    expect(verbs).not.toContain('__complete');
    expect(await zshTab('db-refresher tr')).toEqual(['trigger']);
    expect(await zshTab('db-refresher run --d')).toEqual(['--dry-run']);
    expect(await zshTab('db-refresher run qa -o ')).toEqual(['text', 'json', 'yaml']);
  });

  it('zsh: completes job names from --config and from the server, and file names after --config', async (ctx) => {
    needShell(ctx, 'zsh');
    expect(await zshTab(`db-refresher --config ${configFile} run `)).toEqual(['qa', 'staging-eu']);
    expect(await zshTab('db-refresher schedule ', { DB_REFRESHER_CONFIG: configFile })).toEqual(['qa', 'staging-eu']);
    expect(await zshTab('db-refresher --config loc')).toEqual(['local.yaml']);
    const { base, tokenFile } = await service();
    expect(await zshTab(`db-refresher --server ${base} --token-file ${tokenFile} trigger bill`)).toEqual(['billing', 'billing-archive']);
  });

  it('fish: the script loads without a word on stderr, and completes verbs, options, -o values and job names', async (ctx) => {
    needShell(ctx, 'fish');
    const loaded = await run('fish', ['--no-config', '-c', 'db-refresher completion fish | source; and complete -C "db-refresher tr"'], {
      cwd: dir,
      env: shellEnv({}),
    });
    expect(loaded.stderr).toBe('');
    expect(loaded.stdout.trim()).toBe('trigger');
    const verbs = await fishTab('db-refresher ');
    expect(verbs).toEqual(expect.arrayContaining(['validate', 'run', 'plan', 'status', 'trigger', 'completion']));
    expect(verbs).not.toContain('__complete');
    expect(await fishTab('db-refresher tr')).toEqual(['trigger']);
    expect(await fishTab('db-refresher run --d')).toEqual(['--dry-run']);
    expect(await fishTab('db-refresher run qa -o ')).toEqual(['json', 'text', 'yaml']);
    expect(await fishTab(`db-refresher --config ${configFile} run `)).toEqual(['qa', 'staging-eu']);
    expect(await fishTab('db-refresher schedule st', { DB_REFRESHER_CONFIG: configFile })).toEqual(['staging-eu']);
    expect(await fishTab('db-refresher --config loc')).toEqual(['local.yaml']);
    const { base, tokenFile } = await service();
    expect(await fishTab(`db-refresher --server ${base} --token-file ${tokenFile} trigger bill`)).toEqual(['billing', 'billing-archive']);
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
