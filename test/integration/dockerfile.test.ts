/**
 * The Dockerfile, checked without a Docker engine (this machine has none): what can be read from it
 * statically (pinned base images, multi-stage with production dependencies only, a non-root numeric
 * user, no HEALTHCHECK, the entrypoint), hadolint when it is installed, the build stage replayed on the
 * build context .dockerignore lets in, and the image's process run the way the image runs it: the
 * ENTRYPOINT and CMD as written, in an /app laid out as the Dockerfile's COPY lines lay it out
 * (package.json, production dependencies only, the build stage's dist/src), with only the ENV the
 * Dockerfile sets, as an unprivileged user that can write nothing but its state directory and /tmp.
 */
import { type ChildProcess, execSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');

interface Instruction {
  keyword: string;
  args: string;
  stage: number;
}

/** Dockerfile instructions with line continuations joined and comments dropped. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (full === '') continue;
    const [keyword = '', ...rest] = full.split(/\s+/);
    if (keyword.toUpperCase() === 'FROM') stage += 1;
    out.push({ keyword: keyword.toUpperCase(), args: rest.join(' '), stage });
  }
  return out;
}

const instructions = parseDockerfile(dockerfile);
const stages = instructions.filter((i) => i.keyword === 'FROM');
const finalStage = stages.length - 1;
const inFinal = (keyword: string) => instructions.filter((i) => i.stage === finalStage && i.keyword === keyword);
const execForm = (keyword: string): string[] => {
  const found = inFinal(keyword);
  expect(found, `one ${keyword} in the final stage`).toHaveLength(1);
  return JSON.parse(found[0]?.args ?? '[]') as string[];
};

describe('Dockerfile, statically', () => {
  it('is multi-stage, every base image pinned to an exact Node release on Debian bookworm slim', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const from of stages) {
      const image = from.args.split(/\s+/)[0] ?? '';
      expect(image, 'no ARG in FROM: the pin is visible in the file').not.toContain('$');
      expect(image).toMatch(/^node:\d+\.\d+\.\d+-bookworm-slim(@sha256:[0-9a-f]{64})?$/);
    }
    expect(new Set(stages.map((s) => s.args.split(/\s+/)[0])).size).toBe(1);
    const major = Number(/^node:(\d+)\./.exec(stages[0]?.args ?? '')?.[1]);
    const engines = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).engines.node as string;
    expect(major).toBeGreaterThanOrEqual(Number(/(\d+)/.exec(engines)?.[1]));
  });

  it('builds with dev dependencies, and the runtime gets production dependencies only', () => {
    const runs = (stage: number) => instructions.filter((i) => i.stage === stage && i.keyword === 'RUN').map((i) => i.args);
    const buildStage = stages.findIndex((s) => / AS build$/i.test(s.args));
    expect(runs(buildStage).join('\n')).toMatch(/npm ci\b(?![^\n]*--omit=dev)/);
    expect(runs(buildStage).join('\n')).toMatch(/tsc -p tsconfig\.image\.json/);
    const depsStage = stages.findIndex((s) => / AS prod-deps$/i.test(s.args));
    expect(runs(depsStage).join('\n')).toMatch(/npm ci --omit=dev/);
    const copies = inFinal('COPY').map((c) => c.args);
    expect(copies).toContain('--from=prod-deps /src/node_modules ./node_modules');
    expect(copies).toContain('--from=build /src/dist/src ./dist/src');
    expect(copies.some((c) => /--from=build .*node_modules/.test(c))).toBe(false);
    expect(runs(finalStage).join('\n')).not.toMatch(/\bnpm\b/);
  });

  it('installs PostgreSQL server binaries (15 by default, chosen with the PG_MAJORS build arg), apt lists removed', () => {
    const arg = inFinal('ARG').find((a) => a.args.startsWith('PG_MAJORS='));
    expect(arg?.args).toBe('PG_MAJORS=15');
    const apt = inFinal('RUN').find((r) => r.args.includes('apt-get install'))?.args ?? '';
    expect(apt).toContain('--no-install-recommends');
    expect(apt).toMatch(/postgresql-\$\{major\}/);
    expect(apt).toContain('pg_basebackup --version');
    expect(apt).toContain('rm -rf /var/lib/apt/lists/*');
    expect(apt).toContain('create_main_cluster = false');
  });

  it('runs as a numeric non-root user, with serve as the command and no HEALTHCHECK', () => {
    const users = instructions.filter((i) => i.keyword === 'USER');
    const last = users[users.length - 1];
    expect(last?.stage).toBe(finalStage);
    expect(last?.args).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    const lastUserIndex = instructions.lastIndexOf(last as Instruction);
    expect(instructions.slice(lastUserIndex).some((i) => i.keyword === 'RUN')).toBe(false);
    expect(instructions.some((i) => i.keyword === 'HEALTHCHECK')).toBe(false);
    expect(execForm('ENTRYPOINT')).toEqual(['/usr/bin/tini', '--', 'node', '/app/dist/src/cli/bin.js']);
    expect(execForm('CMD')).toEqual(['serve']);
    expect(dockerfile).toMatch(/useradd .*--uid 10001/);
  });

  it('.dockerignore lets in exactly what the build COPYs', () => {
    const allowed = dockerignoreAllowlist();
    const copied = instructions
      .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect([...new Set(copied)].sort()).toEqual([...allowed].sort());
    for (const source of copied) expect(existsSync(path.join(root, source)), source).toBe(true);
  });

  const hadolint = spawnSync('sh', ['-c', 'command -v hadolint'], { encoding: 'utf8' }).stdout.trim();
  if (!hadolint) {
    // Debian packages no hadolint (apt-cache finds none in bookworm or sid): say so instead of passing silently.
    process.stderr.write('[dockerfile test] hadolint is not installed (Debian does not package it): the hadolint check is skipped\n');
  }
  it.skipIf(!hadolint)('hadolint finds nothing (skipped: hadolint is not installed; Debian does not package it)', () => {
    const result = spawnSync(hadolint, ['--failure-threshold', 'info', path.join(root, 'Dockerfile')], { encoding: 'utf8' });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});

/** .dockerignore is an allowlist: "*", then "!path" for each thing the build may see. */
function dockerignoreAllowlist(): string[] {
  const lines = readFileSync(path.join(root, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  expect(lines[0]).toBe('*');
  expect(lines.slice(1).every((l) => l.startsWith('!'))).toBe(true);
  return lines.slice(1).map((l) => l.slice(1));
}

/** The packages the lockfile marks as production (not dev-only), by their top-level directory. */
function productionPackages(): string[] {
  const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; optional?: boolean }>;
  };
  return Object.entries(lock.packages)
    .filter(([key, meta]) => key.startsWith('node_modules/') && !key.slice('node_modules/'.length).includes('node_modules/') && !meta.dev)
    .map(([key]) => key)
    .filter((key) => existsSync(path.join(root, key)));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

describe('the image process, run as the image runs it', () => {
  let work: string;
  let app: string;
  let state: string;
  let entrypoint: string[];
  let env: NodeJS.ProcessEnv;
  const asRoot = process.getuid?.() === 0;
  const children: ChildProcess[] = [];

  beforeAll(() => {
    work = mkdtempSync(path.join(os.tmpdir(), 'dbr-image-'));
    chmodSync(work, 0o755);
    // The build stage, replayed: the build context (what .dockerignore lets in) as /src, the dev
    // dependencies npm ci installs there, and the stage's RUN lines after npm ci.
    const context = path.join(work, 'src');
    for (const entry of dockerignoreAllowlist()) cpSync(path.join(root, entry), path.join(context, entry), { recursive: true });
    symlinkSync(path.join(root, 'node_modules'), path.join(context, 'node_modules'));
    const buildStage = stages.findIndex((st) => / AS build$/i.test(st.args));
    for (const run of instructions.filter((i) => i.stage === buildStage && i.keyword === 'RUN').map((i) => i.args)) {
      if (!run.startsWith('npm ci')) execSync(run, { cwd: context, shell: '/bin/sh', stdio: 'pipe' });
    }
    // /app as the runtime stage lays it out.
    app = path.join(work, 'app');
    mkdirSync(app);
    cpSync(path.join(root, 'package.json'), path.join(app, 'package.json'));
    for (const pkg of productionPackages()) cpSync(path.join(root, pkg), path.join(app, pkg), { recursive: true });
    cpSync(path.join(context, 'dist/src'), path.join(app, 'dist/src'), { recursive: true });
    // The mounted volumes: the state directory and /tmp, writable by the service's user only.
    state = path.join(work, 'state');
    const tmp = path.join(work, 'tmp');
    mkdirSync(state);
    mkdirSync(tmp);
    if (asRoot) {
      chownSync(state, 65534, 65534);
      chownSync(tmp, 65534, 65534);
    }
    const tiniAvailable = existsSync('/usr/bin/tini');
    const [first, ...rest] = JSON.parse(inFinal('ENTRYPOINT')[0]?.args ?? '[]') as string[];
    const command = [first ?? '', ...rest, ...(JSON.parse(inFinal('CMD')[0]?.args ?? '[]') as string[])].map((a) =>
      a.startsWith('/app/') ? path.join(app, a.slice('/app/'.length)) : a,
    );
    if (!tiniAvailable) {
      process.stderr.write('[dockerfile test] /usr/bin/tini is not installed here: running the entrypoint without its "tini --" prefix\n');
      expect(command.slice(0, 2)).toEqual(['/usr/bin/tini', '--']);
      command.splice(0, 2);
    }
    entrypoint = command;
    // Only the Dockerfile's ENV, with the config path pointing at this test's config.
    env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
    for (const e of inFinal('ENV')) {
      for (const m of e.args.matchAll(/(\w+)=(\S+)/g)) env[m[1] ?? ''] = m[2];
    }
    expect(env.DB_REFRESHER_CONFIG).toBe('/etc/db-refresher/config/config.yaml');
    expect(env.NODE_ENV).toBe('production');
    env.DB_REFRESHER_CONFIG = path.join(work, 'config.yaml');
    env.HOME = state;
    env.TMPDIR = tmp;
  }, 120_000);

  afterAll(() => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** The entrypoint with extra arguments, as an unprivileged user when the tests run as root. */
  function start(args: string[] | undefined): ChildProcess {
    const [command, ...rest] = args ? [...entrypoint.slice(0, -1), ...args] : entrypoint;
    const argv = asRoot
      ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--', command ?? '', ...rest]
      : [command ?? '', ...rest];
    const child = spawn(argv[0] ?? '', argv.slice(1), { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    return child;
  }

  function collect(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
  }

  it('has production dependencies only, and --help works with them', async () => {
    const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    expect(lock.packages['node_modules/typescript']?.dev).toBe(true);
    expect(existsSync(path.join(app, 'node_modules/typescript'))).toBe(false);
    expect(existsSync(path.join(app, 'node_modules/vitest'))).toBe(false);
    expect(existsSync(path.join(app, 'node_modules/fastify'))).toBe(true);
    const result = await collect(start(['--help']));
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('serve');
  });

  it('serve (the CMD) starts, answers /healthz and /readyz, and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    writeFileSync(
      env.DB_REFRESHER_CONFIG ?? '',
      `stateDir: ${state}
server: { host: 127.0.0.1, port: ${port}, history: { kind: file } }
jobs:
  - name: local-copy
    source: { host: 127.0.0.1, port: 1, user: replicator }
    target: { kind: local, dataDir: ${state}/copies/local-copy, port: ${port + 1} }
`,
    );
    chmodSync(env.DB_REFRESHER_CONFIG ?? '', 0o644);
    const child = start(undefined);
    const done = collect(child);
    const deadline = Date.now() + 30_000;
    let ready = false;
    while (!ready && Date.now() < deadline && child.exitCode === null) {
      try {
        const health = await fetch(`http://127.0.0.1:${port}/healthz`);
        const readiness = await fetch(`http://127.0.0.1:${port}/readyz`);
        ready = health.status === 200 && readiness.status === 200;
      } catch {
        // not listening yet
      }
      if (!ready) await new Promise((r) => setTimeout(r, 200));
    }
    expect(ready, 'serve became ready').toBe(true);
    child.kill('SIGTERM');
    const result = await done;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('"msg":"stopped"');
    expect(result.stderr).not.toMatch(/EACCES|EROFS/);
  }, 60_000);
});
