import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, Sandbox } from '../scripts/pg-sandbox.js';
import { REPLICATION_USER } from '../scripts/sample-data.js';
import { startProber } from '../test/support/prober.js';

/**
 * What clients see during a refresh, strategy against strategy: one generated source of BENCH_SIZE_MB
 * (default 1024), two local jobs refreshing it (recreate and blueGreen), each run with
 * `db-refresher run` BENCH_ROUNDS times (default 3), alternating which goes first. During every run a
 * prober runs `SELECT 1` every 10 ms on the job's port and reports the longest time without an answer.
 * Before the measured rounds each job refreshes once, so there is a copy to keep serving.
 *
 *   BENCH_SIZE_MB=1024 BENCH_ROUNDS=3 npm run bench:blue-green
 */

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const sizeMb = Number(process.env.BENCH_SIZE_MB ?? 1024);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [path.join(root, 'dist/src/cli/bin.js'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('close', (code) => {
      if (code === 0) resolve({ ms: performance.now() - started, stdout });
      else reject(new Error(`db-refresher ${args.join(' ')} exited ${code}: ${stdout.slice(-1500)} ${stderr.slice(-1500)}`));
    });
  });
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

async function main(): Promise<void> {
  const sandbox = Sandbox.create('db-refresher-bench-bg-');
  try {
    const password = randomBytes(9).toString('hex');
    const source = await sandbox.createCluster({ name: 'source', settings: { shared_buffers: "'128MB'" } });
    await source.sql(`CREATE ROLE ${REPLICATION_USER} WITH LOGIN REPLICATION SUPERUSER PASSWORD '${password}'`);
    await source.sql('CREATE DATABASE app');
    const rows = Math.round((sizeMb * 1024 * 1024) / 280);
    process.stderr.write(`generating ~${sizeMb} MB (${rows} rows) in the source...\n`);
    await source.sql(
      `CREATE TABLE public.big AS SELECT g AS id, md5(g::text) || repeat('x', 200) AS payload FROM generate_series(1, ${rows}) g; CHECKPOINT;`,
      'app',
    );
    const [size] = await source.sql<{ size: string }>("SELECT pg_size_pretty(pg_database_size('app')) AS size", 'app');
    const ports = { recreate: await freePort(), blueGreen: await freePort() };
    const configFile = path.join(sandbox.root, 'bench.yaml');
    const job = (name: string, port: number, strategy: string) => `
  - name: ${name}
    source: { host: 127.0.0.1, port: ${source.port}, user: ${REPLICATION_USER}, sslmode: disable, password: { env: BENCH_PASSWORD } }
    target: { kind: local, dataDir: copy-${name}, port: ${port} }
    strategy: ${strategy}
    verify: { databases: [{ name: app }] }`;
    writeFileSync(
      configFile,
      `stateDir: state\njobs:${job('recreate', ports.recreate, 'recreate')}${job('bluegreen', ports.blueGreen, '{ kind: blueGreen, keepPrevious: 0, drainSeconds: 0 }')}\n`,
    );
    const env = { ...process.env, BENCH_PASSWORD: password };
    for (const name of ['recreate', 'bluegreen']) await run(['run', name, '--config', configFile, '-o', 'json'], env);

    const results: Record<'recreate' | 'bluegreen', { gapMs: number[]; runMs: number[] }> = {
      recreate: { gapMs: [], runMs: [] },
      bluegreen: { gapMs: [], runMs: [] },
    };
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 ? (['recreate', 'bluegreen'] as const) : (['bluegreen', 'recreate'] as const);
      for (const name of order) {
        const port = name === 'recreate' ? ports.recreate : ports.blueGreen;
        const prober = startProber({ host: '127.0.0.1', port, user: REPLICATION_USER, password, database: 'app' });
        await prober.ready();
        const { ms } = await run(['run', name, '--config', configFile, '-o', 'json'], env);
        await new Promise((resolve) => setTimeout(resolve, 300));
        const probe = await prober.stop();
        results[name].gapMs.push(probe.longestGapMs);
        results[name].runMs.push(Math.round(ms));
        process.stderr.write(
          `round ${round} ${name}: run ${Math.round(ms)} ms, longest gap ${probe.longestGapMs} ms (${probe.failures} failed probes)\n`,
        );
      }
    }
    const summary = {
      date: new Date().toISOString(),
      machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, PostgreSQL ${source.binDir.major}, load ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
      sourceSize: size?.size,
      rounds,
      recreate: { ...results.recreate, medianGapMs: median(results.recreate.gapMs), medianRunMs: median(results.recreate.runMs) },
      blueGreen: { ...results.bluegreen, medianGapMs: median(results.bluegreen.gapMs), medianRunMs: median(results.bluegreen.runMs) },
      gapRatio: median(results.recreate.gapMs) / Math.max(1, median(results.bluegreen.gapMs)),
    };
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  } finally {
    await sandbox.destroy();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
