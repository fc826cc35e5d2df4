import type { Command } from 'commander';
import { RefresherService } from '../../service/service.js';
import { examples, globals, load, makeLogger } from '../context.js';

/**
 * `db-refresher serve`: the HTTP API starts listening first (so /healthz
 * answers while history is read), then the service resumes or closes
 * unfinished runs, catches up missed fire times and starts the scheduler
 * (/readyz turns 200). The first SIGTERM or SIGINT stops it cleanly (see
 * RefresherService.stop); a second one aborts the running phases at once.
 */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the long-lived service (scheduler and HTTP API); stops cleanly on SIGTERM')
    .addHelpText(
      'after',
      examples([
        'db-refresher serve --config /etc/db-refresher/db-refresher.yaml',
        'DB_REFRESHER_CONFIG=config/db-refresher.yaml db-refresher serve --log-level debug',
      ]),
    )
    .action(async (_options, command: Command) => {
      const opts = globals(command);
      const config = load(opts);
      const log = makeLogger(opts, config, Boolean(process.stderr.isTTY));
      const service = await RefresherService.create({ config, log, processMetrics: true });

      let signals = 0;
      const stopped = new Promise<void>((resolve, reject) => {
        const onSignal = (signal: NodeJS.Signals) => {
          signals += 1;
          if (signals === 1) {
            log.info({ signal }, 'received signal; stopping');
            service.stop(`received ${signal}`).then(resolve, reject);
          } else {
            log.warn({ signal }, 'received a second signal; stopping running phases now');
            service.runner.abortAll(`received ${signal} twice`);
          }
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
      });

      await service.listen();
      await service.start();
      log.info({ config: config.path, jobs: config.jobs.length }, 'db-refresher serve is ready; waiting for SIGTERM');
      await stopped;
      process.exitCode = 0;
      // Everything is closed; if a stray handle (a library's timer) still holds the event loop, do not hang on it.
      setTimeout(() => process.exit(0), 5000).unref();
    });
}
