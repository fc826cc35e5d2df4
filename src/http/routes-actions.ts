import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { isRunId } from '../run/record.js';
import type { ApiBackend } from './backend.js';
import { replyError } from './reply.js';
import { runPath, summarizeRun } from './views.js';

/**
 * What a person does from the status page or the CLI besides starting a run:
 * ask who they are, cancel a run, suspend or resume a job. Input is checked
 * with zod (the same schemas /openapi.json describes).
 */

const JOB_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export const reasonBody = z
  .strictObject(
    {
      reason: z
        .string()
        .trim()
        .min(1, { error: 'must not be empty' })
        .max(500, { error: 'must be at most 500 characters' })
        .optional()
        .describe('why: recorded with who asked'),
    },
    {
      error: (issue) =>
        issue.code === 'unrecognized_keys'
          ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}; the body may hold "reason"`
          : 'must be a JSON object such as {"reason": "…"}, sent with Content-Type: application/json',
    },
  )
  .nullish();

function problem(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`).join('; ');
}

/** Route paths of optional features, found among the registered routes (rollback appears when blue/green exists). */
export interface Capabilities {
  rollback?: string;
}

export function registerActionRoutes(api: FastifyInstance, backend: ApiBackend, capabilities: () => Capabilities): void {
  api.get('/whoami', async (request) => {
    const principal = request.principal;
    const caps = capabilities();
    return {
      name: principal?.name ?? 'unknown',
      readOnly: principal?.readOnly ?? true,
      actions: principal?.readOnly
        ? {}
        : { trigger: true, cancel: true, suspend: true, ...(caps.rollback ? { rollback: caps.rollback } : {}) },
    };
  });

  api.post<{ Params: { id: string } }>('/runs/:id/cancel', async (request, reply) => {
    const id = request.params.id;
    const body = reasonBody.safeParse(request.body);
    if (!body.success) return replyError(reply, 'USAGE', problem(body.error));
    if (!isRunId(id)) return replyError(reply, 'RUN_NOT_FOUND', `no run with id "${id.slice(0, 80)}"`);
    const result = await backend.cancel(id, {
      by: request.principal?.name ?? 'unknown',
      ...(body.data?.reason ? { reason: body.data.reason } : {}),
    });
    if (result.outcome === 'not-found') return replyError(reply, 'RUN_NOT_FOUND', `no run with id "${id.slice(0, 80)}"`);
    if (result.outcome === 'elsewhere') return replyError(reply, 'RUN_NOT_HERE', result.message, { status: result.run.status });
    if (result.outcome === 'finished') {
      return replyError(reply, 'RUN_FINISHED', `run ${id} has already ended (${result.run.status}); there is nothing to cancel`, {
        status: result.run.status,
      });
    }
    return reply.code(202).send({ run: summarizeRun(result.run), message: result.message, links: { self: runPath(id) } });
  });

  for (const action of ['suspend', 'resume'] as const) {
    api.post<{ Params: { job: string } }>(`/jobs/:job/${action}`, async (request, reply) => {
      const name = request.params.job;
      const job = JOB_NAME.test(name) ? backend.job(name) : undefined;
      if (!job) return replyError(reply, 'JOB_NOT_FOUND', `no job named "${name.slice(0, 80)}"`);
      const body = reasonBody.safeParse(request.body);
      if (!body.success) return replyError(reply, 'USAGE', problem(body.error));
      const suspension = await backend.setSuspended(job, {
        suspended: action === 'suspend',
        by: request.principal?.name ?? 'unknown',
        ...(body.data?.reason ? { reason: body.data.reason } : {}),
      });
      return { job: job.name, suspended: suspension.suspended, suspension };
    });
  }
}
