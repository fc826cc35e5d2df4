import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiBackend } from './backend.js';
import { JOB_TABLE_HEAD, renderJobRow } from './ui/render.js';

/**
 * The status page: `/` is one HTML page with the jobs table rendered on the
 * server (it works without JavaScript and without a token, showing what
 * /metrics already shows: job names, statuses, ages and schedules), plus a
 * small script and stylesheet from /ui/, served from the package. The script
 * asks for a token, keeps it in sessionStorage, and talks to /api/v1 like any
 * client: run pages, actions, and live updates over /api/v1/events.
 */

const ASSETS: Readonly<Record<string, string>> = {
  'app.js': 'text/javascript; charset=utf-8',
  'render.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/** No inline script or style, nothing from elsewhere. */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

interface Asset {
  type: string;
  body: Buffer;
  gzip: Buffer;
  etag: string;
}

function loadAssets(): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const [name, type] of Object.entries(ASSETS)) {
    const body = readFileSync(new URL(`./ui/${name}`, import.meta.url));
    assets.set(name, { type, body, gzip: gzipSync(body), etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"` });
  }
  return assets;
}

const acceptsGzip = (request: FastifyRequest) => /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));

function send(request: FastifyRequest, reply: FastifyReply, type: string, body: Buffer, gzip?: Buffer) {
  reply.header('content-type', type).header('vary', 'accept-encoding').header('x-content-type-options', 'nosniff');
  if (acceptsGzip(request)) return reply.header('content-encoding', 'gzip').send(gzip ?? gzipSync(body, { level: 4 }));
  return reply.send(body);
}

export function registerUiRoutes(app: FastifyInstance, backend: ApiBackend): void {
  const assets = loadAssets();

  app.get('/', async (request, reply) => {
    const now = Date.now();
    const jobs = backend.jobs();
    const rows = jobs.map((job) => renderJobRow(backend.jobListItem(job), now)).join('\n');
    reply.header('content-security-policy', CSP).header('cache-control', 'no-store').header('referrer-policy', 'no-referrer');
    return send(request, reply, 'text/html; charset=utf-8', Buffer.from(page(rows, jobs.length, assets)));
  });

  app.get<{ Params: { file: string } }>('/ui/:file', async (request, reply) => {
    const asset = assets.get(request.params.file);
    if (!asset) return reply.callNotFound();
    reply.header('etag', asset.etag).header('cache-control', 'no-cache');
    if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
    return send(request, reply, asset.type, asset.body, asset.gzip);
  });
}

function page(rows: string, count: number, assets: Map<string, Asset>): string {
  // The asset's hash in its URL: a new version is fetched at once, an unchanged one revalidates cheaply.
  const v = (name: string) => `/ui/${name}?v=${encodeURIComponent(assets.get(name)?.etag.replaceAll('"', '') ?? '')}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>db-refresher</title>
<link rel="stylesheet" href="${v('app.css')}">
<script type="module" src="${v('app.js')}"></script>
</head>
<body>
<header class="top">
  <h1><a href="#/">db-refresher</a></h1>
  <div id="session" class="session"><span class="muted">Without JavaScript this page shows the jobs only.</span></div>
  <div id="live" class="live" role="status" aria-live="polite"></div>
</header>
<main id="main">
<section id="jobs-view" aria-labelledby="jobs-title">
  <h2 id="jobs-title">Jobs <span class="muted small">(${count})</span></h2>
  <div id="notice" role="status" aria-live="polite"></div>
  <table id="jobs" class="jobs">
  <caption class="visually-hidden">Refresh jobs: status, data age, last and next run</caption>
  ${JOB_TABLE_HEAD}
  <tbody>
${rows}
  </tbody>
  </table>
</section>
<section id="detail-view" hidden aria-live="polite"></section>
</main>
<footer class="foot muted small">API: <a href="/docs">/docs</a> · <a href="/openapi.json">/openapi.json</a> · <a href="/metrics">/metrics</a></footer>
</body>
</html>
`;
}
