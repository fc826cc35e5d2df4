import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type ErrorCode, errorInfo, isRefresherError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import { replyError } from './reply.js';

/**
 * Errors that fastify or Node's HTTP parser raise before a route runs, in the
 * API's own shape ({error, message} with X-Request-Id), plus 405 for a known
 * path with the wrong method. Every status and `error` slug comes from the
 * coded error table in src/errors.ts.
 */

const FASTIFY_CODES: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'MALFORMED_BODY',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'MALFORMED_BODY',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'MALFORMED_BODY',
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_BAD_URL: 'USAGE',
  FST_ERR_MAX_PARAM_LENGTH: 'URI_TOO_LONG',
  FST_ERR_ASYNC_CONSTRAINT: 'USAGE',
  FST_ERR_PROTO_KEY: 'MALFORMED_BODY',
};

function frameworkMessage(code: ErrorCode, error: FastifyError, bodyLimitBytes: number): string {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return `the request body is larger than ${bodyLimitBytes} bytes (server.bodyLimitBytes)`;
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return 'the body is not valid JSON; send a JSON object such as {"reason": "…"} with Content-Type: application/json';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'the body is empty but Content-Type says JSON; send a JSON object, or no Content-Type and no body';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'the body must be JSON (Content-Type: application/json)';
    case 'FST_ERR_BAD_URL':
      return 'the URL is not valid: a percent-escape does not decode; check how the client encodes the path';
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return 'a path segment of the URL is too long; job names have at most 63 characters and run ids 29';
    default:
      return code === 'USAGE' ? 'the request is not valid' : error.message;
  }
}

/** The app's error handler: framework errors by their code, coded errors by theirs, anything else a logged 500. */
export function handleError(error: FastifyError, request: FastifyRequest, reply: FastifyReply, bodyLimitBytes: number) {
  const code = error.code ? FASTIFY_CODES[error.code] : undefined;
  if (code)
    return replyError(reply, code, error.code === 'FST_ERR_PROTO_KEY' ? error.message : frameworkMessage(code, error, bodyLimitBytes));
  // A 500 from a coded error (a failed refresh, a config problem) still hides its text: the log has it.
  if (isRefresherError(error) && error.httpStatus !== 500) return replyError(reply, error.code, error.message);
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) return replyError(reply, 'USAGE', error.message);
  request.log.error({ err: error }, 'unexpected error');
  return replyError(reply, 'INTERNAL', `internal error; the service log has the details under request id ${request.id}`);
}

/** Keys that JSON.parse keeps as plain data but that would reach prototypes once merged into an object. */
function poisonKey(value: unknown): string | undefined {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const node = stack.pop();
    if (node === null || typeof node !== 'object') continue;
    for (const [key, child] of Object.entries(node)) {
      if (key === '__proto__') return '__proto__';
      if (key === 'constructor' && child !== null && typeof child === 'object' && 'prototype' in child) return 'constructor.prototype';
      stack.push(child);
    }
  }
  return undefined;
}

const coded = (code: string, message: string) => Object.assign(new Error(message), { code, statusCode: 400 });

/**
 * JSON bodies parsed by us rather than fastify's default, so a body with a "__proto__" key
 * is refused with a message that says so, instead of "not valid JSON".
 */
export function registerJsonParser(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.length === 0) return done(coded('FST_ERR_CTP_EMPTY_JSON_BODY', 'empty JSON body'), undefined);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return done(coded('FST_ERR_CTP_INVALID_JSON_BODY', 'invalid JSON body'), undefined);
    }
    const key = poisonKey(value);
    if (key) {
      return done(
        coded(
          'FST_ERR_PROTO_KEY',
          `the body has a "${key}" key, which is refused: merged into an object it would change the prototype of every object. The body may hold "reason" and "dryRun"`,
        ),
        undefined,
      );
    }
    done(null, value);
  });
}

/** Fastify's frameworkErrors option: a bad URL or an over-long path segment, before routing. */
export function frameworkErrors(bodyLimitBytes: number) {
  return (error: FastifyError, _request: FastifyRequest, reply: FastifyReply) => handleError(error, reply.request, reply, bodyLimitBytes);
}

/**
 * Fastify's clientErrorHandler: requests Node's HTTP parser refuses (headers or request
 * line too large, malformed HTTP, a request that took too long) get the API's shape too.
 * There is no request object yet, so the request id is a new one.
 */
export function clientErrorHandler(log: Logger) {
  return (error: NodeJS.ErrnoException, socket: Socket) => {
    // Node's parser reports every further chunk of a refused request as a new client
    // error; the first one has been answered and the socket is draining.
    if (error.code === 'ECONNRESET' || socket.destroyed || answered.has(socket)) return;
    const [code, message]: [ErrorCode, string] =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? ['HEADERS_TOO_LARGE', 'the request line and headers are larger than the server accepts (16 KiB); shorten the URL or the headers']
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? ['REQUEST_TIMEOUT', 'the request took too long to arrive']
          : ['USAGE', 'the request is not valid HTTP'];
    const { slug, httpStatus } = errorInfo(code);
    const id = randomUUID();
    log.debug({ reqId: id, code: error.code, statusCode: httpStatus }, 'client error');
    if (!socket.writable) {
      socket.destroy(error);
      return;
    }
    const body = JSON.stringify({ error: slug, message });
    const reason = STATUS_TEXT[httpStatus] ?? 'Error';
    // Half-close and keep reading (and discarding) what the client still sends: closing a
    // socket with unread input makes the kernel send a reset, and the client may then lose
    // the answer and see only "connection reset". The timer bounds a client that never stops.
    socket.end(
      `HTTP/1.1 ${httpStatus} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${id}\r\nConnection: close\r\n\r\n${body}`,
    );
    answered.add(socket);
    socket.on('error', () => undefined);
    socket.resume();
    setTimeout(() => socket.destroy(), DRAIN_MS).unref();
  };
}

/** Sockets whose refused request has had its answer. */
const answered = new WeakSet<Socket>();

/** How long a refused client may go on sending before its socket is closed. */
const DRAIN_MS = 2_000;

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};

/**
 * The API's routes by method, so a known path asked with another method gets 405 and
 * `Allow` instead of 404. Filled from fastify's onRoute hook, so routes added later are in it.
 */
export class RouteMethods {
  readonly #routes: Array<{ pattern: RegExp; method: string }> = [];

  add(method: string | readonly string[], url: string): void {
    const pattern = new RegExp(
      `^${url
        .split('/')
        .map((part) => (part.startsWith(':') ? '[^/]+' : part === '*' ? '.*' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
        .join('/')}/?$`,
    );
    for (const m of [method].flat()) this.#routes.push({ pattern, method: m });
  }

  /** Methods that have a route for this path (query string excluded). */
  allowed(path: string): string[] {
    return [...new Set(this.#routes.filter((r) => r.pattern.test(path)).map((r) => r.method))].sort();
  }
}
