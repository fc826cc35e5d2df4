import { readdirSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { buildRunner } from '../src/composition-root.js';
import type { RunRecord } from '../src/run/record.js';
import { startSimulatedOperator } from '../test/cnpg-sim/index.js';
import { startTestApiServer } from '../test/envtest/server.js';
import { CnpgHarness } from '../test/support/cnpg-harness.js';

/**
 * CNPG target benchmarks, on the test API server with the simulated operator:
 *  1. latency from the operator marking the Cluster healthy to the start of
 *     verification, against a sleep-and-poll loop (1 s, like a script's
 *     `until kubectl get …; do sleep 1; done`) watching the same Cluster;
 *  2. the whole refresh's overhead on top of the simulated clone;
 *  3. time from creating the Cluster to the start of the copy on a source with
 *     dirty buffers, with and without db-refresher's pre-clone CHECKPOINT.
 * BENCH_ROUNDS (default 5) refreshes for 1 and 2; BENCH_CHECKPOINT_ROUNDS (default 2) per variant for 3.
 */

const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const checkpointRounds = Number(process.env.BENCH_CHECKPOINT_ROUNDS ?? 2);
const POLL_MS = 1000;

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

async function main(): Promise<void> {
  const server = await startTestApiServer();
  const h = await CnpgHarness.start(server.kubeconfigPath, 'bench', { settings: { checkpoint_timeout: "'30s'" } });
  const healthyAt = new Map<string, number>();
  const sim = await startSimulatedOperator({
    kubeConfig: h.kc,
    logDir: server.logDir,
    namespaces: [h.namespace],
    probeRetryMs: 1000,
    deletionDelayMs: 300,
    onLog: (entry) => {
      if (entry.msg === 'Cluster phase' && entry.phase === 'Cluster in healthy state')
        healthyAt.set(String(entry.cluster ?? entry.name ?? ''), Date.parse(entry.ts));
    },
  });
  try {
    const port = await sim.clusterPort(h.namespace, 'bench-db');
    const jobFor = (sqlUser: 'postgres' | 'replicator') =>
      h.local.config(
        h.jobYaml({
          name: 'bench',
          clusterName: 'bench-db',
          connectPort: port,
          job: `    source:\n      host: 127.0.0.1\n      port: ${h.local.source.port}\n      user: replicator\n      sslmode: disable\n      password: { env: SOURCE_PASSWORD }\n${sqlUser === 'postgres' ? '      sql: { user: postgres, password: { env: SUPERUSER_PASSWORD } }\n' : ''}`,
        }),
        { ...h.local.env, SUPERUSER_PASSWORD: h.local.source.superuserPassword },
      );

    const toolLatency: number[] = [];
    const pollLatency: number[] = [];
    const overhead: number[] = [];
    const durations: number[] = [];
    for (let round = 0; round < rounds; round += 1) {
      const config = jobFor('postgres');
      let pollSeen: Promise<number> | undefined;
      const { runner } = buildRunner(config, pino({ level: 'silent' }), {
        onEvent: (event) => {
          if (event.type === 'phase-started' && event.phase === 'start') pollSeen = pollUntilHealthy(h);
        },
      });
      healthyAt.clear();
      const run = await runner.run(config.jobs[0] as (typeof config.jobs)[number], { kind: 'cli' });
      if (run.status !== 'succeeded') throw new Error(`refresh failed: ${JSON.stringify(run.error)}`);
      const healthy = [...healthyAt.values()].at(-1);
      const verifyStart = Date.parse(run.phases.find((p) => p.name === 'verify')?.startedAt ?? '');
      if (healthy === undefined || !pollSeen) throw new Error('no healthy time observed');
      toolLatency.push(verifyStart - healthy);
      pollLatency.push((await pollSeen) - healthy);
      const created = Date.parse(run.phases.find((p) => p.name === 'clone')?.finishedAt ?? '');
      overhead.push((run.durationMs ?? 0) - (healthy - created));
      durations.push(run.durationMs ?? 0);
      process.stderr.write(
        `round ${round + 1}: healthy→verify ${toolLatency.at(-1)} ms, poll ${pollLatency.at(-1)} ms, run ${run.durationMs} ms\n`,
      );
    }

    const copyDelay: Record<'withCheckpoint' | 'withoutCheckpoint', number[]> = { withCheckpoint: [], withoutCheckpoint: [] };
    for (let round = 0; round < checkpointRounds; round += 1) {
      for (const variant of ['withCheckpoint', 'withoutCheckpoint'] as const) {
        // Dirty buffers: a spread checkpoint now takes about checkpoint_completion_target × checkpoint_timeout (27 s).
        await h.local.source.sql('UPDATE public.orders SET total = total + 0', 'app');
        const config = jobFor(variant === 'withCheckpoint' ? 'postgres' : 'replicator');
        const { runner } = buildRunner(config, pino({ level: 'silent' }));
        const run: RunRecord = await runner.run(config.jobs[0] as (typeof config.jobs)[number], { kind: 'cli' });
        if (run.status !== 'succeeded') throw new Error(`refresh failed: ${JSON.stringify(run.error)}`);
        const created = Date.parse(run.phases.find((p) => p.name === 'clone')?.finishedAt ?? '');
        const copyStarted = checkpointCompletedAt(server.logDir, h.namespace);
        copyDelay[variant].push(copyStarted - created);
        process.stderr.write(
          `${variant}: create→copy ${copyDelay[variant].at(-1)} ms (checkpoint ${JSON.stringify((run.phases.find((p) => p.name === 'clone')?.detail as { checkpoint?: string })?.checkpoint)})\n`,
        );
      }
    }

    const result = {
      date: new Date().toISOString(),
      machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
      rounds,
      healthyToVerifyMs: {
        dbRefresher: toolLatency,
        pollEvery1s: pollLatency,
        medianDbRefresher: median(toolLatency),
        medianPoll: median(pollLatency),
      },
      ratioPollToWatch: Number((median(pollLatency) / Math.max(median(toolLatency), 1)).toFixed(1)),
      refreshMs: { runs: durations, medianRun: median(durations), medianOverheadOverSimulatedClone: median(overhead) },
      createToCopyStartMs: {
        withCheckpoint: copyDelay.withCheckpoint,
        withoutCheckpoint: copyDelay.withoutCheckpoint,
        ratio: Number((median(copyDelay.withoutCheckpoint) / Math.max(median(copyDelay.withCheckpoint), 1)).toFixed(1)),
      },
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await sim.stop();
    await h.destroy();
    await server.stop();
  }
}

/** The peer: what a script does, asking every second whether the Cluster is healthy yet. */
async function pollUntilHealthy(h: CnpgHarness): Promise<number> {
  for (;;) {
    const cluster = (await h.custom
      .getNamespacedCustomObject({
        group: 'postgresql.cnpg.io',
        version: 'v1',
        namespace: h.namespace,
        plural: 'clusters',
        name: 'bench-db',
      })
      .catch(() => undefined)) as { status?: { phase?: string } } | undefined;
    if (cluster?.status?.phase === 'Cluster in healthy state') return Date.now();
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** When the newest clone Job pod's pg_basebackup reported its checkpoint done: the copy starts then. */
function checkpointCompletedAt(logDir: string, namespace: string): number {
  const dir = path.join(logDir, namespace);
  const logs = readdirSync(dir).filter((f) => f.startsWith('bench-db-1-pgbasebackup'));
  let latest = 0;
  for (const file of logs) {
    for (const line of readFileSync(path.join(dir, file), 'utf8').split('\n')) {
      if (!line.includes('checkpoint completed')) continue;
      latest = Math.max(latest, Date.parse((JSON.parse(line) as { ts: string }).ts));
    }
  }
  return latest;
}

main().catch((error: unknown) => {
  process.stderr.write(`benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
