import { type Command, Option } from 'commander';
import { chooseConfigPath, findJob, loadConfig } from '../config/load.js';
import type { Config, JobConfig } from '../config/types.js';
import { RefresherError } from '../errors.js';
import { createLogger, type Logger } from '../observe/logger.js';
import { OUTPUT_FORMATS, type OutputFormat, serialize } from './render.js';

/** What every command shares: global options, config loading, output. */

export interface GlobalOptions {
  config?: string;
  logLevel?: string;
}

export function globals(command: Command): GlobalOptions {
  return command.optsWithGlobals<GlobalOptions>();
}

export function load(options: GlobalOptions): Config {
  return loadConfig(chooseConfigPath(options.config, process.env));
}

export function requireJob(config: Config, name: string): JobConfig {
  const job = findJob(config, name);
  if (!job) {
    throw new RefresherError('JOB_NOT_FOUND', `no job named "${name}" in ${config.path}`, {
      hint: `Jobs defined there: ${config.jobs.map((j) => j.name).join(', ')}`,
    });
  }
  return job;
}

export function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS);
}

export function print(value: unknown, format: OutputFormat, text: () => string): void {
  process.stdout.write(format === 'text' ? text() : serialize(value, format));
}

export function makeLogger(
  options: GlobalOptions,
  config: Config | undefined,
  pretty: boolean,
  destination?: NodeJS.WritableStream,
): Logger {
  return createLogger({ level: options.logLevel ?? config?.logLevel ?? 'info', pretty, ...(destination ? { destination } : {}) });
}
