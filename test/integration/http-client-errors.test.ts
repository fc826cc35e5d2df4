import { connect } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { buildApp } from '../../src/http/app.js';
import type { ApiBackend } from '../../src/http/backend.js';

/**
 * Requests that Node's HTTP parser refuses before fastify sees them, over a real
 * socket: they get the API's {error, message} shape and an X-Request-Id too.
 */

const config = parseConfig(
  'jobs:\n  - name: qa\n    source: { host: db.example.com, user: r }\n    target: { kind: local, dataDir: /tmp/qa, port: 5501 }\n',
  { source: 't.yaml', baseDir: '/tmp', env: {} },
);
const unused = () => {
  throw new Error('not used by these requests');
};
const backend: ApiBackend = {
  jobs: () => config.jobs,
  job: (name) => config.jobs.find((j) => j.name === name),
  jobListItem: unused,
  jobDetail: unused,
  listRuns: unused,
  getRun: unused,
  trigger: unused,
  runningRunId: () => undefined,
  currentRun: () => undefined,
  accepting: () => true,
  readiness: async () => ({ ready: true, checks: {} }),
  metricsText: async () => ({ contentType: 'text/plain', body: '' }),
  cancel: unused,
  setSuspended: unused,
  subscribe: () => () => undefined,
};

const app = buildApp({ backend, tokens: [], log: pino({ level: 'silent' }), bodyLimitBytes: 1024 });
let port = 0;

beforeAll(async () => {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  port = typeof address === 'object' && address ? address.port : 0;
});

afterAll(async () => {
  await app.close();
});

function raw(request: string): Promise<{ status: number; reason: string; headers: Record<string, string>; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request));
    let data = '';
    socket.on('data', (chunk) => {
      data += chunk.toString();
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', body = ''] = data.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const [, status = '0', reason = ''] = /^HTTP\/1\.1 (\d+) (.*)$/.exec(statusLine) ?? [];
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      resolve({ status: Number(status), reason, headers, body });
    });
  });
}

describe('client errors over a socket', () => {
  it('431 for headers over the limit, and for a URL longer than it', async () => {
    for (const request of [
      `GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      `GET /api/v1/jobs/${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    ]) {
      const res = await raw(request);
      expect(res.status).toBe(431);
      expect(res.reason).toBe('Request Header Fields Too Large');
      expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      expect(JSON.parse(res.body)).toEqual({
        error: 'headers-too-large',
        message: expect.stringContaining('larger than the server accepts'),
      });
    }
  });

  it('a client still uploading when refused reads the whole answer, without a reset', async () => {
    // Closing a socket with unread input makes the kernel reset the connection; a client
    // still uploading then loses the 431 and sees only ECONNRESET.
    const result = await new Promise<{ data: string; error?: string }>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let data = '';
      let error: string | undefined;
      socket.on('data', (chunk) => {
        data += chunk.toString();
      });
      socket.on('error', (e: NodeJS.ErrnoException) => {
        error = e.code ?? e.message;
      });
      socket.on('close', () => resolve({ data, error }));
      // Headers over the limit followed by a large upload, all at once: the server refuses
      // while most of it is still unread in its socket.
      socket.end(`GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}${'b'.repeat(4 * 1024 * 1024)}`);
    });
    expect(result.error).toBeUndefined();
    expect(result.data).toMatch(/^HTTP\/1\.1 431 /);
    expect(result.data).toContain('"error":"headers-too-large"');
  });

  it('400 for a request that is not HTTP', async () => {
    const res = await raw('HELLO\r\n\r\n');
    expect(res.status).toBe(400);
    expect(res.headers['x-request-id']).toBeDefined();
    expect(JSON.parse(res.body)).toEqual({ error: 'bad-request', message: 'the request is not valid HTTP' });
  });

  it('414 over a real socket carries its own status text, not "Bad Request"', async () => {
    const res = await raw(`GET /api/v1/jobs/${'a'.repeat(300)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(414);
    expect(res.reason).toBe('URI Too Long');
    expect(JSON.parse(res.body)).toMatchObject({ error: 'uri-too-long' });
  });
});
