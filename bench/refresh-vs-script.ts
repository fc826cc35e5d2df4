import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, Sandbox } from '../scripts/pg-sandbox.js';
import { REPLICATION_USER } from '../scripts/sample-data.js';
import { serverOsUser } from '../src/postgres/os-user.js';

/**
 * Refreshes a generated source of BENCH_SIZE_MB (default 1024) with
 * `db-refresher run` and with the hand-written peer script
 * (bench/baseline-refresh.sh), alternating, BENCH_ROUNDS times each (default 3).
 * Prints per-round wall times, medians and the ratio.
 */

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const sizeMb = Number(process.env.BENCH_SIZE_MB ?? 1024);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
/** off: the job does not neutralise (no private window), which is all the script does too. */
const neutralise = process.env.BENCH_NEUTRALISE !== 'off';

function timed(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  asUser?: { uid: number; gid: number },
): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'], ...(asUser ?? {}) });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code === 0) resolve({ ms, stdout });
      else reject(new Error(`${path.basename(command)} ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`));
    });
  });
}

/** Phase durations from the run record db-refresher prints, to see where its time goes. */
function phaseTimes(stdout: string): Record<string, number> {
  try {
    const run = JSON.parse(stdout) as { phases: Array<{ name: string; durationMs?: number }> };
    return Object.fromEntries(run.phases.map((p) => [p.name, p.durationMs ?? 0]));
  } catch {
    return {};
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

async function main(): Promise<void> {
  const sandbox = Sandbox.create('db-refresher-bench-');
  try {
    const password = randomBytes(9).toString('hex');
    const source = await sandbox.createCluster({ name: 'source', settings: { shared_buffers: "'128MB'" } });
    await source.sql(`CREATE ROLE ${REPLICATION_USER} WITH LOGIN REPLICATION PASSWORD '${password}'`);
    await source.sql('CREATE DATABASE app');
    // About 280 bytes a row on disk.
    const rows = Math.round((sizeMb * 1024 * 1024) / 280);
    process.stderr.write(`generating ~${sizeMb} MB (${rows} rows) in the source...\n`);
    await source.sql(
      `CREATE TABLE public.big AS SELECT g AS id, md5(g::text) || repeat('x', 200) AS payload FROM generate_series(1, ${rows}) g;
       CREATE SCHEMA other; CREATE TABLE other.small (id int); CHECKPOINT;`,
      'app',
    );
    const [size] = await source.sql<{ size: string }>("SELECT pg_size_pretty(pg_database_size('app')) AS size", 'app');
    process.stderr.write(`source database app: ${size?.size}\n`);

    const toolPort = await freePort();
    const scriptPort = await freePort();
    const configFile = path.join(sandbox.root, 'bench.yaml');
    writeFileSync(
      configFile,
      `stateDir: state
jobs:
  - name: bench
    source: { host: 127.0.0.1, port: ${source.port}, user: ${REPLICATION_USER}, sslmode: disable, password: { env: BENCH_PASSWORD } }
    target: { kind: local, dataDir: copy-tool, port: ${toolPort} }
${neutralise ? '' : '    neutralise: false\n'}    verify:
      databases: [{ name: app }]
`,
    );
    const passfile = path.join(sandbox.root, 'pgpass');
    writeFileSync(passfile, `*:*:*:*:${password}\n`, { mode: 0o600 });
    const runAs = serverOsUser();
    if (runAs) chownSync(passfile, runAs.uid, runAs.gid);

    const toolEnv = { ...process.env, BENCH_PASSWORD: password };
    const scriptEnv = {
      ...process.env,
      PGBIN: source.binDir.dir,
      DATA_DIR: path.join(sandbox.dir('script'), 'copy'),
      TARGET_PORT: String(scriptPort),
      SOURCE_HOST: '127.0.0.1',
      SOURCE_PORT: String(source.port),
      SOURCE_USER: REPLICATION_USER,
      PGPASSFILE: passfile,
      PGSSLMODE: 'disable',
      VERIFY_DB: 'app',
    };
    const tool: number[] = [];
    const script: number[] = [];
    const phases: Array<Record<string, number>> = [];
    for (let round = 1; round <= rounds; round += 1) {
      // Alternate which goes first, so neither always gets the warmer page cache.
      const order = round % 2 ? ['tool', 'script'] : ['script', 'tool'];
      for (const which of order) {
        if (which === 'tool') {
          const result = await timed(
            process.execPath,
            [path.join(root, 'dist/src/cli/bin.js'), 'run', 'bench', '--config', configFile, '-o', 'json'],
            toolEnv,
          );
          tool.push(result.ms);
          phases.push(phaseTimes(result.stdout));
        } else {
          script.push((await timed(path.join(root, 'bench/baseline-refresh.sh'), [], scriptEnv, runAs)).ms);
        }
      }
      process.stderr.write(`round ${round}: db-refresher ${tool.at(-1)?.toFixed(0)} ms, script ${script.at(-1)?.toFixed(0)} ms\n`);
    }
    const ratio = median(tool) / median(script);
    const result = {
      date: new Date().toISOString(),
      machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, PostgreSQL ${source.binDir.major}`,
      sourceSize: size?.size,
      rounds,
      dbRefresherMs: tool.map(Math.round),
      scriptMs: script.map(Math.round),
      medianDbRefresherMs: Math.round(median(tool)),
      medianScriptMs: Math.round(median(script)),
      ratio: Number(ratio.toFixed(3)),
      medianPhaseMs: Object.fromEntries(
        Object.keys(phases[0] ?? {}).map((name) => [name, Math.round(median(phases.map((p) => p[name] ?? 0)))]),
      ),
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await sandbox.destroy();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`benchmark failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
