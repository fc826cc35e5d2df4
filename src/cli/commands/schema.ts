import type { Command } from 'commander';
import { z } from 'zod';
import { configSchema } from '../../config/schema.js';

export function registerSchema(program: Command): void {
  program
    .command('schema')
    .description("print the config file's JSON Schema (for editors and CI linting)")
    .action(() => {
      process.stdout.write(`${JSON.stringify(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }), null, 2)}\n`);
    });
}
