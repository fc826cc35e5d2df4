import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { type RunRecord, TERMINAL_RUN_STATUSES } from '../run/record.js';
import type { ApiBackend } from './backend.js';
import type { LiveEvent } from './live-feed.js';
import { replyError } from './reply.js';

/**
 * Live routes: the Server-Sent Events stream behind the status page and
 * `trigger --wait`, and the long poll of GET /runs/{id}?wait=. Both end when
 * the service shuts down, so they never hold up its exit.
 */

/** How long a stream may stay silent before a comment line keeps proxies from closing it. */
const HEARTBEAT_MS = 15_000;
/** A client this far behind (bytes not yet sent) is cut off; it reconnects and reads the jobs list again. */
const MAX_BACKLOG = 1 << 20;
export const MAX_WAIT_SECONDS = 300;

export const eventsQuery = z.strictObject(
  {
    job: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, { error: 'must be a job name' })
      .optional()
      .describe('only events of this job'),
  },
  {
    error: (issue) =>
      issue.code === 'unrecognized_keys' ? `unknown parameter ${issue.keys.join(', ')}; only "job" is allowed` : undefined,
  },
);

export const waitQuery = z.object({
  wait: z
    .string()
    .regex(/^\d{1,3}$/, { error: `must be a whole number of seconds 0-${MAX_WAIT_SECONDS}` })
    .transform(Number)
    .refine((n) => n <= MAX_WAIT_SECONDS, { error: `must be a whole number of seconds 0-${MAX_WAIT_SECONDS}` })
    .optional()
    .describe('answer when the run has ended, or after this many seconds, whichever comes first'),
});

/** Ends every stream and long poll when the app closes. */
export class Closing {
  readonly #controller = new AbortController();
  get signal(): AbortSignal {
    return this.#controller.signal;
  }
  close(): void {
    this.#controller.abort();
  }
}

const eventOf = (job: string | undefined) => (event: LiveEvent) =>
  !job || (event.type === 'job' ? event.data.name === job : event.data.job === job);

export function registerLiveRoutes(api: FastifyInstance, backend: ApiBackend, closing: Closing): void {
  api.get('/events', async (request, reply) => {
    const query = eventsQuery.safeParse(request.query);
    if (!query.success)
      return replyError(reply, 'USAGE', query.error.issues.map((i) => `${i.path.join('.') || 'query'}: ${i.message}`).join('; '));
    const job = query.data.job;
    if (job !== undefined && !backend.job(job)) return replyError(reply, 'JOB_NOT_FOUND', `no job named "${job}"`);
    if (closing.signal.aborted) {
      reply.header('retry-after', '30');
      return replyError(reply, 'SHUTTING_DOWN', 'the service is shutting down; reconnect when it is back');
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
      'x-request-id': request.id,
    });
    res.socket?.setNoDelay(true);
    const wanted = eventOf(job);
    const send = (text: string) => {
      if (res.writableLength > MAX_BACKLOG) {
        request.log.warn({ backlog: res.writableLength }, 'event stream client too slow; closing its stream');
        res.destroy();
        return;
      }
      res.write(text);
    };
    // retry: how long the browser's EventSource (and the page) wait before reconnecting.
    send(`retry: 3000\nevent: hello\ndata: ${JSON.stringify({ jobs: backend.jobs().length, at: new Date().toISOString() })}\n\n`);
    const unsubscribe = backend.subscribe((event) => {
      if (wanted(event)) send(`event: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`);
    });
    const heartbeat = setInterval(() => send(': keep-alive\n\n'), HEARTBEAT_MS);
    heartbeat.unref();
    const end = () => {
      clearInterval(heartbeat);
      unsubscribe();
      closing.signal.removeEventListener('abort', end);
      if (!res.writableEnded) res.end();
    };
    closing.signal.addEventListener('abort', end);
    res.on('close', end);
  });
}

/**
 * The run once it has ended, or as it is after `seconds`. Listens before it
 * reads, so an end between the read and the listening is not missed.
 */
export async function waitForEnd(backend: ApiBackend, id: string, seconds: number, closing: Closing): Promise<RunRecord | undefined> {
  let wake: () => void = () => undefined;
  const woken = new Promise<void>((resolve) => {
    wake = resolve;
  });
  const unsubscribe = backend.subscribe((event) => {
    if (event.type === 'run' && event.data.id === id && TERMINAL_RUN_STATUSES.has(event.data.status)) wake();
    if (event.type === 'job' && event.data.lastRun?.id === id) wake();
  });
  const timer = setTimeout(wake, seconds * 1000);
  closing.signal.addEventListener('abort', wake);
  try {
    const first = await backend.getRun(id);
    if (!first || TERMINAL_RUN_STATUSES.has(first.status) || seconds === 0) return first;
    await woken;
    return await backend.getRun(id);
  } finally {
    clearTimeout(timer);
    unsubscribe();
    closing.signal.removeEventListener('abort', wake);
  }
}
