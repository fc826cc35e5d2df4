import type { FastifyInstance } from 'fastify';
import { OPERATIONS, openApiDocument } from './openapi.js';
import { escapeHtml } from './ui/render.js';

/** /openapi.json, and /docs: the same description as one plain page for people (no script). */
export function registerDocsRoutes(app: FastifyInstance): void {
  app.get('/openapi.json', async (_request, reply) => reply.type('application/json; charset=utf-8').send(openApiDocument()));

  let page: string | undefined;
  app.get('/docs', async (_request, reply) => {
    page ??= docsPage();
    return reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', "default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'")
      .send(page);
  });
}

function schemaText(schema: unknown): string {
  return escapeHtml(JSON.stringify(schema, null, 2));
}

function docsPage(): string {
  const doc = openApiDocument() as {
    info: { description: string };
    paths: Record<string, Record<string, Record<string, unknown>>>;
    components: { schemas: Record<string, unknown> };
  };
  const sections = OPERATIONS.map((op) => {
    const o = doc.paths[op.path]?.[op.method] as {
      parameters?: Array<{ name: string; in: string; required: boolean; description?: string; schema: unknown }>;
      requestBody?: { content: Record<string, { schema: unknown }> };
      responses: Record<string, { description: string; content?: Record<string, { schema?: unknown }> }>;
    };
    const id = `${op.method}-${op.path}`.replace(/[^a-z0-9]+/gi, '-');
    const params = o.parameters?.length
      ? `<h4>Parameters</h4><ul>${o.parameters
          .map(
            (p) =>
              `<li><code>${escapeHtml(p.name)}</code> (${escapeHtml(p.in)}${p.required ? ', required' : ''})${p.description ? `: ${escapeHtml(p.description)}` : ''} <code class="muted">${escapeHtml(JSON.stringify(p.schema))}</code></li>`,
          )
          .join('')}</ul>`
      : '';
    const body = o.requestBody
      ? `<h4>Body (optional, JSON)</h4><pre class="raw">${schemaText(o.requestBody.content['application/json']?.schema)}</pre>`
      : '';
    const responses = Object.entries(o.responses)
      .map(([status, r]) => {
        const media = r.content ? Object.keys(r.content)[0] : undefined;
        const schema = media ? r.content?.[media]?.schema : undefined;
        const ref = (schema as { $ref?: string; properties?: unknown } | undefined)?.$ref?.split('/').pop();
        const refs = JSON.stringify(schema ?? {}).match(/#\/components\/schemas\/(\w+)/g) ?? [];
        const names = [...new Set(refs.map((r) => r.split('/').pop()))];
        return `<li><strong>${escapeHtml(status)}</strong> ${escapeHtml(r.description)}${media ? ` <span class="muted">(${escapeHtml(media)}${ref ? `: ${escapeHtml(ref)}` : ''})</span>` : ''}${
          names.length ? ` — uses ${names.map((n) => `<a href="#schema-${escapeHtml(n)}">${escapeHtml(n)}</a>`).join(', ')}` : ''
        }</li>`;
      })
      .join('');
    return `<section id="${id}" class="op"><h3><code>${op.method.toUpperCase()} ${escapeHtml(op.path)}</code> <span class="badge badge-${op.auth === 'write' ? 'failed' : op.auth === 'read' ? 'running' : 'pending'}">${op.auth === 'none' ? 'no token' : `${op.auth} token`}</span></h3>
<p>${escapeHtml(op.summary)}</p>${op.description ? `<p>${escapeHtml(op.description)}</p>` : ''}${params}${body}<h4>Responses</h4><ul>${responses}</ul></section>`;
  }).join('\n');
  const schemas = Object.entries(doc.components.schemas)
    .map(
      ([name, schema]) =>
        `<section id="schema-${escapeHtml(name)}"><h3>${escapeHtml(name)}</h3><pre class="raw">${schemaText(schema)}</pre></section>`,
    )
    .join('\n');
  const toc = OPERATIONS.map(
    (op) =>
      `<li><a href="#${`${op.method}-${op.path}`.replace(/[^a-z0-9]+/gi, '-')}"><code>${op.method.toUpperCase()} ${escapeHtml(op.path)}</code></a> ${escapeHtml(op.summary)}</li>`,
  ).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>db-refresher API</title><link rel="stylesheet" href="/ui/app.css"></head>
<body><header class="top"><h1><a href="/">db-refresher</a> API</h1><a href="/openapi.json">openapi.json</a></header>
<main><p>${escapeHtml(doc.info.description)}</p>
<nav aria-label="Routes"><h2>Routes</h2><ul>${toc}</ul></nav>
<h2>Routes in detail</h2>${sections}
<h2>Schemas</h2>${schemas}
</main></body></html>`;
}
