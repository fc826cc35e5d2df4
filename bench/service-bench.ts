import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * `db-refresher serve` with BENCH_JOBS (default 1000) configured jobs:
 *  1. startup: spawn to /readyz 200, and to the first /healthz answer;
 *  2. idle RSS, sampled every second for BENCH_IDLE_S (default 60) seconds with nothing due:
 *     at 10 s, settled (the last sample), when it settled, and the peak (VmHWM); the peer is the
 *     same service with one job, measured the same way in the same run. V8 keeps the
 *     heap that start-up grew until its memory reducer runs, typically 20-40 s after start, so an
 *     early sample measures start-up, not idling;
 *  3. GET /api/v1/jobs throughput with wrk (BENCH_WRK_S seconds, 2 threads, 32 connections),
 *     default page (100 jobs) and the whole list (limit=1000), then idle RSS again for
 *     BENCH_IDLE_AFTER_LOAD_S (default 150) seconds: does the service give the memory back?
 *  4. cron fire lateness (tick time minus fire time, from the service's debug "tick" lines):
 *     a) spread: every job fires once a minute at second (i mod 60), ~17 ticks/s;
 *     b) burst: every job fires at the same second, every 15 s.
 *     Jobs are suspended here, so a tick writes a skipped record instead of starting a
 *     refresh against a source that does not exist; the tick is timed before that write.
 * Needs `wrk` on PATH (apt-get install wrk). Prints a Markdown report.
 */

const here = path.dirname(fileURLToPath(import.meta.url));
// Run from source with tsx; the service itself is the built CLI, as users run it.
const bin = path.resolve(here, '../dist/src/cli/bin.js');
const JOBS = Number(process.env.BENCH_JOBS ?? 1000);
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 60);
const IDLE_AFTER_LOAD_S = Number(process.env.BENCH_IDLE_AFTER_LOAD_S ?? 150);
const WRK_S = Number(process.env.BENCH_WRK_S ?? 10);
const LATENESS_S = Number(process.env.BENCH_LATENESS_S ?? 75);
const TOKEN = 'bench-token-0123456789abcdef0123';

function configYaml(schedule: (i: number) => string | undefined, suspend: boolean, logLevel: 'info' | 'debug', count = JOBS): string {
  const jobs = Array.from({ length: count }, (_, i) => {
    const s = schedule(i);
    return `  - name: job-${String(i).padStart(4, '0')}
${s ? `    schedule: "${s}"\n` : ''}${suspend ? '    suspend: true\n' : ''}    timezone: ${i % 3 === 0 ? 'Europe/Berlin' : i % 3 === 1 ? 'America/New_York' : 'UTC'}
    source: { host: db-${i % 20}.example.invalid, user: replicator }
    target: { kind: local, dataDir: copies/job-${i}, port: ${20000 + i} }`;
  });
  return `stateDir: state
logLevel: ${logLevel}
server:
  host: 127.0.0.1
  port: 0
  tokens: [{ name: bench, token: { env: BENCH_TOKEN } }]
jobs:
${jobs.join('\n')}
`;
}

interface Served {
  child: ChildProcess;
  base: string;
  lines: () => string[];
  startedAt: number;
  healthyAt: number;
  readyAt: number;
}

/** Starts `serve`, logging to a file (a pipe would make the child's synchronous log writes wait for the reader). */
async function serve(dir: string, yaml: string): Promise<Served> {
  const file = path.join(dir, 'db-refresher.yaml');
  const logFile = path.join(dir, 'serve.log');
  writeFileSync(file, yaml);
  const log = openSync(logFile, 'w');
  const startedAt = performance.now();
  const flags = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...flags, bin, 'serve', '--config', file], {
    env: { ...process.env, BENCH_TOKEN: TOKEN },
    stdio: ['ignore', 'ignore', log],
  });
  closeSync(log);
  const lines = () => readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
  const base = await until(() => {
    for (const line of lines()) {
      if (line.includes('"HTTP API listening"')) return (JSON.parse(line) as { address: string }).address;
    }
    return undefined;
  }, 60_000);
  const healthyAt = await until(
    async () => ((await fetch(`${base}/healthz`).catch(() => undefined))?.ok ? performance.now() : undefined),
    60_000,
  );
  const readyAt = await until(
    async () => ((await fetch(`${base}/readyz`).catch(() => undefined))?.ok ? performance.now() : undefined),
    60_000,
  );
  return { child, base, lines, startedAt, healthyAt, readyAt };
}

async function until<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function stop(s: Served): Promise<number | null> {
  const exit = new Promise<number | null>((resolve) => s.child.on('exit', resolve));
  s.child.kill('SIGTERM');
  return exit;
}

function statusMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
}

interface IdleRss {
  at10s: number;
  settled: number;
  /** Seconds into the window when RSS first came within 2 % of where it settled. */
  settledAfterS: number;
}

/** Samples RSS once a second for `seconds`, with no requests and nothing due. */
async function idleRss(pid: number, seconds: number): Promise<IdleRss> {
  const samples: number[] = [];
  for (let s = 1; s <= seconds; s++) {
    await new Promise((r) => setTimeout(r, 1000));
    samples.push(statusMb(pid, 'VmRSS'));
  }
  const settled = samples.at(-1) ?? Number.NaN;
  const settledAt = samples.findIndex((_, i) => samples.slice(i).every((v) => Math.abs(v - settled) <= settled * 0.02));
  return { at10s: samples[Math.min(9, samples.length - 1)] ?? Number.NaN, settled, settledAfterS: settledAt + 1 };
}

function describeIdle(r: IdleRss, seconds: number): string {
  return `${r.settled.toFixed(1)} MB settled (within 2 % from ${r.settledAfterS} s of ${seconds} s), ${r.at10s.toFixed(1)} MB at 10 s`;
}

function wrk(url: string, seconds: number): Promise<{ rps: number; p50: string; p99: string; errors: string; raw: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', ['-t2', '-c32', `-d${seconds}s`, '--latency', '-H', `Authorization: Bearer ${TOKEN}`, url], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', reject);
    child.on('close', () => {
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
      const p50 = /^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? '?';
      const p99 = /^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? '?';
      const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? '0';
      resolve({ rps, p50, p99, errors, raw: out });
    });
  });
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

interface Lateness {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

function summarize(values: number[]): Lateness {
  values.sort((a, b) => a - b);
  return { n: values.length, p50: percentile(values, 50), p99: percentile(values, 99), max: values.at(-1) ?? Number.NaN };
}

/** Dispatch: the scheduler's "tick" line (lateMs). Handled: the "scheduled run skipped" line, written when the tick's record is made. */
function lateness(lines: readonly string[]): { dispatch: Lateness; handled: Lateness } {
  const dispatch: number[] = [];
  const handled: number[] = [];
  for (const line of lines) {
    if (line.includes('"msg":"tick"')) dispatch.push((JSON.parse(line) as { lateMs: number }).lateMs);
    else if (line.includes('"msg":"scheduled run skipped"')) {
      const parsed = JSON.parse(line) as { time: number; scheduledFor: string };
      handled.push(parsed.time - Date.parse(parsed.scheduledFor));
    }
  }
  return { dispatch: summarize(dispatch), handled: summarize(handled) };
}

async function main(): Promise<void> {
  const report: string[] = [];
  const say = (line = '') => {
    report.push(line);
    process.stderr.write(`${line}\n`);
  };
  say(`# db-refresher serve with ${JOBS} jobs`);
  say();
  say(
    `${new Date().toISOString()} · ${cpus().length} × ${cpus()[0]?.model ?? '?'} · ${Math.round(totalmem() / 2 ** 30)} GiB · Node ${process.version} · node flags: ${process.env.BENCH_NODE_FLAGS || '(none)'} · load average at start ${loadavg()[0]?.toFixed(2)}`,
  );
  say();

  // The peer: the same service with one job, idle for as long; what is left is per-job state.
  const floorDir = mkdtempSync(path.join(tmpdir(), 'dbr-bench-svc-'));
  let floor: IdleRss;
  try {
    const s = await serve(
      floorDir,
      configYaml((i) => `${i % 60} ${i % 24} * * *`, false, 'info', 1),
    );
    floor = await idleRss(s.child.pid ?? 0, IDLE_S);
    await stop(s);
  } finally {
    rmSync(floorDir, { recursive: true, force: true });
  }

  // 1-3: daily schedules, nothing due during the measurement.
  const dir = mkdtempSync(path.join(tmpdir(), 'dbr-bench-svc-'));
  try {
    const s = await serve(
      dir,
      configYaml((i) => `${i % 60} ${i % 24} * * *`, false, 'info'),
    );
    say('## Startup and idle');
    say();
    say(`- spawn to first /healthz answer: ${(s.healthyAt - s.startedAt).toFixed(0)} ms`);
    say(`- spawn to /readyz 200 (history read, scheduler started): ${(s.readyAt - s.startedAt).toFixed(0)} ms`);
    const pid = s.child.pid ?? 0;
    const idle = await idleRss(pid, IDLE_S);
    say(`- idle RSS after start-up: ${describeIdle(idle, IDLE_S)}`);
    say(
      `- the same service with 1 job (same run, before): ${describeIdle(floor, IDLE_S)}; ${JOBS} jobs settle ${(idle.settled / floor.settled).toFixed(2)} × that, ${(((idle.settled - floor.settled) * 1024) / Math.max(1, JOBS - 1)).toFixed(1)} kB per job`,
    );
    say(`- peak RSS so far (VmHWM): ${statusMb(pid, 'VmHWM').toFixed(1)} MB`);
    say();
    say(`## GET /api/v1/jobs (wrk -t2 -c32 -d${WRK_S}s, same machine)`);
    say();
    say('| request | req/s | p50 | p99 | non-2xx |');
    say('|---|---|---|---|---|');
    for (const url of ['/api/v1/jobs', '/api/v1/jobs?limit=1000', '/api/v1/jobs/job-0500', '/healthz']) {
      const r = await wrk(`${s.base}${url}`, WRK_S);
      say(`| \`GET ${url}\` | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.errors} |`);
    }
    say(`- RSS right after the load: ${statusMb(pid, 'VmRSS').toFixed(1)} MB, peak (VmHWM) ${statusMb(pid, 'VmHWM').toFixed(1)} MB`);
    say(`- idle RSS after the load: ${describeIdle(await idleRss(pid, IDLE_AFTER_LOAD_S), IDLE_AFTER_LOAD_S)}`);
    say(`- exit code on SIGTERM: ${await stop(s)}`);
    say();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  say(`## Cron fire lateness (${LATENESS_S} s each; tick time minus fire time)`);
  say();
  say('| pattern | ticks | dispatched p50 / p99 / max | record written p50 / p99 / max |');
  say('|---|---|---|---|');
  for (const [name, schedule] of [
    ['spread: each job once a minute, ~17 per second', (i: number) => `${i % 60} * * * * *`],
    ['burst: all jobs at the same second, every 15 s', () => '*/15 * * * * *'],
  ] as const) {
    const dir = mkdtempSync(path.join(tmpdir(), 'dbr-bench-svc-'));
    try {
      const s = await serve(dir, configYaml(schedule, true, 'debug'));
      await new Promise((r) => setTimeout(r, LATENESS_S * 1000));
      await stop(s);
      const l = lateness(s.lines());
      const d = l.dispatch;
      const h = l.handled;
      say(`| ${name} | ${d.n} | ${d.p50} / ${d.p99} / ${d.max} ms | ${h.p50} / ${h.p99} / ${h.max} ms |`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  say();
  say(`Load average at the end: ${loadavg()[0]?.toFixed(2)} (other processes on the machine compete for its ${cpus().length} cores).`);
  process.stdout.write(`${report.join('\n')}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
