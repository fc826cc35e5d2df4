import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiBackend } from './backend.js';
import { replyError } from './reply.js';

/**
 * With leader election, only the leader starts, cancels or changes runs. A
 * write that reaches another replica is forwarded to the leader's API, with
 * the caller's token (the leader checks it again) and request id, and the
 * leader's answer is returned as it is. Forwarding instead of recording a
 * request for the leader to pick up keeps the API's answers synchronous
 * (202 with the run id, 409 when the job is busy) and leaves the leader the
 * only writer. Reads are answered by every replica from the shared history.
 */

const FORWARDED = 'x-db-refresher-forwarded';
const FORWARD_TIMEOUT_MS = 15_000;

export function registerForwarding(api: FastifyInstance, backend: ApiBackend): void {
  if (!backend.forwardTo) return;
  const forwardTo = backend.forwardTo.bind(backend);
  api.addHook('preHandler', async (request, reply) => {
    if (request.method === 'GET' || request.method === 'HEAD') return;
    const target = forwardTo();
    if (target === 'self') return;
    if (target === 'none' || request.headers[FORWARDED]) {
      reply.header('retry-after', '5');
      return replyError(reply, 'NO_LEADER', 'no replica holds the leader lease right now; try again in a few seconds');
    }
    return forward(request, reply, target);
  });
}

async function forward(request: FastifyRequest, reply: FastifyReply, target: { url: string; leader: string }): Promise<FastifyReply> {
  const headers: Record<string, string> = { [FORWARDED]: '1', 'x-request-id': request.id };
  if (request.headers.authorization) headers.authorization = request.headers.authorization;
  const body = request.body === undefined ? undefined : JSON.stringify(request.body);
  if (body !== undefined) headers['content-type'] = 'application/json';
  try {
    const answer = await fetch(new URL(request.url, target.url), {
      method: request.method,
      headers,
      body,
      signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS),
    });
    const text = await answer.text();
    reply.code(answer.status).header('x-db-refresher-leader', target.leader);
    const type = answer.headers.get('content-type');
    if (type) reply.type(type);
    return reply.send(text);
  } catch (error) {
    request.log.warn({ err: error, leader: target.leader }, 'forwarding to the leader failed');
    reply.header('retry-after', '5');
    return replyError(reply, 'NO_LEADER', `the leader (${target.leader}) did not answer; try again in a few seconds`);
  }
}
