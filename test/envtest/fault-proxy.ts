/**
 * A fault-injecting reverse proxy on loopback, in front of the test API server, for reliability tests:
 * a share of requests answered 500 or 429 (with Retry-After), a response delay, and watch streams cut
 * on demand or a set time after they open. Faults change at runtime through the returned object.
 *
 * Shares are deterministic by default: n eligible requests see n × rate faults, ± 1, evenly spread, so a
 * test can assert counts. Pass `random` for randomly spread faults.
 *
 * Bounded: it answers at most `maxRequests` requests (then 503s), closes itself after `maxLifetimeMs`,
 * and close() ends every open connection and timer.
 */
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export interface FaultSettings {
  /** Share (0..1) of eligible requests answered 500 InternalError. */
  errorRate: number;
  /** Share (0..1) of eligible requests answered 429 TooManyRequests with Retry-After. */
  throttleRate: number;
  /** Retry-After seconds on injected 429s. */
  retryAfterSeconds: number;
  /** Delay before each request is forwarded (or failed). */
  delayMs: number;
  /** Cut every watch stream this long after it opens; null: leave watches alone. */
  cutWatchesAfterMs: number | null;
  /** How a cut looks to the client: 'destroy' resets the connection, 'end' ends the response cleanly. */
  cutMode: CutMode;
  /** Which requests faults apply to (delays and cuts included); default: all. */
  eligible: (req: { method: string; path: string; watch: boolean }) => boolean;
}

export type CutMode = 'destroy' | 'end';

export interface FaultProxyOptions {
  /** The API server, e.g. TestApiServer.server. */
  target: URL;
  /** Serve TLS with this certificate (PEM); plain HTTP without. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  faults?: Partial<FaultSettings>;
  /** Replaces the deterministic spreading of faults; must return numbers in [0, 1). */
  random?: () => number;
  /** Requests answered before the proxy answers only 503. Default 100 000. */
  maxRequests?: number;
  /** The proxy closes itself after this long. Default 30 minutes. */
  maxLifetimeMs?: number;
}

export interface FaultProxyStats {
  requests: number;
  forwarded: number;
  injected500: number;
  injected429: number;
  watchesOpened: number;
  watchesCut: number;
  openWatches: number;
}

export interface FaultProxy {
  /** http(s)://127.0.0.1:<port> */
  readonly url: URL;
  /** A copy of `base` whose current cluster points at the proxy. */
  kubeConfig(base: KubeConfig): KubeConfig;
  /** Changes some settings; the others keep their values. */
  setFaults(faults: Partial<FaultSettings>): void;
  /** Back to forwarding everything untouched. */
  clearFaults(): void;
  /** Cuts the watch streams open now; returns how many. */
  cutWatches(mode?: CutMode): number;
  stats(): FaultProxyStats;
  close(): Promise<void>;
}

const NO_FAULTS: FaultSettings = {
  errorRate: 0,
  throttleRate: 0,
  retryAfterSeconds: 1,
  delayMs: 0,
  cutWatchesAfterMs: null,
  cutMode: 'destroy',
  eligible: () => true,
};

interface OpenWatch {
  res: ServerResponse;
  upstream: IncomingMessage | undefined;
  timer: NodeJS.Timeout | undefined;
}

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  let faults: FaultSettings = { ...NO_FAULTS, ...opts.faults };
  validate(faults);
  const maxRequests = opts.maxRequests ?? 100_000;
  const counters = { requests: 0, forwarded: 0, injected500: 0, injected429: 0, watchesOpened: 0, watchesCut: 0 };
  // One draw per eligible request, split into [0, errorRate) → 500, then throttleRate → 429. The default
  // draws are a golden-ratio (Weyl) sequence: evenly spread, so n requests see n × rate faults ± 1.
  let weyl = 0;
  const draw = (): number => {
    if (opts.random) {
      return opts.random();
    }
    weyl = (weyl + 0.6180339887498949) % 1;
    return weyl;
  };
  const watches = new Set<OpenWatch>();
  const sockets = new Set<Socket>();
  const pendingDelays = new Set<NodeJS.Timeout>();
  const forward = opts.target.protocol === 'https:' ? httpsRequest : httpRequest;

  const cut = (w: OpenWatch, mode: CutMode): void => {
    if (!watches.delete(w)) {
      return;
    }
    clearTimeout(w.timer);
    counters.watchesCut++;
    w.upstream?.destroy();
    if (mode === 'end') {
      w.res.end();
    } else {
      w.res.destroy();
    }
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    counters.requests++;
    if (counters.requests > maxRequests) {
      sendStatus(res, 503, 'ServiceUnavailable', `fault proxy: request budget of ${maxRequests} used up`);
      return;
    }
    const path = req.url ?? '/';
    const query = new URL(path, 'http://proxy').searchParams;
    const watch = query.get('watch') === 'true' || query.get('watch') === '1' || /\/watch\//.test(path);
    const settings = faults;
    const eligible = settings.eligible({ method: req.method ?? 'GET', path, watch });

    const proceed = (): void => {
      const u = eligible ? draw() : 1;
      if (u < settings.errorRate) {
        counters.injected500++;
        sendStatus(res, 500, 'InternalError', 'fault proxy: injected internal error');
        return;
      }
      if (u < settings.errorRate + settings.throttleRate) {
        counters.injected429++;
        res.setHeader('Retry-After', String(settings.retryAfterSeconds));
        sendStatus(res, 429, 'TooManyRequests', 'fault proxy: injected throttling, please try again later', {
          retryAfterSeconds: settings.retryAfterSeconds,
        });
        return;
      }
      counters.forwarded++;
      const headers: OutgoingHttpHeaders = { ...req.headers, host: opts.target.host };
      const upstreamReq = forward(new URL(path, opts.target), { method: req.method, headers, rejectUnauthorized: false }, (upstream) => {
        res.writeHead(upstream.statusCode ?? 502, upstream.headers);
        if (watch) {
          // A watch on a quiet resource sends no body for a long time; the client must see the response
          // start now, as it does from the API server.
          res.flushHeaders();
          const w: OpenWatch = { res, upstream, timer: undefined };
          watches.add(w);
          counters.watchesOpened++;
          const after = eligible ? faults.cutWatchesAfterMs : null;
          if (after !== null) {
            w.timer = setTimeout(() => cut(w, faults.cutMode), after);
            w.timer.unref();
          }
          res.once('close', () => {
            clearTimeout(w.timer);
            watches.delete(w);
            upstream.destroy();
          });
        }
        upstream.pipe(res);
      });
      upstreamReq.on('error', (err) => {
        if (!res.headersSent) {
          sendStatus(res, 502, 'InternalError', `fault proxy: upstream error: ${err.message}`);
        } else {
          res.destroy(err);
        }
      });
      req.pipe(upstreamReq);
    };

    if (eligible && settings.delayMs > 0) {
      const t = setTimeout(() => {
        pendingDelays.delete(t);
        proceed();
      }, settings.delayMs);
      pendingDelays.add(t);
    } else {
      proceed();
    }
  };

  const server = opts.tls ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, handle) : createHttpServer(handle);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') {
    throw new Error('fault proxy: unexpected listener address');
  }
  const url = new URL(`${opts.tls ? 'https' : 'http'}://127.0.0.1:${address.port}`);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      clearTimeout(lifetime);
      for (const t of pendingDelays) {
        clearTimeout(t);
      }
      pendingDelays.clear();
      for (const w of [...watches]) {
        cut(w, 'destroy');
      }
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) {
        s.destroy();
      }
      await closed;
    })();
    return closing;
  };
  const lifetime = setTimeout(() => void close(), opts.maxLifetimeMs ?? 30 * 60_000);
  lifetime.unref();

  return {
    url,
    kubeConfig(base: KubeConfig): KubeConfig {
      const kc = new KubeConfig();
      const current = base.getCurrentCluster();
      if (!current) {
        throw new Error('fault proxy: the base KubeConfig has no current cluster');
      }
      kc.loadFromOptions({
        clusters: base.clusters.map((c) => (c.name === current.name ? { ...c, server: url.origin, skipTLSVerify: true } : c)),
        users: base.users,
        contexts: base.contexts,
        currentContext: base.currentContext,
      });
      return kc;
    },
    setFaults(next: Partial<FaultSettings>): void {
      const merged = { ...faults, ...next };
      validate(merged);
      faults = merged;
    },
    clearFaults(): void {
      faults = { ...NO_FAULTS };
    },
    cutWatches(mode: CutMode = 'destroy'): number {
      const open = [...watches];
      for (const w of open) {
        cut(w, mode);
      }
      return open.length;
    },
    stats: () => ({ ...counters, openWatches: watches.size }),
    close,
  };
}

function validate(f: FaultSettings): void {
  for (const [name, rate] of [
    ['errorRate', f.errorRate],
    ['throttleRate', f.throttleRate],
  ] as const) {
    if (!(rate >= 0 && rate <= 1)) {
      throw new RangeError(`fault proxy: ${name} must be within 0..1, got ${rate}`);
    }
  }
  if (f.errorRate + f.throttleRate > 1) {
    throw new RangeError('fault proxy: errorRate + throttleRate must not exceed 1');
  }
  if (!(f.delayMs >= 0) || !(f.retryAfterSeconds >= 0)) {
    throw new RangeError('fault proxy: delayMs and retryAfterSeconds must be >= 0');
  }
  if (f.cutWatchesAfterMs !== null && !(f.cutWatchesAfterMs >= 0)) {
    throw new RangeError('fault proxy: cutWatchesAfterMs must be >= 0 or null');
  }
}

/** A Kubernetes Status body, so clients parse injected failures as they would real ones. */
function sendStatus(res: ServerResponse, code: number, reason: string, message: string, details?: Record<string, unknown>): void {
  const body = JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  });
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}
