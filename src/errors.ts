import { sanitizeProblem } from './config/quote.js';
import { FAILURE_HINTS, type FailureClass } from './failures.js';

/**
 * Coded errors. Every error a user can cause or act on is one of these, so the
 * CLI can pick its exit code and the HTTP API its status without parsing text.
 * Tests assert `code`, not message wording.
 */

export type ErrorCode = 'CONFIG_INVALID' | 'USAGE' | 'JOB_NOT_FOUND' | 'JOB_BUSY' | 'REFRESH_FAILED' | 'UNSAFE_TARGET';

interface CodeInfo {
  exitCode: number;
  httpStatus: number;
}

const CODES: Record<ErrorCode, CodeInfo> = {
  CONFIG_INVALID: { exitCode: 2, httpStatus: 500 },
  USAGE: { exitCode: 2, httpStatus: 400 },
  JOB_NOT_FOUND: { exitCode: 2, httpStatus: 404 },
  JOB_BUSY: { exitCode: 1, httpStatus: 409 },
  REFRESH_FAILED: { exitCode: 1, httpStatus: 500 },
  UNSAFE_TARGET: { exitCode: 1, httpStatus: 409 },
};

export class RefresherError extends Error {
  readonly code: ErrorCode;
  /** What the person reading this should do next. */
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RefresherError';
    this.code = code;
    this.hint = options.hint;
  }

  get exitCode(): number {
    return CODES[this.code].exitCode;
  }

  get httpStatus(): number {
    return CODES[this.code].httpStatus;
  }
}

/** Problems a config error message lists; the rest are counted. */
export const MAX_LISTED_PROBLEMS = 50;

/**
 * A config file with one or more problems; `problems` holds one line per problem, each starting
 * with its path, with control characters escaped and long lines cut (see config/quote.ts).
 * The message lists the first MAX_LISTED_PROBLEMS and counts the rest.
 */
export class ConfigError extends RefresherError {
  readonly problems: readonly string[];

  constructor(source: string, problems: readonly string[]) {
    const clean = problems.map(sanitizeProblem);
    const noun = clean.length === 1 ? 'problem' : 'problems';
    const listed = clean.slice(0, MAX_LISTED_PROBLEMS).map((p) => `  - ${p}`);
    if (clean.length > MAX_LISTED_PROBLEMS) {
      listed.push(`  … and ${clean.length - MAX_LISTED_PROBLEMS} more (fix these first; \`db-refresher validate\` shows what is left)`);
    }
    super('CONFIG_INVALID', `${sanitizeProblem(source)}: ${clean.length} ${noun}:\n${listed.join('\n')}`);
    this.name = 'ConfigError';
    this.problems = clean;
  }
}

export function isRefresherError(error: unknown): error is RefresherError {
  return error instanceof RefresherError;
}

/**
 * A phase failed for a reason we can name. The runner records `failureClass`,
 * `message`, `hint` and `details` in the run record.
 */
export class PhaseFailure extends RefresherError {
  readonly failureClass: FailureClass;
  readonly details: readonly string[];

  constructor(failureClass: FailureClass, message: string, options: { details?: readonly string[]; hint?: string; cause?: unknown } = {}) {
    super(failureClass === 'unsafe-target' ? 'UNSAFE_TARGET' : 'REFRESH_FAILED', message, {
      hint: options.hint ?? FAILURE_HINTS[failureClass],
      cause: options.cause,
    });
    this.name = 'PhaseFailure';
    this.failureClass = failureClass;
    this.details = options.details ?? [];
  }
}
