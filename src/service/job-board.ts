import { systemClock } from '../clock.js';
import type { JobConfig } from '../config/types.js';
import { type CurrentRun, effectiveSuspend, type JobState, summarizeRun } from '../http/views.js';
import type { Clock } from '../ports.js';
import type { RunEvent } from '../run/events.js';
import type { RunRecord } from '../run/record.js';

/**
 * What the service knows about each job right now, in memory: the run holding
 * it, the last run and the last success. Seeded from history at startup and
 * kept current by run events and skipped records, so listing 1,000 jobs reads
 * no files.
 */
export class JobBoard {
  readonly #states = new Map<string, JobState>();
  readonly #clock: Clock;
  readonly #onChange: ((job: string) => void) | undefined;

  /** `onChange` hears of every change to a job's state (the live feed of the status page). */
  constructor(clock: Clock = systemClock, onChange?: (job: string) => void) {
    this.#clock = clock;
    this.#onChange = onChange;
  }

  #changed(job: string): void {
    this.#onChange?.(job);
  }

  /** Sets the suspension chosen through the API (or the one read from history at startup). */
  suspension(job: string, suspension: JobState['suspension']): void {
    this.state(job).suspension = suspension;
    this.#changed(job);
  }

  /** Suspended now: through the API, else by the config. */
  suspended(job: JobConfig): boolean {
    return effectiveSuspend(job, this.state(job.name));
  }

  state(job: string): JobState {
    let state = this.#states.get(job);
    if (!state) {
      state = {};
      this.#states.set(job, state);
    }
    return state;
  }

  /** The newest records of a job, newest first, as found in history at startup. */
  seed(job: string, newestFirst: readonly RunRecord[]): void {
    const state = this.state(job);
    const last = newestFirst.find((r) => r.status !== 'running' && r.status !== 'queued');
    const success = newestFirst.find((r) => r.status === 'succeeded' && !r.dryRun);
    if (last && !state.lastRun) state.lastRun = summarizeRun(last);
    if (success && !state.lastSuccess) state.lastSuccess = summarizeRun(success);
  }

  /** A run that holds the job (just started, queued or resumed). */
  holding(run: RunRecord): void {
    this.state(run.job).current = { id: run.id, status: run.status };
    this.#changed(run.job);
  }

  /** A record that ended: finished, paused, skipped or interrupted. */
  settled(run: RunRecord): void {
    const state = this.state(run.job);
    if (state.current?.id === run.id) state.current = undefined;
    if (!run.paused) {
      state.lastRun = summarizeRun(run);
      if (run.status === 'succeeded' && !run.dryRun) state.lastSuccess = state.lastRun;
    }
    this.#changed(run.job);
  }

  onRunEvent(event: RunEvent): void {
    switch (event.type) {
      case 'run-started':
        this.holding(event.run);
        return;
      case 'run-finished':
        this.settled(event.run);
        return;
      case 'phase-started': {
        const current = this.#currentOf(event.run);
        if (current) {
          current.status = event.run.status;
          current.phase = event.phase;
          current.phaseStartedAt = event.run.phases.find((p) => p.name === event.phase)?.startedAt;
          current.progress = undefined;
          this.#changed(event.run.job);
        }
        return;
      }
      case 'progress': {
        const current = this.#currentOf(event.run);
        if (current) {
          current.progress = { ...event.detail, at: this.#clock.now().toISOString() };
          this.#changed(event.run.job);
        }
        return;
      }
      default:
        return;
    }
  }

  #currentOf(run: RunRecord): CurrentRun | undefined {
    const current = this.#states.get(run.job)?.current;
    return current?.id === run.id ? current : undefined;
  }
}
