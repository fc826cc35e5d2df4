import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { DEFAULT_MAX_CONFIG_BYTES, MAX_CONFIG_BYTES_ENV } from '../../src/config/read-yaml.js';
import { ConfigError, MAX_LISTED_PROBLEMS } from '../../src/errors.js';

/**
 * Files a careless or hostile user can hand to `validate`: each is a config
 * error (exit 2) with a message that says what is wrong, quotes and cuts what
 * it echoes, and never passes on a library's internal message.
 */

const env = { DBR_TEST_PASSWORD: 's3cret-value', HOOK: 'https://hooks.example.com/services/T0123/B0123/abcdefghijklmnop' };
const dir = mkdtempSync(path.join(tmpdir(), 'dbr-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const job = (name = 'qa', dataDir = 'data/qa', port = 5433) => `
  - name: ${name}
    source: { host: db.example.com, user: replicator, password: { env: DBR_TEST_PASSWORD } }
    target: { kind: local, dataDir: ${dataDir}, port: ${port} }`;

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

const parse = (text: string, environment: NodeJS.ProcessEnv = env) =>
  parseConfig(text, { source: 'hostile.yaml', baseDir: dir, env: environment });

function writeFile(name: string, content: string | Buffer): string {
  const file = path.join(dir, name);
  writeFileSync(file, content);
  return file;
}

describe('hostile config files', () => {
  it('an alias bomb is refused quickly with a message about aliases, not "internal error"', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i <= 12; i += 1)
      lines.push(
        `a${i}: &a${i} [${Array(9)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    const started = performance.now();
    const error = configError(() => parse(`${lines.join('\n')}\njobs: *a12\n`));
    expect(performance.now() - started).toBeLessThan(5000);
    expect(error.problems).toEqual([expect.stringMatching(/^\(top level\): its 109 YAML aliases \(\*name\) expand past the limit/)]);
    expect(error.exitCode).toBe(2);
  });

  it('anchors shared by many jobs still load (a block without aliases inside costs nothing)', () => {
    const source = (i: number) =>
      i === 0 ? '&src { host: db.example.com, user: replicator, password: { env: DBR_TEST_PASSWORD } }' : '*src';
    const jobs = Array.from(
      { length: 300 },
      (_, i) => `  - { name: j${i}, source: ${source(i)}, target: { kind: local, dataDir: d/${i}, port: ${6000 + i} } }`,
    );
    const config = parse(`jobs:\n${jobs.join('\n')}\n`);
    expect(config.jobs).toHaveLength(300);
  });

  it('deep nesting says so, instead of "Maximum call stack size exceeded"', () => {
    for (const depth of [100, 20_000]) {
      const error = configError(() => parse(`jobs: ${'['.repeat(depth)}${']'.repeat(depth)}\n`));
      expect(error.message).toMatch(/nesting is too deep; a config file nests at most 64 levels/);
      expect(error.message).not.toMatch(/call stack/i);
    }
  });

  it("several YAML documents in one file are named as such, without the library's advice", () => {
    const error = configError(() => parse(`jobs:${job()}\n---\nlogLevel: debug\n`));
    expect(error.problems).toEqual([expect.stringContaining('the file holds more than one YAML document')]);
    expect(error.message).not.toContain('parseAllDocuments');
  });

  it('binary content is refused without being echoed', () => {
    const garbage = Buffer.alloc(16 * 1024);
    for (let i = 0; i < garbage.length; i += 1) garbage[i] = (i * 131 + 7) % 256;
    const error = configError(() => loadConfig(writeFile('binary.yaml', garbage), env));
    expect(error.problems).toEqual([expect.stringMatching(/^\(top level\): the file is not text \(a NUL byte at offset \d+\)/)]);
    expect(error.message.length).toBeLessThan(300);
    const latin1 = configError(() => loadConfig(writeFile('latin1.yaml', Buffer.from('jobs: [caf\xe9]\n', 'latin1')), env));
    expect(latin1.problems).toEqual(['(top level): the file is not UTF-8 text; is it the right file? Save it as UTF-8']);
  });

  it('control characters from the file are escaped, and long values are cut', () => {
    const name = `\u001b[31mred\u001b[0m\u0007\u202e${'x'.repeat(20_000)}`;
    const error = configError(() => parse(`jobs:\n  - name: "${name.replaceAll('\u001b', '\\e').replaceAll('\u0007', '\\a')}"\n`));
    expect(error.message).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/);
    expect(error.message).toContain('"\\u001b[31mred\\u001b[0m\\u0007\\u202e');
    for (const line of error.message.split('\n')) expect(line.length).toBeLessThan(500);
    expect(error.message.length).toBeLessThan(2000);
  });

  it('unknown keys with control characters are escaped too', () => {
    const error = configError(() => parse(`jobs:${job()}\n    "bad\\e[2Jkey": 1\n`));
    expect(error.message).toContain('unknown key "bad\\u001b[2Jkey"');
    expect(error.message).not.toContain('\u001b');
  });

  it(`4,000 problems: the message lists the first ${MAX_LISTED_PROBLEMS} and counts the rest`, () => {
    const jobs = Array.from({ length: 2_000 }, (_, i) => `  - { name: j${i}, bogus${i}: 1 }`);
    const error = configError(() => parse(`jobs:\n${jobs.join('\n')}\n`));
    expect(error.problems.length).toBe(4_000);
    const listed = error.message.split('\n').filter((l) => l.startsWith('  - '));
    expect(listed).toHaveLength(MAX_LISTED_PROBLEMS);
    expect(error.message).toMatch(/^hostile\.yaml: 4000 problems:/);
    expect(error.message).toContain(`  … and ${4_000 - MAX_LISTED_PROBLEMS} more`);
  });

  it(`a file over ${DEFAULT_MAX_CONFIG_BYTES} bytes is refused before it is parsed; ${MAX_CONFIG_BYTES_ENV} raises the limit`, () => {
    const padding = `# ${'x'.repeat(1000)}\n`.repeat(Math.ceil(DEFAULT_MAX_CONFIG_BYTES / 1000));
    const file = writeFile('big.yaml', `jobs:${job()}\n${padding}`);
    const error = configError(() => loadConfig(file, env));
    expect(error.problems).toEqual([
      expect.stringMatching(
        /^\(top level\): the file is 1\.0 MiB, larger than the limit of 1\.0 MiB; .* raise DB_REFRESHER_CONFIG_MAX_BYTES$/,
      ),
    ]);
    expect(loadConfig(file, { ...env, [MAX_CONFIG_BYTES_ENV]: String(4 * 1024 * 1024) }).jobs).toHaveLength(1);
    const bad = configError(() => loadConfig(file, { ...env, [MAX_CONFIG_BYTES_ENV]: '1 MB' }));
    expect(bad.problems).toEqual([expect.stringContaining(`${MAX_CONFIG_BYTES_ENV}="1 MB" is not a number of bytes`)]);
  });

  it('a stateDir that is a file is a config error, not a crash at run time', () => {
    writeFile('state-file', 'not a directory');
    const error = configError(() => parse(`stateDir: state-file\njobs:${job()}\n`));
    expect(error.problems).toEqual([
      `stateDir: ${path.join(dir, 'state-file')} exists and is not a directory; the run history and locks go there. Remove it or choose another path`,
    ]);
    const under = configError(() => parse(`stateDir: state-file/below\njobs:${job()}\n`));
    expect(under.problems).toEqual([expect.stringContaining('is under a file, not a directory')]);
  });

  it('a data directory at / or overlapping the state directory is a config error', () => {
    const error = configError(() =>
      parse(`stateDir: state\njobs:${job('a', '/', 5433)}${job('b', 'state/runs/copy', 5434)}${job('c', '.', 5435)}\n`),
    );
    expect(error.problems).toEqual([
      expect.stringMatching(/^jobs\[0\]\.target\.dataDir: \/ is the root of the file system/),
      expect.stringMatching(/^jobs\[1\]\.target\.dataDir: .*state\/runs\/copy is inside the state directory/),
      expect.stringMatching(/^jobs\[2\]\.target\.dataDir: .* contains the state directory/),
    ]);
  });

  it('a webhook URL with a user name or password is a config error that does not show them', () => {
    const error = configError(() =>
      parse(`notifications:\n  team: { kind: slack, url: { env: HOOK } }\njobs:${job()}\n    notify: [team]\n`, {
        ...env,
        HOOK: 'https://hookuser:hookpass@hooks.example.com/x',
      }),
    );
    expect(error.problems).toEqual([
      expect.stringMatching(/^notifications\.team\.url \(env:HOOK\): the URL holds a user name or password/),
    ]);
    expect(error.message).not.toMatch(/hookuser|hookpass/);
  });
});
