import type { Command } from 'commander';
import { systemClock } from '../../clock.js';
import { chooseConfigPath, loadConfig } from '../../config/load.js';
import { paintFor } from '../color.js';
import { globals } from '../context.js';
import { describeSchedules } from './schedule.js';

/**
 * `db-refresher validate [--skip-secrets]`: every problem of the file in one
 * report (exit 2), else a one-line summary and the schedule warnings
 * `db-refresher schedule` shows (DST gaps and overlaps, day-of-month AND
 * day-of-week), which do not fail validation.
 */
export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('check the config file and every secret it references; exit 0 when valid, 2 otherwise')
    .option('--skip-secrets', 'check shape and rules without reading secrets (CI checking a rendered ConfigMap)')
    .addHelpText(
      'after',
      `
Examples:
  $ db-refresher validate --config config/db-refresher.yaml
  $ helm template … | yq 'select(.kind == "ConfigMap") | .data["db-refresher.yaml"]' > rendered.yaml
  $ db-refresher validate --config rendered.yaml --skip-secrets
`,
    )
    .action((options: { skipSecrets?: boolean }, command: Command) => {
      const opts = globals(command);
      const skipSecrets = options.skipSecrets ?? false;
      const config = loadConfig(chooseConfigPath(opts.config, process.env), process.env, { skipSecrets });
      const names = config.jobs.map((j) => j.name).join(', ');
      process.stdout.write(
        `${config.path}: valid, ${config.jobs.length} job${config.jobs.length === 1 ? '' : 's'} (${names})${skipSecrets ? '; secrets not read (--skip-secrets)' : ''}\n`,
      );
      const paint = paintFor(process.stderr, process.env);
      for (const schedule of describeSchedules(config.jobs, 1, systemClock.now())) {
        for (const warning of schedule.warnings) process.stderr.write(`${paint.yellow('warning:')} job "${schedule.job}": ${warning}\n`);
      }
    });
}
