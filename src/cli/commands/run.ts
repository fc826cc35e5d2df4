import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { buildRunner } from '../../composition-root.js';
import { silentNotifier } from '../../notify/silent.js';
import { refuseBesideReplicas } from '../beside-replicas.js';
import { examples, globals, load, makeLogger, outputOption, print, requireJob } from '../context.js';
import { ProgressDisplay } from '../progress.js';
import { type OutputFormat, renderRunText } from '../render.js';

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('refresh <job> now, in the foreground; exit 0 on success, 1 when the refresh failed')
    .addHelpText(
      'after',
      examples([
        'db-refresher run qa --reason "fresh data for the release test"',
        'db-refresher run qa --dry-run',
        'db-refresher run qa --no-notify -o json > run.json',
      ]),
    )
    .argument('<job>', 'job name')
    .option('--dry-run', 'run the read-only phases (preflight, snapshot) and change nothing')
    .option('--reason <text>', 'why this run was started (kept in the run record)')
    .option('--no-notify', "send no notifications for this run (the job's `notify` targets are not told)")
    .addOption(outputOption())
    .action(
      async (name: string, options: { dryRun?: boolean; reason?: string; notify: boolean; output?: OutputFormat }, command: Command) => {
        const opts = globals(command);
        const config = load(opts);
        const job = requireJob(config, name);
        if (!options.dryRun) refuseBesideReplicas(config, job, 'run');
        const display = process.stderr.isTTY ? new ProgressDisplay(process.stderr) : undefined;
        // On a terminal the progress display is the main output; logs show warnings unless asked for more.
        const log = display
          ? makeLogger({ ...opts, logLevel: opts.logLevel ?? 'warn' }, config, true, display.logStream)
          : makeLogger(opts, config, false);
        const { runner, notifier } = buildRunner(config, log, {
          ...(display ? { onEvent: (e) => display.onEvent(e) } : {}),
          ...(options.notify ? {} : { notifier: silentNotifier }),
        });
        const started = await runner.start(
          job,
          { kind: 'cli', by: safeUserName(), ...(options.reason ? { reason: options.reason } : {}) },
          { dryRun: options.dryRun ?? false },
        );
        const stop = (signal: NodeJS.Signals) => {
          log.warn({ signal }, 'stopping the run');
          runner.abortAll(`received ${signal}`);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        const run = await started.done;
        display?.stop();
        // Notifications are sent in the background; give them a bounded moment before exiting.
        await notifier.flush(10_000);
        const format = options.output ?? (process.stdout.isTTY ? 'text' : 'json');
        print(run, format, (paint) => renderRunText(run, paint));
        process.exitCode = run.status === 'succeeded' ? 0 : 1;
      },
    );
}
