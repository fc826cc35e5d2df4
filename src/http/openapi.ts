import { z } from 'zod';
import {
  CancelAccepted,
  ErrorResponse,
  HealthResponse,
  JobDetailResponse,
  JobListResponse,
  ReadyResponse,
  RunAccepted,
  RunListResponse,
  RunRecordResponse,
  SuspensionResponse,
  WhoAmIResponse,
} from './api-schemas.js';
import { jobsQuery, runsQuery, triggerBody } from './routes.js';
import { reasonBody } from './routes-actions.js';
import { eventsQuery, waitQuery } from './routes-live.js';

/**
 * The OpenAPI 3.1 description of the HTTP API, generated from the zod schemas
 * the routes validate their input with (query strings, bodies) and the ones
 * their answers are built to (api-schemas.ts). Served at /openapi.json, and
 * as a page for people at /docs. A contract test checks that every route the
 * app registers is here, and that real answers validate against it.
 */

type Auth = 'none' | 'read' | 'write';

interface Operation {
  method: 'get' | 'post';
  path: string;
  summary: string;
  description?: string;
  tag: string;
  auth: Auth;
  path_params?: Record<string, string>;
  query?: z.ZodType;
  body?: z.ZodType;
  /** status → description and schema (a zod schema, or a media type with no schema for text and streams). */
  responses: Record<string, { description: string; schema?: z.ZodType; mediaType?: string }>;
}

const JOB = { job: 'job name (a DNS label)' };
const RUN = { id: 'run id, e.g. 20261125T101502113Z-3fa2c1' };
const err = (description: string) => ({ description, schema: ErrorResponse });
const AUTH_ERRORS = {
  '401': err(
    '`unauthenticated`: no `Authorization: Bearer <token>` header; `invalid-token`: a token that is not configured (`WWW-Authenticate: Bearer` is set)',
  ),
  '403': err('`forbidden`: a read-only token on a write route'),
};

export const OPERATIONS: readonly Operation[] = [
  {
    method: 'get',
    path: '/healthz',
    tag: 'operations',
    auth: 'none',
    summary: 'Liveness',
    responses: { '200': { description: 'the process is alive', schema: HealthResponse } },
  },
  {
    method: 'get',
    path: '/readyz',
    tag: 'operations',
    auth: 'none',
    summary: 'Readiness',
    description: 'Config loaded, the run store answers, the scheduler runs and the service takes runs.',
    responses: {
      '200': { description: 'ready', schema: ReadyResponse },
      '503': { description: 'not ready; `checks` says which not', schema: ReadyResponse },
    },
  },
  {
    method: 'get',
    path: '/metrics',
    tag: 'operations',
    auth: 'none',
    summary: 'Prometheus metrics',
    responses: { '200': { description: 'Prometheus text format', mediaType: 'text/plain' } },
  },
  {
    method: 'get',
    path: '/',
    tag: 'status page',
    auth: 'none',
    summary: 'The status page',
    description:
      'HTML. The jobs table is rendered on the server and works without JavaScript or a token; with a token (kept in sessionStorage) the script adds run pages, actions and live updates.',
    responses: { '200': { description: 'the page', mediaType: 'text/html' } },
  },
  {
    method: 'get',
    path: '/ui/{file}',
    tag: 'status page',
    auth: 'none',
    summary: "The status page's script and stylesheet",
    path_params: { file: 'app.js, render.js or app.css' },
    responses: {
      '200': { description: 'the file (ETag; `If-None-Match` answers 304)', mediaType: 'text/javascript' },
      '304': { description: 'unchanged' },
      '404': err('no such file'),
    },
  },
  {
    method: 'get',
    path: '/openapi.json',
    tag: 'description',
    auth: 'none',
    summary: 'This description (OpenAPI 3.1)',
    responses: { '200': { description: 'the OpenAPI document', mediaType: 'application/json' } },
  },
  {
    method: 'get',
    path: '/docs',
    tag: 'description',
    auth: 'none',
    summary: 'This description as a page for people',
    responses: { '200': { description: 'HTML', mediaType: 'text/html' } },
  },
  {
    method: 'get',
    path: '/api/v1/whoami',
    tag: 'session',
    auth: 'read',
    summary: 'Who the token is, and what it may do',
    responses: {
      '200': { description: 'the token name, whether it is read-only, and its actions', schema: WhoAmIResponse },
      ...AUTH_ERRORS,
    },
  },
  {
    method: 'get',
    path: '/api/v1/jobs',
    tag: 'jobs',
    auth: 'read',
    summary: 'Jobs, in config order, with their state now',
    query: jobsQuery,
    responses: { '200': { description: 'a page of jobs', schema: JobListResponse }, '400': err('bad `limit` or `cursor`'), ...AUTH_ERRORS },
  },
  {
    method: 'get',
    path: '/api/v1/jobs/{job}',
    tag: 'jobs',
    auth: 'read',
    summary: 'One job: schedule, next runs, warnings, current, last run and last success',
    path_params: JOB,
    responses: { '200': { description: 'the job', schema: JobDetailResponse }, '404': err('no such job'), ...AUTH_ERRORS },
  },
  {
    method: 'get',
    path: '/api/v1/jobs/{job}/runs',
    tag: 'runs',
    auth: 'read',
    summary: "A job's runs, newest first",
    path_params: JOB,
    query: runsQuery,
    responses: {
      '200': { description: 'run summaries', schema: RunListResponse },
      '400': err('bad `limit` or `before`'),
      '404': err('no such job'),
      ...AUTH_ERRORS,
    },
  },
  {
    method: 'post',
    path: '/api/v1/jobs/{job}/runs',
    tag: 'runs',
    auth: 'write',
    summary: 'Start a run now',
    path_params: JOB,
    body: triggerBody,
    responses: {
      '202': { description: 'started or queued; `Location` names the run', schema: RunAccepted },
      '400': err('malformed body'),
      '404': err('no such job'),
      '409': err(
        '`job-busy`: the job is running or queued (`runId` names that run; null, with Retry-After, while the service itself holds the job for a moment for upkeep); `job-suspended`: suspended and no manual runs allowed',
      ),
      '413': err('body over server.bodyLimitBytes'),
      '503': err('shutting down (`Retry-After` is set)'),
      ...AUTH_ERRORS,
    },
  },
  {
    method: 'post',
    path: '/api/v1/jobs/{job}/rollback',
    tag: 'runs',
    auth: 'write',
    summary: 'Roll a blueGreen job back to its previous copy',
    description:
      'Starts a rollback run: the previous copy, kept beside the current one by the blueGreen strategy, becomes the target again. There is no dry run (`dryRun: true` is refused).',
    path_params: JOB,
    body: triggerBody,
    responses: {
      '202': { description: 'started or queued; `Location` names the run', schema: RunAccepted },
      '400': err('malformed body, or `dryRun: true`'),
      '404': err('no such job'),
      '409': err(
        '`no-previous-copy`: the job uses a strategy that keeps no previous copy (`recreate`); `job-busy`: the job is running or queued (`runId` names that run; null, with Retry-After, while the service itself holds the job for a moment for upkeep)',
      ),
      '413': err('body over server.bodyLimitBytes'),
      '503': err('shutting down (`Retry-After` is set)'),
      ...AUTH_ERRORS,
    },
  },
  {
    method: 'get',
    path: '/api/v1/runs/{id}',
    tag: 'runs',
    auth: 'read',
    summary: 'The whole run record; while the run is under way, also `live` (phase and progress)',
    description:
      'With `wait`, a long poll: the answer comes when the run has ended, or after `wait` seconds with the run as it is then, whichever is first.',
    path_params: RUN,
    query: waitQuery,
    responses: {
      '200': { description: 'the run record', schema: RunRecordResponse },
      '400': err('bad `wait`'),
      '404': err('no such run'),
      ...AUTH_ERRORS,
    },
  },
  {
    method: 'post',
    path: '/api/v1/runs/{id}/cancel',
    tag: 'runs',
    auth: 'write',
    summary: 'Cancel a run at its next safe point',
    description:
      'The run stops at its next phase boundary (a queued run at once) and ends `cancelled`, with who and why in `cancelled`. `message` says what that means for the copy: after teardown in recreate mode, that the copy is down until the job runs again.',
    path_params: RUN,
    body: reasonBody,
    responses: {
      '202': { description: 'the run will stop', schema: CancelAccepted },
      '400': err('malformed body'),
      '404': err('no such run'),
      '409': err('`run-finished`: the run has already ended; `run-not-here`: another process is doing it'),
      ...AUTH_ERRORS,
    },
  },
  ...(['suspend', 'resume'] as const).map(
    (action): Operation => ({
      method: 'post',
      path: `/api/v1/jobs/{job}/${action}`,
      tag: 'jobs',
      auth: 'write',
      summary: action === 'suspend' ? 'Suspend a job: its scheduled runs are skipped' : 'Resume a job: its scheduled runs happen again',
      description:
        "Kept in the history store (it survives restarts) and overrides the config's `suspend` until changed again. Manual runs follow `allowManualWhenSuspended`.",
      path_params: JOB,
      body: reasonBody,
      responses: {
        '200': { description: "the job's suspension now", schema: SuspensionResponse },
        '400': err('malformed body'),
        '404': err('no such job'),
        ...AUTH_ERRORS,
      },
    }),
  ),
  {
    method: 'get',
    path: '/api/v1/events',
    tag: 'live',
    auth: 'read',
    summary: 'Live changes, as Server-Sent Events',
    description:
      'A `text/event-stream`: `hello` on connect, then `job` (data: a JobListItem) whenever a job changes and `run` (data: the run, its event, phase, progress and phases) as runs move. A comment line every 15 s keeps proxies from closing it. After a reconnect, read /api/v1/jobs again: events are not replayed. Browsers: EventSource cannot send a token, so read the stream with the Fetch API.',
    query: eventsQuery,
    responses: {
      '200': { description: 'the stream', mediaType: 'text/event-stream' },
      '400': err('bad parameter'),
      '404': err('no such job'),
      ...AUTH_ERRORS,
    },
  },
];

const asJsonSchema = (schema: z.ZodType, io: 'input' | 'output') =>
  z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Record<string, unknown>;

/** Moves a schema's $defs into `components` and points its refs there. */
function hoist(schema: Record<string, unknown>, components: Record<string, unknown>): Record<string, unknown> {
  const { $defs, $schema: _, ...rest } = schema as { $defs?: Record<string, unknown>; $schema?: string };
  const rewrite = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(rewrite);
    if (value && typeof value === 'object') {
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => [
          k,
          k === '$ref' && typeof v === 'string' ? v.replace('#/$defs/', '#/components/schemas/') : rewrite(v),
        ]),
      );
    }
    return value;
  };
  for (const [name, def] of Object.entries($defs ?? {})) components[name] = rewrite(def);
  return rewrite(rest) as Record<string, unknown>;
}

function queryParameters(query: z.ZodType, components: Record<string, unknown>) {
  const json = hoist(asJsonSchema(query, 'input'), components) as {
    properties?: Record<string, Record<string, unknown>>;
    required?: string[];
  };
  return Object.entries(json.properties ?? {}).map(([name, schema]) => {
    const { description, ...rest } = schema;
    return { name, in: 'query', required: json.required?.includes(name) ?? false, ...(description ? { description } : {}), schema: rest };
  });
}

/** Request bodies are optional on every route (`nullish`): the schema of the object inside. */
function bodySchema(body: z.ZodType, components: Record<string, unknown>) {
  const json = hoist(asJsonSchema(body, 'input'), components) as { anyOf?: Array<Record<string, unknown>> };
  return json.anyOf?.find((s) => s.type === 'object') ?? json;
}

let cached: Record<string, unknown> | undefined;

export function openApiDocument(): Record<string, unknown> {
  if (cached) return cached;
  const components: Record<string, unknown> = {};
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) {
    const parameters = [
      ...Object.entries(op.path_params ?? {}).map(([name, description]) => ({
        name,
        in: 'path',
        required: true,
        description,
        schema: { type: 'string' },
      })),
      ...(op.query ? queryParameters(op.query, components) : []),
    ];
    const responses = Object.fromEntries(
      Object.entries(op.responses).map(([status, r]) => [
        status,
        {
          description: r.description,
          ...(r.schema
            ? { content: { 'application/json': { schema: hoist(asJsonSchema(r.schema, 'output'), components) } } }
            : r.mediaType
              ? { content: { [r.mediaType]: {} } }
              : {}),
        },
      ]),
    );
    paths[op.path] ??= {};
    (paths[op.path] as Record<string, unknown>)[op.method] = {
      operationId: `${op.method}${op.path.replace(/[{}]/g, '').replace(/[/.-](\w)/g, (_m, c: string) => c.toUpperCase())}`,
      summary: op.summary,
      ...(op.description ? { description: op.description } : {}),
      tags: [op.tag],
      security: op.auth === 'none' ? [] : [{ bearer: [] }],
      'x-db-refresher-auth': op.auth,
      ...(parameters.length ? { parameters } : {}),
      ...(op.body
        ? { requestBody: { required: false, content: { 'application/json': { schema: bodySchema(op.body, components) } } } }
        : {}),
      responses,
    };
  }
  cached = {
    openapi: '3.1.0',
    info: {
      title: 'db-refresher',
      version: '1',
      description:
        'Refresh test, QA and reporting PostgreSQL databases from production. Everything under /api needs `Authorization: Bearer <token>`; `read` routes take any configured token, `write` routes a token without `readOnly`. Errors are `{"error": "<code>", "message": "<what to do>"}`. Within /api/v1 fields are only added, never removed or retyped.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    tags: [...new Set(OPERATIONS.map((o) => o.tag))].map((name) => ({ name })),
    paths,
    components: { schemas: components, securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
  };
  return cached;
}
