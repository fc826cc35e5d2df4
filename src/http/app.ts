import { randomUUID } from 'node:crypto';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Logger } from '../observe/logger.js';
import { type ApiToken, INSUFFICIENT_SCOPE, type Principal, TokenAuth } from './auth.js';
import type { ApiBackend } from './backend.js';
import { registerDocsRoutes } from './docs-routes.js';
import { registerForwarding } from './forward.js';
import { clientErrorHandler, frameworkErrors, handleError, RouteMethods, registerJsonParser } from './framework-errors.js';
import { replyError } from './reply.js';
import { registerApiRoutes } from './routes.js';
import { type Capabilities, registerActionRoutes } from './routes-actions.js';
import { Closing, registerLiveRoutes } from './routes-live.js';
import { registerUiRoutes } from './ui-routes.js';

/**
 * The HTTP API, built without listening: tests use inject() and a real socket
 * alike. /healthz, /readyz and /metrics are open; everything under /api needs
 * a bearer token. Every error is JSON {error, message}; every request is
 * logged once, with its request id (taken from X-Request-Id when it looks like
 * one, else generated) and echoed in the X-Request-Id response header.
 */

export interface AppOptions {
  backend: ApiBackend;
  tokens: readonly ApiToken[];
  log: Logger;
  bodyLimitBytes: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyInstance {
    /** Every route as registered ("GET /api/v1/jobs/:job"): the contract test checks each is described in /openapi.json. */
    registeredRoutes: string[];
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,100}$/;

/** Logs one line per request, when it completes, with the request id, method, path, status and time. */
class OneLineLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = {
      method: request.method,
      // Not "url": the logger redacts that key (webhook URLs carry tokens).
      path: request.url,
      statusCode: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 10) / 10,
      ...(request.principal ? { by: request.principal.name } : {}),
    };
    if (error || reply.statusCode >= 500) reply.log.error({ ...line, err: error }, 'request failed');
    else reply.log.info(line, 'request');
  }
}

export function buildApp(options: AppOptions): FastifyInstance {
  const { backend } = options;
  const app = Fastify({
    loggerInstance: options.log.child({ component: 'http' }) as FastifyBaseLogger,
    logController: new OneLineLog(),
    bodyLimit: options.bodyLimitBytes,
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // Refuse new requests while closing, and do not let idle keep-alive sockets hold shutdown up.
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    keepAliveTimeout: 5000,
    requestTimeout: 30_000,
    frameworkErrors: frameworkErrors(options.bodyLimitBytes),
    clientErrorHandler: clientErrorHandler(options.log.child({ component: 'http' })),
  });
  registerJsonParser(app);
  const routes = new RouteMethods();
  // Every route, as registered: optional features (rollback) are offered only once their route exists.
  const capabilities: Capabilities = {};
  const registered: string[] = [];
  app.decorate('registeredRoutes', registered);
  app.addHook('onRoute', (route) => {
    routes.add(route.method, route.url);
    for (const method of [route.method].flat()) registered.push(`${method} ${route.url}`);
    if (/\/rollback$/.test(route.url) && route.method === 'POST') capabilities.rollback = route.url.replace(/:([a-z]+)/g, '{$1}');
  });

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  app.setErrorHandler((error: FastifyError, request, reply) => handleError(error, request, reply, options.bodyLimitBytes));

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const allowed = routes.allowed(path);
    if (allowed.length > 0) {
      reply.header('allow', allowed.join(', '));
      return replyError(reply, 'METHOD_NOT_ALLOWED', `${path} does not answer ${request.method}; it answers ${allowed.join(', ')}`);
    }
    return replyError(reply, 'NOT_FOUND', `no route ${request.method} ${path.slice(0, 200)}; see /api/v1/jobs`);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const readiness = await backend.readiness();
    return reply.code(readiness.ready ? 200 : 503).send({ status: readiness.ready ? 'ready' : 'not-ready', checks: readiness.checks });
  });

  app.get('/metrics', async (_request, reply) => {
    const { contentType, body } = await backend.metricsText();
    return reply.type(contentType).send(body);
  });

  registerUiRoutes(app, backend);
  registerDocsRoutes(app);

  // Streams and long polls end when the server closes, so they never hold up shutdown.
  const closing = new Closing();
  app.addHook('preClose', async () => closing.close());

  const auth = new TokenAuth(options.tokens);
  app.register(
    async (api) => {
      api.addHook('onRequest', async (request, reply) => {
        const result = auth.check(request.headers.authorization);
        if (!result.ok) {
          reply.header('www-authenticate', result.challenge);
          return replyError(reply, result.code, result.message);
        }
        if (result.principal.readOnly && request.method !== 'GET' && request.method !== 'HEAD') {
          reply.header('www-authenticate', INSUFFICIENT_SCOPE);
          return replyError(reply, 'FORBIDDEN', `token "${result.principal.name}" is read-only; it may only read, not start runs`);
        }
        request.principal = result.principal;
      });
      registerForwarding(api, backend);
      registerApiRoutes(api, backend, closing);
      registerLiveRoutes(api, backend, closing);
      registerActionRoutes(api, backend, () => capabilities);
    },
    { prefix: '/api/v1' },
  );

  return app;
}
