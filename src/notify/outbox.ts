import { systemClock } from '../clock.js';
import type { Secret } from '../config/secret.js';
import type { Logger } from '../observe/logger.js';
import { describeError, type Hidden, hiddenFor, scrub } from './scrub.js';
import { signatureHeaders } from './sign.js';

/**
 * Delivers rendered notifications to webhooks: the only caller of fetch.
 *
 * - One queue per destination, delivered in order, one request at a time, at
 *   most one request per `minIntervalMs` (about one per second) to each
 *   webhook; destinations do not wait for each other.
 * - Retries network errors, timeouts, 5xx and 429 with exponential backoff
 *   (429 and 503 wait as long as Retry-After says); other 4xx and redirects
 *   are not retried. Attempts and total time per message are bounded.
 * - `send` never throws and never waits for the network on the caller's
 *   behalf: callers that do not await its promise are never slowed down.
 * - Every outcome is logged and counted (`stats()`); webhook URLs and signing
 *   secrets never appear in a log line, a result or a counter: errors are
 *   reduced to text and scrubbed first.
 * - `flush(timeoutMs)` delivers what it can within the grace period, then
 *   aborts what is in flight and drops what is queued.
 */

export interface Destination {
  name: string;
  url: Secret;
  /** Generic webhooks: sign each attempt with HMAC-SHA256 (see sign.ts). */
  signingSecret?: Secret | undefined;
}

export interface OutboxMessage {
  /** Notification id, the same on every attempt (sent as X-Db-Refresher-Delivery). */
  id: string;
  event: string;
  job?: string | undefined;
  /** The JSON request body. */
  body: string;
}

export interface DeliveryResult {
  delivered: boolean;
  attempts: number;
  /** The last HTTP status, when there was a response. */
  status?: number | undefined;
  /** Why the message was not delivered, scrubbed of secrets. */
  error?: string | undefined;
  /** Not attempted to the end: dropped on shutdown or because the queue was full. */
  dropped?: boolean | undefined;
}

export interface OutboxOptions {
  /** Minimum time between two requests to the same destination. */
  minIntervalMs: number;
  /** Attempts per message, the first included. */
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** Random spread of each backoff, as a fraction (0.2: ±20%). */
  jitter: number;
  /** A message is given up when its next attempt would start later than this after its first. */
  deadlineMs: number;
  /** Per request, body included. */
  requestTimeoutMs: number;
  /** Per destination; the oldest queued message is dropped beyond it. */
  maxQueue: number;
  userAgent: string;
  /** The clock: attempt timing, the delivery deadline, statistics and signature timestamps. */
  now: () => Date;
}

export const DEFAULT_OUTBOX_OPTIONS: OutboxOptions = {
  minIntervalMs: 1000,
  maxAttempts: 6,
  initialBackoffMs: 1000,
  maxBackoffMs: 30_000,
  jitter: 0.2,
  deadlineMs: 120_000,
  requestTimeoutMs: 10_000,
  maxQueue: 100,
  userAgent: 'db-refresher',
  now: () => systemClock.now(),
};

export interface DestinationStats {
  /** Waiting to be sent (not counting the one in flight). */
  queued: number;
  inFlight: number;
  delivered: number;
  /** Given up: a non-retryable answer, attempts or time exhausted. */
  failed: number;
  /** Never finished: the queue overflowed or shutdown came first. */
  dropped: number;
  /** HTTP requests made (or tried), retries included. */
  attempts: number;
  retries: number;
  lastStatus?: number | undefined;
  lastError?: string | undefined;
  lastDeliveredAt?: string | undefined;
  lastFailedAt?: string | undefined;
}

export interface OutboxStats {
  destinations: Record<string, DestinationStats>;
  totals: Pick<DestinationStats, 'queued' | 'inFlight' | 'delivered' | 'failed' | 'dropped' | 'attempts' | 'retries'>;
}

interface Queued {
  message: OutboxMessage;
  resolve(result: DeliveryResult): void;
}

interface Lane {
  destination: Destination;
  /** Parsed once; undefined with `invalid` set when the URL is unusable. */
  url?: URL | undefined;
  invalid?: string | undefined;
  /** Strings that must never leave this module: URL forms and the signing secret. */
  hidden: Hidden[];
  queue: Queued[];
  busy: boolean;
  nextAttemptAt: number;
  /** Aborted by flush() when the grace period ends; replaced right after. */
  abort: AbortController;
  idle: Array<() => void>;
  stats: DestinationStats;
  log: Logger;
}

type Attempt =
  | { kind: 'delivered'; status: number }
  | { kind: 'retry'; status?: number; error: string; retryAfterMs?: number | undefined }
  | { kind: 'fail'; status?: number; error: string }
  | { kind: 'aborted' };

const SHUTDOWN = 'not delivered: shutdown grace period ended';

/** Retry-After as seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** Resolves after ms, or early when the signal aborts; the timer never keeps the process alive. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener('abort', done, { once: true });
  });
}

function emptyStats(): DestinationStats {
  return { queued: 0, inFlight: 0, delivered: 0, failed: 0, dropped: 0, attempts: 0, retries: 0 };
}

function checkUrl(raw: string): { url: URL } | { invalid: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { invalid: 'the webhook URL is not a valid URL' };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    return { invalid: `the webhook URL must be http or https, not ${url.protocol}` };
  return { url };
}

export class Outbox {
  readonly #lanes = new Map<string, Lane>();
  readonly #options: OutboxOptions;
  readonly #log: Logger;

  constructor(destinations: readonly Destination[], log: Logger, options: Partial<OutboxOptions> = {}) {
    this.#options = { ...DEFAULT_OUTBOX_OPTIONS, ...options };
    this.#log = log;
    for (const destination of destinations) {
      const raw = destination.url.reveal();
      const checked = checkUrl(raw);
      const lane: Lane = {
        destination,
        ...('url' in checked ? { url: checked.url } : { invalid: `${checked.invalid} (${destination.url.origin})` }),
        hidden: hiddenFor(raw, destination.signingSecret?.reveal()),
        queue: [],
        busy: false,
        nextAttemptAt: 0,
        abort: new AbortController(),
        idle: [],
        stats: emptyStats(),
        log: log.child({ notification: destination.name }),
      };
      if (lane.invalid) lane.log.error({ problem: lane.invalid }, 'notification target is unusable; its messages will fail');
      this.#lanes.set(destination.name, lane);
    }
  }

  /** Queues a message; the promise settles with the outcome and never rejects. */
  send(destination: string, message: OutboxMessage): Promise<DeliveryResult> {
    const lane = this.#lanes.get(destination);
    if (!lane) {
      this.#log.error({ notification: destination, event: message.event }, 'no such notification target; message not sent');
      return Promise.resolve({ delivered: false, attempts: 0, error: `no notification target named "${destination}"` });
    }
    if (lane.invalid) {
      lane.stats.failed += 1;
      lane.stats.lastError = lane.invalid;
      lane.stats.lastFailedAt = this.#options.now().toISOString();
      lane.log.error({ event: message.event, job: message.job, deliveryId: message.id, error: lane.invalid }, 'notification not delivered');
      return Promise.resolve({ delivered: false, attempts: 0, error: lane.invalid });
    }
    return new Promise((resolve) => {
      if (lane.queue.length >= this.#options.maxQueue) {
        const oldest = lane.queue.shift();
        if (oldest) {
          lane.stats.dropped += 1;
          lane.log.warn(
            { event: oldest.message.event, job: oldest.message.job, deliveryId: oldest.message.id, maxQueue: this.#options.maxQueue },
            'notification queue full; dropped the oldest message',
          );
          oldest.resolve({ delivered: false, attempts: 0, dropped: true, error: `queue full (${this.#options.maxQueue} messages)` });
        }
      }
      lane.queue.push({ message, resolve });
      lane.stats.queued = lane.queue.length;
      void this.#pump(lane);
    });
  }

  /** Waits until every queue is empty, at most timeoutMs; then aborts what is in flight and drops the rest. */
  async flush(timeoutMs: number): Promise<void> {
    const busy = [...this.#lanes.values()].filter((lane) => lane.busy || lane.queue.length > 0);
    if (busy.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const idle = Promise.all(busy.map((lane) => new Promise<void>((resolve) => lane.idle.push(resolve)))).then(() => true);
    const expired = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, timeoutMs));
    });
    const finished = await Promise.race([idle, expired]);
    clearTimeout(timer);
    if (finished) return;
    for (const lane of busy) {
      if (!lane.busy && lane.queue.length === 0) continue;
      const dropped = lane.queue.splice(0);
      lane.stats.dropped += dropped.length;
      lane.stats.queued = 0;
      for (const item of dropped) item.resolve({ delivered: false, attempts: 0, dropped: true, error: SHUTDOWN });
      lane.log.warn(
        { dropped: dropped.length, inFlight: lane.stats.inFlight, timeoutMs },
        'notification flush timed out; aborting delivery and dropping queued messages',
      );
      // The attempt in flight holds the old signal; later messages get a fresh one.
      lane.abort.abort(new Error(SHUTDOWN));
      lane.abort = new AbortController();
    }
  }

  stats(): OutboxStats {
    const destinations: Record<string, DestinationStats> = {};
    const totals = { queued: 0, inFlight: 0, delivered: 0, failed: 0, dropped: 0, attempts: 0, retries: 0 };
    for (const [name, lane] of this.#lanes) {
      destinations[name] = { ...lane.stats };
      for (const key of Object.keys(totals) as Array<keyof typeof totals>) totals[key] += lane.stats[key];
    }
    return { destinations, totals };
  }

  async #pump(lane: Lane): Promise<void> {
    if (lane.busy) return;
    lane.busy = true;
    try {
      for (let item = lane.queue.shift(); item; item = lane.queue.shift()) {
        lane.stats.queued = lane.queue.length;
        lane.stats.inFlight = 1;
        let result: DeliveryResult;
        try {
          result = await this.#deliver(lane, item.message);
        } catch (error) {
          // #deliver handles its own errors; this is a last line so one bug cannot stall the queue.
          result = { delivered: false, attempts: 0, error: this.#scrub(lane, describeError(error)) };
          lane.stats.failed += 1;
        }
        lane.stats.inFlight = 0;
        item.resolve(result);
      }
    } finally {
      lane.busy = false;
      lane.stats.queued = lane.queue.length;
      lane.stats.inFlight = 0;
      for (const resolve of lane.idle.splice(0)) resolve();
    }
  }

  #scrub(lane: Lane, text: string): string {
    return scrub(text, lane.hidden);
  }

  async #deliver(lane: Lane, message: OutboxMessage): Promise<DeliveryResult> {
    const o = this.#options;
    const signal = lane.abort.signal;
    const first = this.#options.now().getTime();
    const fields = { event: message.event, job: message.job, deliveryId: message.id };
    let backoff = o.initialBackoffMs;
    let last: Attempt | undefined;
    for (let attempt = 1; attempt <= o.maxAttempts; attempt += 1) {
      await sleep(lane.nextAttemptAt - this.#options.now().getTime(), signal);
      if (signal.aborted) return this.#dropped(lane, attempt - 1, last);
      lane.nextAttemptAt = this.#options.now().getTime() + o.minIntervalMs;
      lane.stats.attempts += 1;
      const started = this.#options.now().getTime();
      const outcome = await this.#attempt(lane, message, signal);
      const durationMs = this.#options.now().getTime() - started;
      if (outcome.kind === 'aborted') return this.#dropped(lane, attempt, last);
      last = outcome;
      if (outcome.kind === 'delivered') {
        lane.stats.delivered += 1;
        lane.stats.lastStatus = outcome.status;
        lane.stats.lastDeliveredAt = this.#options.now().toISOString();
        lane.log.info({ ...fields, attempt, status: outcome.status, durationMs }, 'notification delivered');
        return { delivered: true, attempts: attempt, status: outcome.status };
      }
      if (outcome.status !== undefined) lane.stats.lastStatus = outcome.status;
      if (outcome.kind === 'fail') return this.#failed(lane, fields, attempt, outcome.status, `${outcome.error} (not retried)`);

      const delay = outcome.retryAfterMs ?? jittered(backoff, o.jitter);
      backoff = Math.min(backoff * 2, o.maxBackoffMs);
      if (attempt >= o.maxAttempts) {
        return this.#failed(lane, fields, attempt, outcome.status, `${outcome.error}; gave up after ${attempt} attempts`);
      }
      const waitsUntil = Math.max(this.#options.now().getTime() + delay, lane.nextAttemptAt);
      if (waitsUntil - first > o.deadlineMs) {
        const why = outcome.retryAfterMs !== undefined ? `Retry-After ${Math.ceil(delay / 1000)} s` : 'the next retry';
        return this.#failed(
          lane,
          fields,
          attempt,
          outcome.status,
          `${outcome.error}; gave up: ${why} would pass the ${Math.round(o.deadlineMs / 1000)} s delivery deadline`,
        );
      }
      lane.stats.retries += 1;
      lane.log.warn(
        { ...fields, attempt, status: outcome.status, error: outcome.error, retryInMs: delay, durationMs },
        'notification attempt failed; will retry',
      );
      await sleep(delay, signal);
      if (signal.aborted) return this.#dropped(lane, attempt, last);
    }
    // Unreachable: the loop returns on its last attempt.
    return this.#failed(lane, fields, o.maxAttempts, undefined, 'gave up');
  }

  #failed(lane: Lane, fields: Record<string, unknown>, attempts: number, status: number | undefined, error: string): DeliveryResult {
    lane.stats.failed += 1;
    lane.stats.lastError = error;
    lane.stats.lastFailedAt = this.#options.now().toISOString();
    lane.log.error({ ...fields, attempts, status, error }, 'notification not delivered');
    return { delivered: false, attempts, status, error };
  }

  #dropped(lane: Lane, attempts: number, last: Attempt | undefined): DeliveryResult {
    lane.stats.dropped += 1;
    const status = last && last.kind !== 'aborted' ? last.status : undefined;
    return { delivered: false, attempts, status, dropped: true, error: SHUTDOWN };
  }

  async #attempt(lane: Lane, message: OutboxMessage, shutdown: AbortSignal): Promise<Attempt> {
    const o = this.#options;
    const headers: Record<string, string> = {
      'content-type': 'application/json; charset=utf-8',
      'user-agent': o.userAgent,
      'x-db-refresher-event': message.event,
      'x-db-refresher-delivery': message.id,
    };
    if (lane.destination.signingSecret)
      Object.assign(headers, signatureHeaders(lane.destination.signingSecret.reveal(), message.body, o.now()));
    const signal = AbortSignal.any([shutdown, AbortSignal.timeout(o.requestTimeoutMs)]);
    try {
      // Redirects are not followed: a POST should not wander to another host with its signature.
      const response = await fetch(lane.url as URL, { method: 'POST', headers, body: message.body, redirect: 'manual', signal });
      const excerpt = await readExcerpt(response);
      const status = response.status;
      if (status >= 200 && status < 300) return { kind: 'delivered', status };
      const said = excerpt ? `: ${this.#scrub(lane, excerpt)}` : '';
      const error = `HTTP ${status}${response.statusText ? ` ${response.statusText}` : ''}${said}`;
      if (status === 429 || status >= 500) {
        return {
          kind: 'retry',
          status,
          error,
          retryAfterMs: parseRetryAfter(response.headers.get('retry-after'), this.#options.now().getTime()),
        };
      }
      if (status >= 300 && status < 400)
        return { kind: 'fail', status, error: `${error}; redirects are not followed: configure the final URL` };
      return { kind: 'fail', status, error };
    } catch (error) {
      if (shutdown.aborted) return { kind: 'aborted' };
      return { kind: 'retry', error: this.#scrub(lane, describeError(error)) };
    }
  }
}

function jittered(ms: number, jitter: number): number {
  return Math.round(ms * (1 - jitter + Math.random() * 2 * jitter));
}

const EXCERPT_BYTES = 4096;

/** The start of a response body, to say why a webhook refused a message. Reads at most 4 KiB, then lets go of the rest. */
async function readExcerpt(response: Response): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < EXCERPT_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
    if (size >= EXCERPT_BYTES) await reader.cancel().catch(() => undefined);
  } catch {
    // A body cut short still tells us the status; the excerpt is a courtesy.
  } finally {
    reader.releaseLock();
  }
  const text = Buffer.concat(chunks).subarray(0, EXCERPT_BYTES).toString('utf8');
  return text.replace(/\s+/g, ' ').trim().slice(0, 200);
}
