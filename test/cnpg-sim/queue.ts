/**
 * One serial queue per key (a Cluster's namespace/name), like controller-runtime's workqueue: a key is
 * never worked on twice at once, requests that arrive while it runs are folded into one more run, and
 * the worker may ask for a run after a delay. Errors are logged and retried with a growing delay.
 */

export type Worker = (key: string) => Promise<number | undefined>;

interface KeyState {
  running: boolean;
  dirty: boolean;
  timer: NodeJS.Timeout | undefined;
  due: number;
  failures: number;
}

const ERROR_BACKOFF_MIN_MS = 100;
const ERROR_BACKOFF_MAX_MS = 5_000;

export class KeyedQueue {
  readonly #worker: Worker;
  readonly #onError: (key: string, err: unknown) => void;
  readonly #keys = new Map<string, KeyState>();
  readonly #running = new Set<Promise<void>>();
  #stopped = false;

  constructor(worker: Worker, onError: (key: string, err: unknown) => void) {
    this.#worker = worker;
    this.#onError = onError;
  }

  /** Runs the worker for `key` now (or after `delayMs`), unless an earlier run is already due. */
  enqueue(key: string, delayMs = 0): void {
    if (this.#stopped) return;
    const state = this.#state(key);
    if (delayMs <= 0) {
      if (state.timer) {
        clearTimeout(state.timer);
        state.timer = undefined;
      }
      if (state.running) {
        state.dirty = true;
        return;
      }
      this.#start(key, state);
      return;
    }
    const due = Date.now() + delayMs;
    if (state.timer && state.due <= due) return;
    if (state.timer) clearTimeout(state.timer);
    state.due = due;
    state.timer = setTimeout(() => {
      state.timer = undefined;
      this.enqueue(key);
    }, delayMs);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const state of this.#keys.values()) {
      if (state.timer) clearTimeout(state.timer);
      state.timer = undefined;
    }
    await Promise.allSettled([...this.#running]);
  }

  #state(key: string): KeyState {
    let state = this.#keys.get(key);
    if (!state) {
      state = { running: false, dirty: false, timer: undefined, due: 0, failures: 0 };
      this.#keys.set(key, state);
    }
    return state;
  }

  #start(key: string, state: KeyState): void {
    state.running = true;
    state.dirty = false;
    const run = (async () => {
      let requeueAfter: number | undefined;
      try {
        requeueAfter = await this.#worker(key);
        state.failures = 0;
      } catch (err) {
        state.failures++;
        if (!this.#stopped) this.#onError(key, err);
        requeueAfter = Math.min(ERROR_BACKOFF_MIN_MS * 2 ** (state.failures - 1), ERROR_BACKOFF_MAX_MS);
      } finally {
        state.running = false;
      }
      if (this.#stopped) return;
      if (state.dirty) this.enqueue(key);
      else if (requeueAfter !== undefined) this.enqueue(key, requeueAfter);
    })();
    this.#running.add(run);
    void run.finally(() => this.#running.delete(run));
  }
}
