import type { FastifyReply } from 'fastify';
import { type ErrorCode, type ErrorSlug, errorInfo } from '../errors.js';

/**
 * Every error the API returns: JSON {error, message}, plus any extra fields (e.g. the running
 * run's id on 409), with the request's X-Request-Id. `error` and the status come from the coded
 * error table in src/errors.ts.
 */
export function replyError(reply: FastifyReply, code: ErrorCode, message: string, extra: Record<string, unknown> = {}) {
  const { slug, httpStatus } = errorInfo(code);
  return reply
    .code(httpStatus)
    .header('x-request-id', reply.request.id)
    .type('application/json; charset=utf-8')
    .send({ error: slug, message, ...extra });
}

/** As replyError, by status and slug; the slug must be one of the table's. */
export function sendError(reply: FastifyReply, status: number, error: ErrorSlug, message: string, extra: Record<string, unknown> = {}) {
  return reply
    .code(status)
    .header('x-request-id', reply.request.id)
    .type('application/json; charset=utf-8')
    .send({ error, message, ...extra });
}
