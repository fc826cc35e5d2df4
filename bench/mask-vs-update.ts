import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import pg from 'pg';
import { pino } from 'pino';
import { Sandbox, type SandboxCluster } from '../scripts/pg-sandbox.js';
import { Secret } from '../src/config/secret.js';
import type { MaskConfig, PgEndpoint } from '../src/config/types.js';
import { checkCoverage } from '../src/mask/coverage.js';
import { keyParamList, keyParams } from '../src/mask/key.js';
import { maskCopy } from '../src/mask/masker.js';
import { highestParam } from '../src/mask/plan.js';
import { maskExpression } from '../src/mask/strategies.js';
import { PgConnector } from '../src/postgres/sql.js';

/**
 * Masking speed: BENCH_ROWS rows (default 1,000,000) × 3 columns (email, full
 * name, phone) masked by db-refresher's maskCopy with its deterministic keyed
 * fakes, against the peer: a hand-written `UPDATE people SET email =
 * md5(email), full_name = md5(full_name), phone = md5(phone)` on an identical
 * copy. maskCopy runs once per BENCH_MASK_PARALLEL setting (default "4,1": the
 * default mask.parallel, which splits the one large table into chunks, and
 * one connection, the like-for-like cost). The order rotates every round,
 * BENCH_ROUNDS times (default 3); every run works on a fresh copy (CREATE
 * DATABASE … TEMPLATE, then CHECKPOINT).
 *
 * Then the coverage check on BENCH_TABLES tables (default 10,000) of 6
 * columns each, analysed (goal: under 2 s), against the peer: one plain
 * catalog query over the same columns and their statistics rows (see
 * COVERAGE_PEER_QUERY), alternating which goes first, BENCH_ROUNDS times.
 *
 * BENCH_PART=pieces (not part of `all`) times each fake's expression alone:
 * `SELECT sum(length(expr))` over BENCH_PIECE_ROWS values (default 200,000),
 * against md5 of the same column, alternating, BENCH_ROUNDS times. It reports
 * the server backend's CPU time (utime + stime from /proc, 10 ms ticks), not
 * wall time, so other processes on a busy machine barely move the figures.
 *
 * BENCH_PART=mask or BENCH_PART=coverage runs one part only.
 */

const rows = Number(process.env.BENCH_ROWS ?? 1_000_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const tables = Number(process.env.BENCH_TABLES ?? 10_000);
const part = process.env.BENCH_PART ?? 'all';
const pieceRows = Number(process.env.BENCH_PIECE_ROWS ?? 200_000);
/** The mask.parallel settings to measure: the default (4, which splits the one large table) and one connection. */
const maskParallel = (process.env.BENCH_MASK_PARALLEL ?? '4,1').split(',').map(Number);

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

function endpoint(cluster: SandboxCluster, database: string): PgEndpoint {
  return {
    host: cluster.host,
    port: cluster.port,
    user: 'postgres',
    password: new Secret(cluster.superuserPassword, 'bench'),
    dbname: database,
    sslmode: 'disable',
  };
}

const log = pino({ level: 'warn' });

async function benchMask(cluster: SandboxCluster): Promise<void> {
  console.log(`generating ${rows.toLocaleString('en')} rows …`);
  await cluster.sql('CREATE DATABASE people_source');
  await cluster.sql(
    `CREATE TABLE people (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, full_name text NOT NULL, phone text);
     INSERT INTO people SELECT g, 'person' || g || '@mail.example.org', 'Person Number ' || g, '+49 30 ' || (10000000 + g)
     FROM generate_series(1, ${rows}) g;`,
    'people_source',
  );
  await cluster.sql('VACUUM ANALYZE people', 'people_source');
  const mask = (database: string, parallel: number): MaskConfig =>
    ({
      key: new Secret('bench-key', 'bench'),
      databases: { [database]: { 'public.people': { email: 'email', full_name: 'name', phone: 'phone' } } },
      allow: [],
      coverage: 'fail',
      parallel,
      sampleRows: 20,
    }) as MaskConfig;
  const sql = new PgConnector();
  const contenders = [...maskParallel.map((parallel) => `db-refresher parallel ${parallel}`), 'hand-written UPDATE … md5'];
  const times: Record<string, number[]> = Object.fromEntries(contenders.map((c) => [c, []]));
  const chunks: Record<string, number[]> = {};
  let copy = 0;
  const fresh = async () => {
    copy += 1;
    const name = `people_${copy}`;
    await cluster.sql(`CREATE DATABASE ${name} TEMPLATE people_source`);
    await cluster.sql('CHECKPOINT');
    return name;
  };
  const run = async (contender: string) => {
    const db = await fresh();
    const started = performance.now();
    if (contender.startsWith('db-refresher')) {
      const parallel = Number(contender.split(' ').at(-1));
      const record = await maskCopy({
        mask: mask(db, parallel),
        endpoint: (d) => endpoint(cluster, d),
        sql,
        log,
        signal: new AbortController().signal,
      });
      const table = record.databases[0]?.tables[0] as { rows: number; durationMs: number; chunks?: number } | undefined;
      chunks[contender] = [...(chunks[contender] ?? []), table?.chunks ?? 1];
      console.log(
        `  ${contender}: ${(performance.now() - started).toFixed(0)} ms (${record.rows} rows, table ${table?.durationMs} ms, ${table?.chunks ?? 1} chunk(s))`,
      );
    } else {
      await cluster.sql('UPDATE people SET email = md5(email), full_name = md5(full_name), phone = md5(phone)', db);
      console.log(`  ${contender}: ${(performance.now() - started).toFixed(0)} ms`);
    }
    times[contender]?.push(performance.now() - started);
    await cluster.sql(`DROP DATABASE ${db}`);
  };
  for (let round = 0; round < rounds; round += 1) {
    console.log(`round ${round + 1}`);
    // Rotate the order, so no contender always runs first (or right after a checkpoint).
    const order = contenders.map((_, i) => contenders[(i + round) % contenders.length] as string);
    for (const contender of order) await run(contender);
  }
  const peer = median(times['hand-written UPDATE … md5'] ?? []);
  console.log(
    JSON.stringify(
      {
        rows,
        columns: 3,
        rounds,
        peerMedianMs: Math.round(peer),
        peerRowsPerSecond: Math.round(rows / (peer / 1000)),
        contenders: Object.fromEntries(
          contenders.map((c) => {
            const m = median(times[c] ?? []);
            return [
              c,
              {
                medianMs: Math.round(m),
                ratio: Number((m / peer).toFixed(2)),
                rowsPerSecond: Math.round(rows / (m / 1000)),
                all: (times[c] ?? []).map(Math.round),
                chunks: chunks[c],
              },
            ];
          }),
        ),
      },
      null,
      2,
    ),
  );
}

async function benchCoverage(cluster: SandboxCluster): Promise<void> {
  console.log(`creating ${tables.toLocaleString('en')} tables …`);
  await cluster.sql('CREATE DATABASE many');
  // In batches: one transaction holding locks on 10,000 new tables runs out of lock slots.
  for (let from = 1; from <= tables; from += 1000) {
    await cluster.sql(
      `DO $$ BEGIN FOR i IN ${from}..${Math.min(tables, from + 999)} LOOP
       EXECUTE format('CREATE TABLE public.t%s (id int PRIMARY KEY, label text, amount numeric, created date, contact_mail text, note text)', i);
       EXECUTE format('INSERT INTO public.t%s SELECT g, %L || g, g, date %L + g, %L || g || %L, %L FROM generate_series(1, 5) g', i, 'label ', '2020-01-01', 'someone', '@example.org', 'free text');
     END LOOP; END $$;`,
      'many',
    );
  }
  await cluster.sql('ANALYZE', 'many');
  const sql = new PgConnector();
  const times: number[] = [];
  const peer: number[] = [];
  const runCheck = async () => {
    const started = performance.now();
    const coverage = await checkCoverage({
      mask: {
        key: new Secret('k', 'bench'),
        databases: {},
        allow: [],
        coverage: 'fail',
        parallel: 1,
        sampleRows: 20,
      } as unknown as MaskConfig,
      databases: ['many'],
      endpoint: (d) => endpoint(cluster, d),
      sql,
    });
    const ms = performance.now() - started;
    times.push(ms);
    console.log(
      `  coverage: ${ms.toFixed(0)} ms, ${coverage.tables} tables, ${coverage.columns} columns, ${coverage.queries} queries, ${coverage.findings.length} findings`,
    );
  };
  // The peer: what any check of every column has to read at least, as one plain query on a connection of
  // its own (connecting is part of both): each user column of each table with its statistics row.
  const runPeer = async () => {
    const started = performance.now();
    const [row] = await sql.withSession(endpoint(cluster, 'many'), 'many', (session) =>
      session.query<{ columns: string; sampled: string }>(COVERAGE_PEER_QUERY),
    );
    const ms = performance.now() - started;
    peer.push(ms);
    console.log(`  peer catalog query: ${ms.toFixed(0)} ms, ${row?.columns} columns, ${row?.sampled} with statistics`);
  };
  for (let round = 0; round < rounds; round += 1) {
    if (round % 2 === 0) {
      await runCheck();
      await runPeer();
    } else {
      await runPeer();
      await runCheck();
    }
  }
  const m = median(times);
  const p = median(peer);
  console.log(
    JSON.stringify({
      tables,
      columnsPerTable: 6,
      rounds,
      medianMs: Math.round(m),
      peerMedianMs: Math.round(p),
      ratio: Number((m / p).toFixed(2)),
      times: times.map(Math.round),
      peer: peer.map(Math.round),
    }),
  );
}

/**
 * The coverage part's peer: one plain catalog query over the same tables' columns, joined to their
 * statistics rows and reading the sampled values' text, with none of the classification.
 */
const COVERAGE_PEER_QUERY = `
SELECT count(*) AS columns, count(st.starelid) AS sampled, sum(length(st.stavalues1::text)) AS sample_chars
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_statistic st ON st.starelid = c.oid AND st.staattnum = a.attnum AND NOT st.stainherit
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'`;

async function benchPieces(cluster: SandboxCluster): Promise<void> {
  await cluster.sql(
    `CREATE TABLE people AS SELECT g AS id, 'person' || g || '@mail.example.org' AS email, 'Person Number ' || g AS full_name,
       '+49 30 ' || (10000000 + g) AS phone FROM generate_series(1, ${pieceRows}) g`,
  );
  await cluster.sql('VACUUM ANALYZE people');
  const client = new pg.Client({ host: cluster.host, port: cluster.port, user: 'postgres', password: cluster.superuserPassword });
  await client.connect();
  try {
    await client.query('SET jit = off');
    // One backend per expression: a parallel plan would move part of md5's work to workers the CPU figure misses.
    await client.query('SET max_parallel_workers_per_gather = 0');
    const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
    // The backend's CPU time in ms: fields 14 and 15 of /proc/<pid>/stat, in clock ticks of 10 ms.
    const cpuMs = () => {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      return (Number(fields[11]) + Number(fields[12])) * 10;
    };
    const text = { sqlType: 'text', typname: 'text', category: 'S', notNull: false };
    const pieces: Record<string, string> = {
      'md5 (peer)': 'md5(email)',
      'scan only': 'email',
      email: maskExpression('email', 'email', text),
      name: maskExpression('name', 'full_name', text),
      phone: maskExpression('phone', 'phone', text),
    };
    const params = keyParamList(keyParams('bench-key'));
    const cpu: Record<string, number[]> = {};
    for (let round = 0; round < rounds; round += 1) {
      for (const [name, expression] of Object.entries(pieces)) {
        const before = cpuMs();
        await client.query(`SELECT sum(length((${expression})::text)) FROM people`, params.slice(0, highestParam(expression)));
        const times = cpu[name] ?? [];
        times.push(cpuMs() - before);
        cpu[name] = times;
      }
    }
    const md5 = median(cpu['md5 (peer)'] ?? []);
    const result = Object.fromEntries(
      Object.entries(cpu).map(([name, times]) => [
        name,
        {
          medianCpuMs: median(times),
          perValueUs: Number(((median(times) / pieceRows) * 1000).toFixed(2)),
          md5s: Number((median(times) / md5).toFixed(1)),
        },
      ]),
    );
    console.log(JSON.stringify({ values: pieceRows, rounds, pieces: result }, null, 2));
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`);
  const sandbox = Sandbox.create('dbr-bench-mask-');
  try {
    const cluster = await sandbox.createCluster({
      name: 'pg',
      settings: { shared_buffers: "'256MB'", max_wal_size: "'4GB'", checkpoint_timeout: "'30min'", max_locks_per_transaction: '256' },
    });
    if (part === 'all' || part === 'mask') await benchMask(cluster);
    if (part === 'all' || part === 'coverage') await benchCoverage(cluster);
    if (part === 'pieces') await benchPieces(cluster);
  } finally {
    await sandbox.destroy();
  }
}

await main();
