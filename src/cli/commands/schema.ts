import type { Command } from 'commander';
import { z } from 'zod';
import { configSchema } from '../../config/schema.js';
import { examples } from '../context.js';

export function registerSchema(program: Command): void {
  program
    .command('schema')
    .description("print the config file's JSON Schema (for editors and CI linting)")
    .addHelpText(
      'after',
      `${examples(['db-refresher schema > db-refresher.schema.json'])}  (then, first line of the config file: # yaml-language-server: $schema=./db-refresher.schema.json)\n`,
    )
    .action(() => {
      process.stdout.write(`${JSON.stringify(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }), null, 2)}\n`);
    });
}
