import type { Command } from 'commander';
import { globals, load } from '../context.js';

export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('check the config file and every secret it references; exit 0 when valid, 2 otherwise')
    .action((_options, command: Command) => {
      const config = load(globals(command));
      const names = config.jobs.map((j) => j.name).join(', ');
      process.stdout.write(`${config.path}: valid, ${config.jobs.length} job${config.jobs.length === 1 ? '' : 's'} (${names})\n`);
    });
}
