import { createRequire } from 'node:module';
import { type Logger as PinoLogger, pino } from 'pino';
import type prettyFactory from 'pino-pretty';

export type Logger = PinoLogger;

/**
 * Second line of defence for secrets: `Secret` values already print as a
 * placeholder, and these paths catch raw values that reach a log by another way.
 */
export const REDACT_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  'secret',
  '*.secret',
  'token',
  '*.token',
  'url',
  '*.url',
  'sslKey',
  '*.sslKey',
  'headers.authorization',
  'req.headers.authorization',
  'connectionString',
  '*.connectionString',
];

export interface LoggerOptions {
  level: string;
  /** Human-readable lines (for a terminal) instead of JSON. */
  pretty: boolean;
  /** Colour in pretty lines (default true); the CLI passes what NO_COLOR and FORCE_COLOR say. */
  colorize?: boolean;
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const base = {
    level: options.level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { service: 'db-refresher' },
  };
  const destination = options.destination ?? process.stderr;
  if (options.pretty) {
    // Required only for a terminal: a service logs JSON, and pino-pretty with its dependencies is
    // about 30 modules of resident memory it would never use.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof prettyFactory;
    return pino(
      base,
      pretty({ destination, colorize: options.colorize ?? true, ignore: 'pid,hostname,service', translateTime: 'HH:MM:ss', sync: true }),
    );
  }
  return pino(base, pino.destination({ dest: destination === process.stderr ? 2 : 1, sync: true }));
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
