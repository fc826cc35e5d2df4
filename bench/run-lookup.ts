import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { FileRunStore } from '../src/history/file-store.js';

/**
 * GET /api/v1/runs/{id} on the file store: how long `get(id)` takes with
 * BENCH_JOBS (default 1000) jobs of BENCH_RUNS (default 5) runs each, for an id
 * the store has indexed, against its peer in the same run: an id it has not
 * seen, which costs a scan of every job's directory each time. Prints a
 * Markdown table.
 */

const JOBS = Number(process.env.BENCH_JOBS ?? 1000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 200);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function time(fn: () => Promise<unknown>, rounds: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    await fn();
    samples.push(performance.now() - t);
  }
  return median(samples);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'dbr-bench-lookup-'));
  try {
    const ids: string[] = [];
    for (let j = 0; j < JOBS; j++) {
      const job = `job-${String(j).padStart(4, '0')}`;
      mkdirSync(path.join(dir, 'runs', job), { recursive: true });
      for (let r = 0; r < RUNS; r++) {
        const id = `20261125T${String(r).padStart(9, '0')}Z-${(j * RUNS + r).toString(16).padStart(6, '0')}`;
        writeFileSync(path.join(dir, 'runs', job, `${id}.json`), JSON.stringify({ id, job, status: 'succeeded' }));
        ids.push(id);
      }
    }
    const store = new FileRunStore(dir);
    const last = ids.at(-1) ?? '';
    const firstScan = await time(() => store.get(last), 1);
    const indexed = await time(() => store.get(last), ROUNDS);
    const unknown = await time(() => store.get('20261125T999999999Z-ffffff'), Math.max(5, Math.floor(ROUNDS / 20)));
    process.stdout.write(
      [
        `# FileRunStore.get with ${JOBS} jobs × ${RUNS} runs`,
        '',
        `${new Date().toISOString()} · ${cpus().length} × ${cpus()[0]?.model ?? '?'} · ${Math.round(totalmem() / 2 ** 30)} GiB · Node ${process.version} · load ${loadavg()[0]?.toFixed(2)}`,
        '',
        '| lookup | median |',
        '|---|---|',
        `| first lookup (scans every job directory, then indexes) | ${firstScan.toFixed(2)} ms |`,
        `| indexed id | ${indexed.toFixed(3)} ms |`,
        `| unknown id (a scan of every job directory each time) | ${unknown.toFixed(2)} ms |`,
        '',
        `indexed / unknown = ${(indexed / unknown).toFixed(4)} (${(unknown / indexed).toFixed(0)}× faster)`,
        '',
      ].join('\n'),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
