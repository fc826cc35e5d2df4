import type { Command } from 'commander';
import { globals, load, makeLogger } from '../context.js';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the long-lived service (scheduler and HTTP API); stops cleanly on SIGTERM')
    .action(async (_options, command: Command) => {
      const opts = globals(command);
      const config = load(opts);
      const log = makeLogger(opts, config, Boolean(process.stderr.isTTY));
      log.info({ config: config.path, jobs: config.jobs.map((j) => j.name) }, 'db-refresher started; waiting for SIGTERM');
      // Until the scheduler and HTTP server hold the event loop open, a timer does.
      const keepAlive = setInterval(() => undefined, 2 ** 30);
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      clearInterval(keepAlive);
      log.info({ signal }, 'received signal; stopping');
    });
}
