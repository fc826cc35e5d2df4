import pg from 'pg';

/**
 * Measures what a client of the copy sees during a refresh: it runs `SELECT 1` every `intervalMs`
 * through the job's endpoint (the port a local copy serves on, the stable Service of a CNPG job),
 * reconnecting whenever the connection or a query fails. The longest gap is the longest time from the
 * last answered query to the next one: how long a client could not connect or query. Used by the
 * blue/green test (a bound) and bench/blue-green.ts (the figure).
 */

export interface ProberOptions {
  host: string;
  port: number;
  user: string;
  password?: string | undefined;
  database: string;
  intervalMs?: number;
  /** Per connection attempt and per query. */
  timeoutMs?: number;
}

export interface ProbeResult {
  queries: number;
  failures: number;
  /** Longest time without an answer, measured between answered queries (ms). */
  longestGapMs: number;
  /** When the longest gap began and ended (ms since the prober started). */
  longestGapAt: { from: number; to: number } | undefined;
  /** Every gap over 100 ms, in order. */
  gaps: Array<{ fromMs: number; toMs: number; gapMs: number }>;
  /** Whether any query was answered at all. */
  answered: boolean;
  /** The last error seen, for a test's message. */
  lastError: string | undefined;
}

export interface Prober {
  /** Stops probing and returns what was measured; the gap still open at the end counts too. */
  stop(): Promise<ProbeResult>;
  /** Settles once the first query has been answered (or rejects after timeoutMs). */
  ready(timeoutMs?: number): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function startProber(options: ProberOptions): Prober {
  const interval = options.intervalMs ?? 10;
  const timeout = options.timeoutMs ?? 2000;
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  let stopped = false;
  let client: pg.Client | undefined;
  let lastOk: number | undefined;
  let failing = false;
  const result: ProbeResult = {
    queries: 0,
    failures: 0,
    longestGapMs: 0,
    longestGapAt: undefined,
    gaps: [],
    answered: false,
    lastError: undefined,
  };
  let firstAnswer: () => void = () => undefined;
  const answered = new Promise<void>((resolve) => {
    firstAnswer = resolve;
  });

  const recordGap = (to: number) => {
    if (lastOk === undefined) return;
    const gap = to - lastOk;
    if (gap > 100) result.gaps.push({ fromMs: Math.round(lastOk), toMs: Math.round(to), gapMs: Math.round(gap) });
    if (gap > result.longestGapMs) {
      result.longestGapMs = gap;
      result.longestGapAt = { from: lastOk, to };
    }
  };

  const loop = (async () => {
    while (!stopped) {
      const started = now();
      try {
        if (!client) {
          const fresh = new pg.Client({
            host: options.host,
            port: options.port,
            user: options.user,
            password: options.password,
            database: options.database,
            connectionTimeoutMillis: timeout,
            query_timeout: timeout,
          });
          // A server shutting down ends the connection with an error event; the next query notices.
          fresh.on('error', () => undefined);
          client = fresh;
          await fresh.connect();
        }
        await client.query('SELECT 1');
        const at = now();
        result.queries++;
        recordGap(at);
        lastOk = at;
        failing = false;
        if (!result.answered) {
          result.answered = true;
          firstAnswer();
        }
      } catch (error) {
        result.failures++;
        failing = true;
        result.lastError = error instanceof Error ? error.message : String(error);
        const broken = client;
        client = undefined;
        await broken?.end().catch(() => undefined);
      }
      const wait = interval - (now() - started);
      if (wait > 0) await sleep(wait);
    }
  })();

  return {
    async ready(timeoutMs = 30_000) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        answered,
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`the prober got no answer within ${timeoutMs} ms: ${result.lastError ?? 'no error'}`)),
            timeoutMs,
          );
        }),
      ]).finally(() => clearTimeout(timer));
    },
    async stop() {
      stopped = true;
      await loop;
      // A gap still open when probing stops is a gap too (the copy never came back).
      if (failing) recordGap(now());
      await client?.end().catch(() => undefined);
      return { ...result, longestGapMs: Math.round(result.longestGapMs) };
    },
  };
}
