import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { buildRunner } from '../../composition-root.js';
import { refuseBesideReplicas } from '../beside-replicas.js';
import { examples, globals, load, makeLogger, outputOption, print, requireJob } from '../context.js';
import { type OutputFormat, renderRunText } from '../render.js';

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

/** `db-refresher rollback <job>`: a run of its own that switches a blueGreen job back to its previous copy. */
export function registerRollback(program: Command): void {
  program
    .command('rollback')
    .description('switch a blueGreen <job> back to its previous copy while it is kept; exit 0 on success, 1 when it failed')
    .addHelpText('after', examples(['db-refresher rollback qa --reason "the new copy breaks the login test"']))
    .argument('<job>', 'job name')
    .option('--reason <text>', 'why (kept in the run record)')
    .addOption(outputOption())
    .action(async (name: string, options: { reason?: string; output?: OutputFormat }, command: Command) => {
      const opts = globals(command);
      const config = load(opts);
      const job = requireJob(config, name);
      refuseBesideReplicas(config, job, 'rollback');
      const log = makeLogger(opts, config, false);
      const { runner, notifier } = buildRunner(config, log);
      const run = await runner.run(
        job,
        { kind: 'cli', by: safeUserName(), ...(options.reason ? { reason: options.reason } : {}) },
        { operation: 'rollback' },
      );
      await notifier.flush(10_000);
      const format = options.output ?? (process.stdout.isTTY ? 'text' : 'json');
      print(run, format, (paint) => renderRunText(run, paint));
      process.exitCode = run.status === 'succeeded' ? 0 : 1;
    });
}
