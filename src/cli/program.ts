import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { Command, CommanderError, Option } from 'commander';
import { z } from 'zod';
import { chooseConfigPath, findJob, loadConfig } from '../config/load.js';
import { configSchema, LOG_LEVELS } from '../config/schema.js';
import type { Config, JobConfig } from '../config/types.js';
import { isRefresherError, RefresherError } from '../errors.js';
import { createLogger, type Logger } from '../observe/logger.js';
import { buildRunner } from '../runtime.js';
import { createTarget } from '../target/create.js';
import { ProgressDisplay } from './progress.js';
import { buildPlan, OUTPUT_FORMATS, type OutputFormat, renderPlanText, renderRunText, serialize } from './render.js';

/**
 * The composition root and the only place that exits the process.
 * Exit codes: 0 success, 1 a refresh failed (or the job was busy), 2 config or usage error.
 */

interface GlobalOptions {
  config?: string;
  logLevel?: string;
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

function load(globals: GlobalOptions): Config {
  return loadConfig(chooseConfigPath(globals.config, process.env));
}

function requireJob(config: Config, name: string): JobConfig {
  const job = findJob(config, name);
  if (!job) {
    throw new RefresherError('JOB_NOT_FOUND', `no job named "${name}" in ${config.path}`, {
      hint: `Jobs defined there: ${config.jobs.map((j) => j.name).join(', ')}`,
    });
  }
  return job;
}

function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS);
}

function print(value: unknown, format: OutputFormat, text: () => string): void {
  process.stdout.write(format === 'text' ? text() : serialize(value, format));
}

function makeLogger(globals: GlobalOptions, config: Config | undefined, pretty: boolean, destination?: NodeJS.WritableStream): Logger {
  return createLogger({ level: globals.logLevel ?? config?.logLevel ?? 'info', pretty, ...(destination ? { destination } : {}) });
}

export function buildProgram(): Command {
  const program = new Command('db-refresher')
    .description('Refresh test, QA and reporting PostgreSQL databases from a live source, verified and reported.')
    .version(version())
    .option('-c, --config <path>', 'config file (default: $DB_REFRESHER_CONFIG, else config/db-refresher.yaml)')
    .addOption(new Option('--log-level <level>', 'log level (overrides the config file)').choices(LOG_LEVELS))
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('validate')
    .description('check the config file and every secret it references; exit 0 when valid, 2 otherwise')
    .action(() => {
      const config = load(program.opts<GlobalOptions>());
      process.stdout.write(
        `${config.path}: valid, ${config.jobs.length} job${config.jobs.length === 1 ? '' : 's'} (${config.jobs.map((j) => j.name).join(', ')})\n`,
      );
    });

  program
    .command('schema')
    .description("print the config file's JSON Schema (for editors and CI linting)")
    .action(() => {
      process.stdout.write(`${JSON.stringify(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }), null, 2)}\n`);
    });

  program
    .command('plan')
    .description('show what a refresh of <job> would do, without touching anything')
    .argument('<job>', 'job name')
    .addOption(outputOption().default('text'))
    .action((name: string, options: { output: OutputFormat }) => {
      const config = load(program.opts<GlobalOptions>());
      const job = requireJob(config, name);
      const plan = buildPlan(job, createTarget(config, job).describe());
      print(plan, options.output, () => renderPlanText(plan));
    });

  program
    .command('run')
    .description('refresh <job> now, in the foreground; exit 0 on success, 1 when the refresh failed')
    .argument('<job>', 'job name')
    .option('--dry-run', 'run the read-only phases (preflight, snapshot) and change nothing')
    .option('--reason <text>', 'why this run was started (kept in the run record)')
    .addOption(outputOption())
    .action(async (name: string, options: { dryRun?: boolean; reason?: string; output?: OutputFormat }) => {
      const globals = program.opts<GlobalOptions>();
      const config = load(globals);
      const job = requireJob(config, name);
      const tty = Boolean(process.stderr.isTTY);
      const display = tty ? new ProgressDisplay(process.stderr) : undefined;
      // On a terminal the progress display is the main output; logs show warnings unless asked for more.
      const log = display
        ? makeLogger({ ...globals, logLevel: globals.logLevel ?? 'warn' }, config, true, display.logStream)
        : makeLogger(globals, config, false);
      const { runner } = buildRunner(config, log, { ...(display ? { onEvent: (e) => display.onEvent(e) } : {}) });
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
      const format = options.output ?? (process.stdout.isTTY ? 'text' : 'json');
      print(run, format, () => renderRunText(run));
      process.exitCode = run.status === 'succeeded' ? 0 : 1;
    });

  program
    .command('serve')
    .description('run the long-lived service (scheduler and HTTP API); stops cleanly on SIGTERM')
    .action(async () => {
      const globals = program.opts<GlobalOptions>();
      const config = load(globals);
      const log = makeLogger(globals, config, Boolean(process.stderr.isTTY));
      log.info({ config: config.path, jobs: config.jobs.map((j) => j.name) }, 'db-refresher started; waiting for SIGTERM');
      // Until the scheduler and HTTP server hold the event loop open, a timer does.
      const keepAlive = setInterval(() => undefined, 2 ** 30);
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      clearInterval(keepAlive);
      log.info({ signal }, 'received signal');
      log.info('stopping');
    });

  return program;
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
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
