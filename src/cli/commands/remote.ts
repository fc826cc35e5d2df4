import { type Command, Option } from 'commander';
import { formatDuration } from '../../duration.js';
import { type RunRecord, TERMINAL_RUN_STATUSES } from '../../run/record.js';
import { type Paint, paintFor, plain } from '../color.js';
import { examples, globals, outputOption, print } from '../context.js';
import { progressText } from '../progress.js';
import { RemoteClient as Client, type RemoteClient, type RemoteOptions } from '../remote/client.js';
import { type OutputFormat, renderRunText } from '../render.js';

/**
 * Verbs that talk to a running `db-refresher serve` over its API: status,
 * runs, describe, trigger (with --wait for CI), cancel, suspend, resume.
 */

interface JobItem {
  name: string;
  suspended: boolean;
  nextRunAt: string | null;
  timezone: string;
  current: { id: string; status: string; phase: string | null; progress: { percent?: number } | null } | null;
  lastRun: { id: string; status: string; finishedAt: string | null; durationMs: number | null } | null;
  dataTakenAt: string | null;
}

const client = (command: Command): RemoteClient => Client.from(globals(command) as RemoteOptions, process.env);
const format = (options: { output?: OutputFormat }): OutputFormat => options.output ?? (process.stdout.isTTY ? 'text' : 'json');

function age(iso: string | null): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 3600
    ? `${Math.floor(s / 60)}m`
    : s < 86_400
      ? `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`
      : `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600)}h`;
}

/** Padded first, coloured after, so escape codes never upset the column widths. */
export function statusTable(jobs: JobItem[], paint: Paint = plain): string {
  const rows = jobs.map((j) => [
    j.name,
    j.current
      ? `${j.current.status} ${j.current.phase ?? ''}${j.current.progress?.percent !== undefined ? ` ${j.current.progress.percent}%` : ''}`
      : (j.lastRun?.status ?? 'never ran'),
    age(j.dataTakenAt),
    j.lastRun ? `${j.lastRun.status} ${formatDuration(j.lastRun.durationMs ?? undefined)}` : '-',
    j.suspended ? 'suspended' : (j.nextRunAt ?? '-'),
  ]);
  const head = ['JOB', 'STATUS', 'DATA AGE', 'LAST RUN', 'NEXT RUN'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const pad = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)));
  const colour = (r: string[], j: JobItem) =>
    pad(r).map((c, i) =>
      i === 1
        ? paint.status(j.current?.status ?? j.lastRun?.status ?? '', c)
        : i === 3 && j.lastRun
          ? paint.status(j.lastRun.status, c)
          : i === 4 && j.suspended
            ? paint.yellow(c)
            : c,
    );
  const lines = [pad(head).map((c) => paint.bold(c)), ...rows.map((r, k) => colour(r, jobs[k] as JobItem))];
  return `${lines.map((r) => r.join('  ').trimEnd()).join('\n')}\n`;
}

/** Follows a run until it ends: a progress line on a terminal, long polls otherwise. */
async function follow(api: RemoteClient, id: string): Promise<RunRecord> {
  const tty = process.stderr.isTTY;
  const paint = paintFor(process.stderr, process.env);
  let lastLine = '';
  for (;;) {
    const run = await api.request<RunRecord & { live?: { phase?: string; progress?: Record<string, unknown> } }>(
      'GET',
      `/api/v1/runs/${id}?wait=${tty ? 1 : 10}`,
    );
    if (TERMINAL_RUN_STATUSES.has(run.status)) {
      if (tty && lastLine) process.stderr.write('\r\x1b[2K');
      return run;
    }
    const phase = run.live?.phase ?? run.phases.find((p) => p.status === 'running')?.name ?? run.status;
    const started = run.phases.find((p) => p.name === phase)?.startedAt;
    const elapsed = started ? formatDuration(Date.now() - Date.parse(started)) : '';
    const detail = run.live?.progress ? progressText(run.live.progress) : undefined;
    const line = `${phase.padEnd(9)} ${elapsed}${detail ? `  ${detail}` : ''}`;
    if (tty) process.stderr.write(`\r\x1b[2K${paint.cyan('…')} ${line}`);
    else if (line.split(' ')[0] !== lastLine.split(' ')[0]) process.stderr.write(`${line}\n`);
    lastLine = line;
  }
}

/** The verbs that talk to a server (shell completion asks the server for their job names). */
export const REMOTE_VERBS: readonly string[] = ['status', 'runs', 'describe', 'trigger', 'cancel', 'suspend', 'resume'];

const EXAMPLES = examples;

export function registerRemote(program: Command): void {
  program
    .addOption(new Option('--server <url>', 'a running db-refresher service (default: $DB_REFRESHER_SERVER)'))
    .addOption(new Option('--token-file <file>', 'file holding the API token (default: $DB_REFRESHER_TOKEN)'));

  program
    .command('status')
    .description('every job on the server: status, data age, last and next run')
    .addOption(outputOption())
    .addHelpText(
      'after',
      EXAMPLES([
        'db-refresher --server http://db-refresher:8080 status',
        'DB_REFRESHER_SERVER=… DB_REFRESHER_TOKEN=… db-refresher status -o json',
      ]),
    )
    .action(async (options: { output?: OutputFormat }, command: Command) => {
      const api = client(command);
      const jobs: JobItem[] = [];
      let cursor = '';
      do {
        const page = await api.request<{ jobs: JobItem[]; nextCursor: string | null }>(
          'GET',
          `/api/v1/jobs?limit=1000${cursor ? `&cursor=${cursor}` : ''}`,
        );
        jobs.push(...page.jobs);
        cursor = page.nextCursor ?? '';
      } while (cursor);
      print({ jobs }, format(options), (paint) => statusTable(jobs, paint));
    });

  program
    .command('runs')
    .description("a job's runs on the server, newest first")
    .argument('<job>', 'job name')
    .option('--limit <n>', 'how many', '20')
    .addOption(outputOption())
    .addHelpText('after', EXAMPLES(['db-refresher runs qa', 'db-refresher runs qa --limit 5 -o yaml']))
    .action(async (job: string, options: { limit: string; output?: OutputFormat }, command: Command) => {
      const page = await client(command).request<{
        runs: Array<{ id: string; status: string; trigger: { kind: string; by?: string }; durationMs?: number; error?: { class: string } }>;
      }>('GET', `/api/v1/jobs/${encodeURIComponent(job)}/runs?limit=${encodeURIComponent(options.limit)}`);
      print(page, format(options), (paint) =>
        page.runs
          .map(
            (r) =>
              `${r.id}  ${paint.status(r.status, r.status.padEnd(11))} ${r.trigger.kind}${r.trigger.by ? ` by ${r.trigger.by}` : ''}  ${formatDuration(r.durationMs)}${r.error ? `  ${r.error.class}` : ''}`,
          )
          .join('\n')
          .concat('\n'),
      );
    });

  program
    .command('describe')
    .description('one run on the server: phases, checks, verification, error')
    .argument('<run>', 'run id')
    .addOption(outputOption())
    .addHelpText('after', EXAMPLES(['db-refresher describe 20261125T101502113Z-3fa2c1']))
    .action(async (id: string, options: { output?: OutputFormat }, command: Command) => {
      const run = await client(command).request<RunRecord>('GET', `/api/v1/runs/${encodeURIComponent(id)}`);
      print(run, format(options), (paint) => renderRunText(run, paint));
    });

  program
    .command('trigger')
    .description('start a run of <job> on the server; with --wait, follow it and exit 0 when it succeeds, 1 when not')
    .argument('<job>', 'job name')
    .option('--reason <text>', 'why (kept in the run record)')
    .option('--wait', 'wait for the run to end, showing its progress; the exit code is its result')
    .addOption(outputOption())
    .addHelpText('after', EXAMPLES(['db-refresher trigger qa --reason "release test" --wait', 'db-refresher trigger qa -o json']))
    .action(async (job: string, options: { reason?: string; wait?: boolean; output?: OutputFormat }, command: Command) => {
      const api = client(command);
      const started = await api.request<{ run: { id: string; status: string } }>('POST', `/api/v1/jobs/${encodeURIComponent(job)}/runs`, {
        ...(options.reason ? { reason: options.reason } : {}),
      });
      if (!options.wait) {
        print(started, format(options), () => `run ${started.run.id} of ${job}: ${started.run.status}\n`);
        return;
      }
      process.stderr.write(`run ${started.run.id} of ${job}: ${started.run.status}\n`);
      const run = await follow(api, started.run.id);
      print(run, format(options), (paint) => renderRunText(run, paint));
      process.exitCode = run.status === 'succeeded' ? 0 : 1;
    });

  program
    .command('cancel')
    .description('cancel a run on the server at its next safe point')
    .argument('<run>', 'run id')
    .option('--reason <text>', 'why (kept in the run record)')
    .addOption(outputOption())
    .addHelpText('after', EXAMPLES(['db-refresher cancel 20261125T101502113Z-3fa2c1 --reason "wrong day"']))
    .action(async (id: string, options: { reason?: string; output?: OutputFormat }, command: Command) => {
      const res = await client(command).request<{ message: string }>('POST', `/api/v1/runs/${encodeURIComponent(id)}/cancel`, {
        ...(options.reason ? { reason: options.reason } : {}),
      });
      print(res, format(options), () => `${res.message}\n`);
    });

  for (const action of ['suspend', 'resume'] as const) {
    program
      .command(action)
      .description(
        action === 'suspend'
          ? 'suspend a job on the server: scheduled runs are skipped until resumed'
          : 'resume a suspended job on the server',
      )
      .argument('<job>', 'job name')
      .option('--reason <text>', 'why (kept with the job)')
      .addOption(outputOption())
      .addHelpText('after', EXAMPLES([`db-refresher ${action} qa --reason "release freeze"`]))
      .action(async (job: string, options: { reason?: string; output?: OutputFormat }, command: Command) => {
        const res = await client(command).request<{ job: string; suspended: boolean }>(
          'POST',
          `/api/v1/jobs/${encodeURIComponent(job)}/${action}`,
          {
            ...(options.reason ? { reason: options.reason } : {}),
          },
        );
        print(res, format(options), () => `${res.job}: ${res.suspended ? 'suspended' : 'resumed'}\n`);
      });
  }
}
