import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { pino } from 'pino';
import { freePort, Sandbox } from '../scripts/pg-sandbox.js';
import { loadSampleData, REPLICATION_USER } from '../scripts/sample-data.js';
import { buildRunner } from '../src/composition-root.js';
import { parseConfig } from '../src/config/load.js';

/**
 * What neutralisation costs a refresh (issue #15): the same local refresh of
 * one source, with the defaults (neutralise on, no roles or steps: the copy
 * starts privately, is neutralised, then restarted on its port) and with
 * `neutralise: false` (the copy starts open at once), alternating, BENCH_ROUNDS
 * times each (default 5). The source has what neutralise works on: a pg_cron
 * job (when pg_cron is installed) and ALTER SYSTEM settings that point at
 * production. Prints per-round times, medians, the difference and the ratio.
 */

const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const rows = Number(process.env.BENCH_ROWS ?? 20_000);

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

async function main(): Promise<void> {
  const sandbox = Sandbox.create('db-refresher-bench-neutralise-');
  try {
    const cron = existsSync('/usr/share/postgresql/15/extension/pg_cron.control') || process.env.BENCH_PG_CRON === '1';
    const source = await sandbox.createCluster({
      name: 'source',
      settings: cron ? { shared_preload_libraries: "'pg_cron'", 'cron.use_background_workers': 'on', max_worker_processes: '16' } : {},
    });
    const replicationPassword = randomBytes(9).toString('hex');
    await loadSampleData(source, { replicationPassword, ownerPassword: randomBytes(9).toString('hex'), rows });
    if (cron) {
      await source.sql('CREATE EXTENSION pg_cron');
      await source.sql(`SELECT cron.schedule('tick', '* * * * *', 'SELECT 1')`);
    }
    await source.sql(`ALTER SYSTEM SET synchronous_standby_names = 'prod_standby'`);
    await source.sql(`ALTER SYSTEM SET archive_command = '/bin/false %p'`);
    await source.sql('SELECT pg_reload_conf()');

    const job = (name: string, port: number, extra: string) => `
  - name: ${name}
    source: { host: 127.0.0.1, port: ${source.port}, user: ${REPLICATION_USER}, sslmode: disable, password: { env: BENCH_PASSWORD } }
    target: { kind: local, dataDir: copy-${name}, port: ${port} }
    verify: { databases: [{ name: app }] }
${extra}`;
    const config = parseConfig(
      `stateDir: state\njobs:${job('on', await freePort(), '')}${job('off', await freePort(), '    neutralise: false\n')}`,
      { source: 'bench.yaml', baseDir: sandbox.root, env: { ...process.env, BENCH_PASSWORD: replicationPassword } },
    );
    const { runner } = buildRunner(config, pino({ level: 'silent' }));
    const times: Record<'on' | 'off', number[]> = { on: [], off: [] };
    const phases: Record<'on' | 'off', Array<Record<string, number>>> = { on: [], off: [] };
    for (let round = 1; round <= rounds; round += 1) {
      // Alternate which goes first, so neither always gets the warmer page cache.
      const order = round % 2 ? (['on', 'off'] as const) : (['off', 'on'] as const);
      for (const which of order) {
        const j = config.jobs.find((x) => x.name === which);
        if (!j) throw new Error(`no job ${which}`);
        const started = process.hrtime.bigint();
        const run = await runner.run(j, { kind: 'cli', by: 'bench' });
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        if (run.status !== 'succeeded') throw new Error(`${which} run failed: ${JSON.stringify(run.error)}`);
        times[which].push(ms);
        phases[which].push(Object.fromEntries(run.phases.map((p) => [p.name, p.durationMs ?? 0])));
      }
      process.stderr.write(`round ${round}: on ${times.on.at(-1)?.toFixed(0)} ms, off ${times.off.at(-1)?.toFixed(0)} ms\n`);
    }
    const medianPhases = (which: 'on' | 'off') =>
      Object.fromEntries(
        Object.keys(phases[which][0] ?? {}).map((name) => [name, Math.round(median(phases[which].map((p) => p[name] ?? 0)))]),
      );
    const [size] = await source.sql<{ size: string }>("SELECT pg_size_pretty(pg_database_size('app')) AS size", 'app');
    process.stdout.write(
      `${JSON.stringify(
        {
          date: new Date().toISOString(),
          machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, PostgreSQL ${source.binDir.major}`,
          source: { app: size?.size, pgCron: cron },
          rounds,
          onMs: times.on.map(Math.round),
          offMs: times.off.map(Math.round),
          medianOnMs: Math.round(median(times.on)),
          medianOffMs: Math.round(median(times.off)),
          addedMs: Math.round(median(times.on) - median(times.off)),
          ratio: Number((median(times.on) / median(times.off)).toFixed(3)),
          medianPhaseMs: { on: medianPhases('on'), off: medianPhases('off') },
        },
        null,
        2,
      )}\n`,
    );
  } finally {
    await sandbox.destroy();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`benchmark failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
