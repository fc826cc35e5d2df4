import type { FastifyReply } from 'fastify';

/** Every error the API returns: JSON {error, message}, plus any extra fields (e.g. the running run's id on 409). */
export function sendError(reply: FastifyReply, status: number, error: string, message: string, extra: Record<string, unknown> = {}) {
  return reply
    .code(status)
    .type('application/json; charset=utf-8')
    .send({ error, message, ...extra });
}
