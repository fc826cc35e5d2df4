import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { refusesManualRuns } from '../config/job-rules.js';
import { isRefresherError } from '../errors.js';
import { isRunId, RUN_ID_PATTERN } from '../run/record.js';
import { JobListResponse, serializerSchema } from './api-schemas.js';
import type { ApiBackend } from './backend.js';
import { replyError } from './reply.js';
import { type Closing, waitForEnd, waitQuery } from './routes-live.js';
import { runPath, runView, summarizeRun } from './views.js';

/**
 * /api/v1 routes. Input is checked with zod, so malformed input is a 400 with
 * a message that names the field, never a 500.
 */

const JOB_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export const triggerBody = z
  .strictObject(
    {
      reason: z.string().trim().min(1, { error: 'must not be empty' }).max(500, { error: 'must be at most 500 characters' }).optional(),
      dryRun: z.boolean({ error: 'must be true or false' }).optional(),
    },
    {
      error: (issue) =>
        issue.code === 'unrecognized_keys'
          ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}; the body may hold "reason" and "dryRun"`
          : 'must be a JSON object such as {"reason": "…", "dryRun": false}, sent with Content-Type: application/json',
    },
  )
  // No body at all is fine; a body of `null` is not an object.
  .optional();

const limit = (max: number, fallback: number) =>
  z
    .string()
    .regex(/^\d{1,4}$/, { error: `must be a whole number 1-${max}` })
    .transform(Number)
    .refine((n) => n >= 1 && n <= max, { error: `must be a whole number 1-${max}` })
    .default(fallback);

export const jobsQuery = z.object({
  limit: limit(1000, 100),
  cursor: z.string().regex(JOB_NAME, { error: 'must be a job name from a previous page' }).optional(),
});

export const runsQuery = z.object({
  limit: limit(200, 20),
  before: z.string().regex(RUN_ID_PATTERN, { error: 'must be a run id, e.g. from nextCursor' }).optional(),
});

/**
 * The job list is the most polled route (dashboards, 1,000 jobs): its response
 * schema lets fastify compile a serializer for it, several times faster than
 * JSON.stringify. The schema is the one /openapi.json describes.
 */
const JOB_LIST_RESPONSE = serializerSchema(JobListResponse);

function problem(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`).join('; ');
}

export function registerApiRoutes(api: FastifyInstance, backend: ApiBackend, closing: Closing): void {
  const findJob = (name: string) => (JOB_NAME.test(name) ? backend.job(name) : undefined);
  const noJob = (name: string) =>
    `no job named "${name.slice(0, 80)}"; jobs: ${backend
      .jobs()
      .slice(0, 20)
      .map((j) => j.name)
      .join(', ')}${backend.jobs().length > 20 ? ', …' : ''}`;

  api.get('/jobs', { schema: { response: { 200: JOB_LIST_RESPONSE } } }, async (request, reply) => {
    const query = jobsQuery.safeParse(request.query);
    if (!query.success) return replyError(reply, 'USAGE', problem(query.error));
    const all = backend.jobs();
    let start = 0;
    if (query.data.cursor !== undefined) {
      const at = all.findIndex((j) => j.name === query.data.cursor);
      if (at < 0) return replyError(reply, 'USAGE', `cursor: no job named "${query.data.cursor}"`);
      start = at + 1;
    }
    const page = all.slice(start, start + query.data.limit);
    const last = page[page.length - 1];
    return {
      jobs: page.map((job) => backend.jobListItem(job)),
      total: all.length,
      nextCursor: last && start + page.length < all.length ? last.name : null,
    };
  });

  api.get<{ Params: { job: string } }>('/jobs/:job', async (request, reply) => {
    const job = findJob(request.params.job);
    if (!job) return replyError(reply, 'JOB_NOT_FOUND', noJob(request.params.job));
    return backend.jobDetail(job);
  });

  api.get<{ Params: { job: string } }>('/jobs/:job/runs', async (request, reply) => {
    const job = findJob(request.params.job);
    if (!job) return replyError(reply, 'JOB_NOT_FOUND', noJob(request.params.job));
    const query = runsQuery.safeParse(request.query);
    if (!query.success) return replyError(reply, 'USAGE', problem(query.error));
    const runs = await backend.listRuns(job.name, {
      limit: query.data.limit,
      ...(query.data.before ? { before: query.data.before } : {}),
    });
    const last = runs[runs.length - 1];
    return {
      runs: runs.map(summarizeRun),
      nextCursor: last && runs.length === query.data.limit ? last.id : null,
    };
  });

  api.get<{ Params: { id: string } }>('/runs/:id', async (request, reply) => {
    const id = request.params.id;
    const query = waitQuery.safeParse(request.query);
    if (!query.success) return replyError(reply, 'USAGE', problem(query.error));
    const wait = query.data.wait ?? 0;
    const run = isRunId(id) ? await (wait > 0 ? waitForEnd(backend, id, wait, closing) : backend.getRun(id)) : undefined;
    if (!run) return replyError(reply, 'RUN_NOT_FOUND', `no run with id "${id.slice(0, 80)}"`);
    return runView(run, backend.currentRun(run.job));
  });

  api.post<{ Params: { job: string } }>('/jobs/:job/runs', async (request, reply) => {
    if (!backend.accepting()) {
      reply.header('retry-after', '30');
      return replyError(reply, 'SHUTTING_DOWN', 'the service is shutting down and takes no new runs; try again when it is back');
    }
    const job = findJob(request.params.job);
    if (!job) return replyError(reply, 'JOB_NOT_FOUND', noJob(request.params.job));
    const body = triggerBody.safeParse(request.body);
    if (!body.success) return replyError(reply, 'USAGE', problem(body.error));
    if (refusesManualRuns(job)) {
      return replyError(reply, 'JOB_SUSPENDED', `job "${job.name}" is suspended and does not allow manual runs while suspended`);
    }
    try {
      const run = await backend.trigger(job, {
        by: request.principal?.name ?? 'unknown',
        ...(body.data?.reason ? { reason: body.data.reason } : {}),
        dryRun: body.data?.dryRun ?? false,
      });
      reply.header('location', runPath(run.id));
      return reply.code(202).send({ run: summarizeRun(run), links: { self: runPath(run.id) } });
    } catch (error) {
      if (isRefresherError(error) && error.code === 'JOB_BUSY') {
        // The lock's message names the holding process; that is for the log, not for API clients.
        request.log.info({ err: error.message }, 'trigger refused: job busy');
        return jobBusy(reply, job.name, backend.runningRunId(job.name));
      }
      if (isRefresherError(error) && error.httpStatus !== 500) {
        if (error.code === 'SHUTTING_DOWN') reply.header('retry-after', '30');
        return replyError(reply, error.code, error.message);
      }
      throw error;
    }
  });

  api.post<{ Params: { job: string } }>('/jobs/:job/rollback', async (request, reply) => {
    if (!backend.accepting()) {
      reply.header('retry-after', '30');
      return replyError(reply, 'SHUTTING_DOWN', 'the service is shutting down and takes no new runs; try again when it is back');
    }
    const job = findJob(request.params.job);
    if (!job) return replyError(reply, 'JOB_NOT_FOUND', noJob(request.params.job));
    const body = triggerBody.safeParse(request.body);
    if (!body.success) return replyError(reply, 'USAGE', problem(body.error));
    if (body.data?.dryRun) return replyError(reply, 'USAGE', 'dryRun: a rollback has no dry run; send {"reason": "…"} only');
    if (job.strategy.kind !== 'blueGreen')
      return replyError(
        reply,
        'NO_PREVIOUS_COPY',
        `job "${job.name}" uses strategy ${job.strategy.kind}; only blueGreen keeps a previous copy to roll back to`,
      );
    try {
      const run = await backend.trigger(job, {
        by: request.principal?.name ?? 'unknown',
        ...(body.data?.reason ? { reason: body.data.reason } : {}),
        dryRun: false,
        operation: 'rollback',
      });
      reply.header('location', runPath(run.id));
      return reply.code(202).send({ run: summarizeRun(run), links: { self: runPath(run.id) } });
    } catch (error) {
      if (isRefresherError(error) && error.code === 'JOB_BUSY') return jobBusy(reply, job.name, backend.runningRunId(job.name));
      throw error;
    }
  });
}

/**
 * 409 job-busy naming the run that holds the job. The lock may instead be held for a moment by the
 * service's own upkeep (start-up recovery settling earlier runs, the sweep of previous copies), which
 * is not a run a client could look up: then no run id, and Retry-After.
 */
function jobBusy(reply: FastifyReply, job: string, holder: string | undefined) {
  const runId = holder !== undefined && isRunId(holder) ? holder : undefined;
  if (!runId) {
    reply.header('retry-after', '5');
    return replyError(
      reply,
      'JOB_BUSY',
      `job "${job}" is busy with the service's own upkeep (settling earlier runs after a start or a change of leader, or removing a previous copy); try again in a few seconds`,
      { runId: null },
    );
  }
  return replyError(
    reply,
    'JOB_BUSY',
    `job "${job}" is already running (run ${runId}); wait for that run to finish, one refresh per job runs at a time`,
    {
      runId,
      links: { run: runPath(runId) },
    },
  );
}
