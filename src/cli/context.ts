import { type Command, Option } from 'commander';
import { chooseConfigPath, findJob, loadConfig } from '../config/load.js';
import type { Config, JobConfig } from '../config/types.js';
import { RefresherError } from '../errors.js';
import { createLogger, type Logger } from '../observe/logger.js';
import { colorEnabled, type Paint, paintFor } from './color.js';
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

/** The `Examples:` block at the end of a command's --help. */
export function examples(lines: readonly string[]): string {
  return `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
}

export function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS);
}

/** `text` gets the colours stdout takes (NO_COLOR, FORCE_COLOR, a terminal or not). */
export function print(value: unknown, format: OutputFormat, text: (paint: Paint) => string): void {
  process.stdout.write(format === 'text' ? text(paintFor(process.stdout, process.env)) : serialize(value, format));
}

export function makeLogger(
  options: GlobalOptions,
  config: Config | undefined,
  pretty: boolean,
  destination?: NodeJS.WritableStream,
): Logger {
  return createLogger({
    level: options.logLevel ?? config?.logLevel ?? 'info',
    pretty,
    // Pretty lines go to the terminal on stderr (directly, or through the progress display).
    colorize: colorEnabled(process.stderr.isTTY, process.env),
    ...(destination ? { destination } : {}),
  });
}
