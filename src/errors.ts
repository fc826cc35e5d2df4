import { sanitizeProblem } from './config/quote.js';
import { FAILURE_HINTS, type FailureClass } from './failures.js';

/**
 * Coded errors, one table for the CLI and the HTTP API (as fastify's lib/errors.js):
 * each code has the slug the API sends as `error`, its HTTP status and the CLI's
 * exit code, so "suspended" or "busy" mean the same wherever they are met. Every
 * error a user can cause or act on is one of these; tests assert codes, not wording.
 * The README's error table lists exactly these rows (test/unit/errors.test.ts).
 */

interface ErrorInfo {
  /** The API's `error` field. */
  slug: string;
  httpStatus: number;
  /** 2: config or usage; 1: the refresh failed or could not run now. */
  exitCode: 1 | 2;
}

export const ERROR_TABLE = {
  USAGE: { slug: 'bad-request', httpStatus: 400, exitCode: 2 },
  MALFORMED_BODY: { slug: 'malformed-body', httpStatus: 400, exitCode: 2 },
  UNAUTHENTICATED: { slug: 'unauthenticated', httpStatus: 401, exitCode: 2 },
  INVALID_TOKEN: { slug: 'invalid-token', httpStatus: 401, exitCode: 2 },
  FORBIDDEN: { slug: 'forbidden', httpStatus: 403, exitCode: 2 },
  NOT_FOUND: { slug: 'not-found', httpStatus: 404, exitCode: 2 },
  JOB_NOT_FOUND: { slug: 'job-not-found', httpStatus: 404, exitCode: 2 },
  RUN_NOT_FOUND: { slug: 'run-not-found', httpStatus: 404, exitCode: 2 },
  METHOD_NOT_ALLOWED: { slug: 'method-not-allowed', httpStatus: 405, exitCode: 2 },
  REQUEST_TIMEOUT: { slug: 'request-timeout', httpStatus: 408, exitCode: 1 },
  JOB_BUSY: { slug: 'job-busy', httpStatus: 409, exitCode: 1 },
  JOB_SUSPENDED: { slug: 'job-suspended', httpStatus: 409, exitCode: 2 },
  UNSAFE_TARGET: { slug: 'unsafe-target', httpStatus: 409, exitCode: 1 },
  NO_PREVIOUS_COPY: { slug: 'no-previous-copy', httpStatus: 409, exitCode: 1 },
  RUN_FINISHED: { slug: 'run-finished', httpStatus: 409, exitCode: 1 },
  RUN_NOT_HERE: { slug: 'run-not-here', httpStatus: 409, exitCode: 1 },
  BODY_TOO_LARGE: { slug: 'body-too-large', httpStatus: 413, exitCode: 2 },
  URI_TOO_LONG: { slug: 'uri-too-long', httpStatus: 414, exitCode: 2 },
  UNSUPPORTED_MEDIA_TYPE: { slug: 'unsupported-media-type', httpStatus: 415, exitCode: 2 },
  HEADERS_TOO_LARGE: { slug: 'headers-too-large', httpStatus: 431, exitCode: 2 },
  CONFIG_INVALID: { slug: 'config-invalid', httpStatus: 500, exitCode: 2 },
  REFRESH_FAILED: { slug: 'refresh-failed', httpStatus: 500, exitCode: 1 },
  INTERNAL: { slug: 'internal', httpStatus: 500, exitCode: 1 },
  SHUTTING_DOWN: { slug: 'shutting-down', httpStatus: 503, exitCode: 1 },
  NO_LEADER: { slug: 'no-leader', httpStatus: 503, exitCode: 1 },
} as const satisfies Record<string, ErrorInfo>;

export type ErrorCode = keyof typeof ERROR_TABLE;
export type ErrorSlug = (typeof ERROR_TABLE)[ErrorCode]['slug'];

export function errorInfo(code: ErrorCode): ErrorInfo {
  return ERROR_TABLE[code];
}

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
    return ERROR_TABLE[this.code].exitCode;
  }

  get httpStatus(): number {
    return ERROR_TABLE[this.code].httpStatus;
  }

  /** The API's `error` field. */
  get slug(): ErrorSlug {
    return ERROR_TABLE[this.code].slug;
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
