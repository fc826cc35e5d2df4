import { Command, CommanderError, Option } from 'commander';
import { LOG_LEVELS } from '../config/schema.js';
import { isRefresherError } from '../errors.js';
import { packageVersion } from '../version.js';
import { registerCompletion } from './commands/completion.js';
import { registerNotifyTest } from './commands/notify-test.js';
import { registerPlan } from './commands/plan.js';
import { registerRemote } from './commands/remote.js';
import { registerRollback } from './commands/rollback.js';
import { registerRun } from './commands/run.js';
import { registerSchedule } from './commands/schedule.js';
import { registerSchema } from './commands/schema.js';
import { registerServe } from './commands/serve.js';
import { registerValidate } from './commands/validate.js';

/**
 * The command-line program. `main` turns every outcome into an exit code:
 * 0 success, 1 a refresh failed (or the job was busy), 2 config or usage error.
 * bin.ts is the only place that sets it on the process.
 */

/** Each command lives in commands/<name>.ts and registers itself here. */
const COMMANDS: ReadonlyArray<(program: Command) => void> = [
  registerValidate,
  registerSchema,
  registerPlan,
  registerRun,
  registerRollback,
  registerServe,
  registerSchedule,
  registerNotifyTest,
  registerRemote,
  registerCompletion,
];

export function buildProgram(): Command {
  const program = new Command('db-refresher')
    .description('Refresh test, QA and reporting PostgreSQL databases from a live source, verified and reported.')
    .version(packageVersion())
    .option('-c, --config <path>', 'config file (default: $DB_REFRESHER_CONFIG, else config/db-refresher.yaml)')
    .addOption(new Option('--log-level <level>', 'log level (overrides the config file)').choices(LOG_LEVELS))
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const register of COMMANDS) register(program);
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit 0; everything else commander rejects is a usage error.
      return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help' ? 0 : 2;
    }
    if (isRefresherError(error)) {
      process.stderr.write(`error: ${error.message}\n`);
      if (error.hint) process.stderr.write(`hint: ${error.hint}\n`);
      return error.exitCode;
    }
    process.stderr.write(`internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.stderr.write('This is a bug in db-refresher; please report it with the command you ran.\n');
    return 1;
  }
}
