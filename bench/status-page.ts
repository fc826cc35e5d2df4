import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

/**
 * The status page with BENCH_JOBS (default 1000) jobs, against the built
 * `db-refresher serve`:
 *  1. first load, as a browser makes it (gzip accepted): `/`, then its script
 *     and stylesheet; signed in, also whoami and the job list the script reads.
 *     Time at the server is the service's own request log (`ms`, fastify's
 *     reply.elapsedTime); bytes are counted on the wire (headers and body).
 *     Peer in the same run: GET /api/v1/jobs?limit=1000 (the same jobs as JSON).
 *     BENCH_LOADS (default 20) loads; the first one (cold) is reported apart.
 *  2. SSE: BENCH_SSE (default 100) clients on /api/v1/events, then the service
 *     idles for BENCH_IDLE_S (default 60) seconds while RSS is sampled every
 *     second. Peer in the same run: the same service idle with no client, just
 *     before (after IDLE_S more seconds for the loads' garbage to go). V8 gives back start-up heap 20-40 s after start, so the settled
 *     (last) sample is the figure; the peak (VmHWM) is given too.
 * Prints a Markdown report. Goals (issue 19): first load < 300 ms at the
 * server and < 1 MB transferred; idle RSS with the clients < 120 MB.
 */

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = path.resolve(here, '../dist/src/cli/bin.js');
const JOBS = Number(process.env.BENCH_JOBS ?? 1000);
const LOADS = Number(process.env.BENCH_LOADS ?? 20);
const SSE = Number(process.env.BENCH_SSE ?? 100);
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 60);
const TOKEN = 'bench-token-0123456789abcdef0123';

function configYaml(): string {
  const jobs = Array.from(
    { length: JOBS },
    (_, i) => `  - name: job-${String(i).padStart(4, '0')}
    description: QA copy number ${i} of production
    schedule: "${i % 60} 3 * * 1-5"
    timezone: ${i % 3 === 0 ? 'Europe/Berlin' : i % 3 === 1 ? 'America/New_York' : 'UTC'}
    source: { host: db-${i % 20}.example.invalid, user: replicator }
    target: { kind: local, dataDir: copies/job-${i}, port: ${20000 + i} }`,
  );
  return `stateDir: state
server:
  host: 127.0.0.1
  port: 0
  tokens: [{ name: bench, token: { env: BENCH_TOKEN } }]
jobs:
${jobs.join('\n')}
`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(100);
  }
}

function statusMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
}

interface Got {
  status: number;
  /** Bytes on the wire: status line, headers, body as sent (gzip when the server compressed). */
  wire: number;
  body: Buffer;
  ms: number;
  gzip: boolean;
}

/** One GET over a fresh connection, as a first load opens them; counts what crossed the wire. */
function get(base: string, url: string, headers: Record<string, string> = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = httpRequest(new URL(url, base), { headers: { 'accept-encoding': 'gzip, deflate, br', ...headers }, agent: false });
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const headers: string[] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) headers.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
        const head = `HTTP/1.1 ${res.statusCode} ${res.statusMessage}\r\n${headers.join('\r\n')}\r\n\r\n`;
        resolve({
          status: res.statusCode ?? 0,
          wire: Buffer.byteLength(head) + body.length,
          body,
          ms: performance.now() - started,
          gzip: res.headers['content-encoding'] === 'gzip',
        });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

interface Served {
  child: ChildProcess;
  base: string;
  lines: () => string[];
}

async function serve(dir: string): Promise<Served> {
  const file = path.join(dir, 'db-refresher.yaml');
  const logFile = path.join(dir, 'serve.log');
  writeFileSync(file, configYaml());
  const log = openSync(logFile, 'w');
  const child = spawn(process.execPath, [bin, 'serve', '--config', file], {
    env: { ...process.env, BENCH_TOKEN: TOKEN },
    stdio: ['ignore', 'ignore', log],
  });
  closeSync(log);
  const lines = () => readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
  const base = await until(() => {
    for (const line of lines()) if (line.includes('"HTTP API listening"')) return (JSON.parse(line) as { address: string }).address;
    if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}:\n${lines().join('\n')}`);
    return undefined;
  });
  await until(async () => ((await get(base, '/readyz')).status === 200 ? true : undefined));
  return { child, base, lines };
}

/** The service's own time for the n-th request to `path` (its one-line request log). */
function serverMs(s: Served, pathname: string): number[] {
  return s
    .lines()
    .map((l) => JSON.parse(l) as { msg?: string; path?: string; ms?: number })
    .filter((l) => l.msg === 'request' && l.path === pathname && typeof l.ms === 'number')
    .map((l) => l.ms as number);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? ((s[Math.floor((s.length - 1) / 2)] ?? 0) + (s[Math.ceil((s.length - 1) / 2)] ?? 0)) / 2 : Number.NaN;
};
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} kB`;

async function firstLoad(s: Served, signedIn: boolean): Promise<{ wire: number; requests: number }> {
  const page = await get(s.base, '/');
  if (page.status !== 200) throw new Error(`GET / answered ${page.status}`);
  const html = (page.gzip ? gunzipSync(page.body) : page.body).toString('utf8');
  const assets = [...new Set([...html.matchAll(/(?:src|href)="(\/ui\/[^"]+)"/g)].map((m) => m[1] as string))];
  const rest = await Promise.all(assets.map((a) => get(s.base, a)));
  // Modules the script imports (./render.js) are fetched by the browser next.
  const imports = new Set<string>();
  for (const r of rest) {
    const text = (r.gzip ? gunzipSync(r.body) : r.body).toString('utf8');
    for (const m of text.matchAll(/\bfrom '\.\/([\w.-]+\.js)'/g)) imports.add(`/ui/${m[1]}`);
  }
  rest.push(...(await Promise.all([...imports].map((a) => get(s.base, a)))));
  let wire = page.wire + rest.reduce((n, r) => n + r.wire, 0);
  let requests = 1 + rest.length;
  if (signedIn) {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const api = await Promise.all([get(s.base, '/api/v1/whoami', auth), get(s.base, '/api/v1/jobs?limit=1000', auth)]);
    wire += api.reduce((n, r) => n + r.wire, 0);
    requests += api.length;
  }
  return { wire, requests };
}

/** An SSE client that reads and discards, as an idle browser tab does. */
function sseClient(base: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(new URL('/api/v1/events', base), {
      headers: { authorization: `Bearer ${TOKEN}`, accept: 'text/event-stream' },
      agent: false,
    });
    req.on('response', (res) => {
      if (res.statusCode !== 200) reject(new Error(`/api/v1/events answered ${res.statusCode}`));
      res.on('data', () => undefined);
      resolve(res);
    });
    req.on('error', reject);
    req.end();
  });
}

async function idle(pid: number, seconds: number): Promise<{ settled: number; at10: number; peak: number }> {
  const samples: number[] = [];
  for (let i = 0; i < seconds; i++) {
    await sleep(1000);
    samples.push(statusMb(pid, 'VmRSS'));
  }
  return { settled: samples.at(-1) ?? 0, at10: samples[Math.min(9, samples.length - 1)] ?? 0, peak: statusMb(pid, 'VmHWM') };
}

async function main(): Promise<void> {
  const say = (line = '') => process.stdout.write(`${line}\n`);
  say(`### Status page bench, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`);
  say();
  say(
    `Machine: ${cpus().length} × ${cpus()[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} at start. ${JOBS} jobs, ${LOADS} loads, ${SSE} SSE clients, ${IDLE_S} s idle.`,
  );
  say();
  const dir = mkdtempSync(path.join(tmpdir(), 'dbr-bench-ui-'));
  const s = await serve(dir);
  const pid = s.child.pid ?? 0;
  try {
    // 1. First loads, alternating with the peer (the job list as JSON).
    const loads: Array<{ wire: number; requests: number }> = [];
    const signed: Array<{ wire: number; requests: number }> = [];
    const peerWire: number[] = [];
    for (let i = 0; i < LOADS; i++) {
      loads.push(await firstLoad(s, false));
      signed.push(await firstLoad(s, true));
      peerWire.push((await get(s.base, '/api/v1/jobs?limit=1000', { authorization: `Bearer ${TOKEN}` })).wire);
    }
    await sleep(200); // the last request lines reach the log file
    const pageMs = serverMs(s, '/');
    const apiMs = serverMs(s, '/api/v1/jobs?limit=1000');
    const html = await get(s.base, '/');
    const htmlRaw = await get(s.base, '/', { 'accept-encoding': 'identity' });
    say('**First load of `/`** (time at the server, from its request log):');
    say();
    say('| | cold (first) | median of the rest | max of the rest |');
    say('|---|---|---|---|');
    say(
      `| \`GET /\` (${JOBS} rows rendered) | ${pageMs[0]?.toFixed(1)} ms | ${median(pageMs.slice(1)).toFixed(1)} ms | ${Math.max(...pageMs.slice(1)).toFixed(1)} ms |`,
    );
    say(
      `| peer: \`GET /api/v1/jobs?limit=1000\` | ${apiMs[0]?.toFixed(1)} ms | ${median(apiMs.slice(1)).toFixed(1)} ms | ${Math.max(...apiMs.slice(1)).toFixed(1)} ms |`,
    );
    say();
    say(`Ratio page / JSON list (medians): ${(median(pageMs.slice(1)) / median(apiMs.slice(1))).toFixed(2)}`);
    say();
    say('**Bytes transferred** (headers and body on the wire, gzip accepted):');
    say();
    say(`- \`/\` alone: ${kb(html.wire)} (${kb(htmlRaw.body.length)} of HTML uncompressed)`);
    say(`- first load without a token (page, script, stylesheet): ${kb(loads[0]?.wire ?? 0)} in ${loads[0]?.requests} requests`);
    say(
      `- first load signed in (plus whoami and the job list the script reads): ${kb(signed[0]?.wire ?? 0)} in ${signed[0]?.requests} requests`,
    );
    say(`- peer: the job list as JSON (\`/api/v1/jobs?limit=1000\`): ${kb(median(peerWire))}`);
    say();

    // 2. SSE clients and idle RSS, the peer (no client) first, once the loads' garbage has had IDLE_S to go.
    await idle(pid, IDLE_S);
    const before = await idle(pid, IDLE_S);
    const clients = await Promise.all(Array.from({ length: SSE }, () => sseClient(s.base)));
    const withClients = await idle(pid, IDLE_S);
    say(`**Idle RSS** (sampled every second for ${IDLE_S} s):`);
    say();
    say('| | at 10 s | settled (last sample) | peak so far (VmHWM) |');
    say('|---|---|---|---|');
    say(`| no client (peer) | ${before.at10.toFixed(1)} MB | ${before.settled.toFixed(1)} MB | ${before.peak.toFixed(1)} MB |`);
    say(
      `| ${SSE} SSE clients | ${withClients.at10.toFixed(1)} MB | ${withClients.settled.toFixed(1)} MB | ${withClients.peak.toFixed(1)} MB |`,
    );
    say();
    say(
      `Cost of the clients: ${(withClients.settled - before.settled).toFixed(1)} MB (${(((withClients.settled - before.settled) * 1024) / SSE).toFixed(0)} kB a client); all ${clients.filter((c) => !c.destroyed).length} still connected at the end.`,
    );
    for (const c of clients) c.destroy();
  } finally {
    s.child.kill('SIGTERM');
    await new Promise((r) => s.child.once('close', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
