import { Writable } from 'node:stream';
import { systemClock } from '../clock.js';
import { formatBytes } from '../config/byte-size.js';
import { formatDuration } from '../duration.js';
import type { Clock } from '../ports.js';
import type { RunEvent } from '../run/events.js';
import { type Paint, paintFor } from './color.js';

/**
 * Live progress for `run` on a terminal: one status line redrawn in place
 * (phase, elapsed time, copy progress), and a permanent line per finished
 * phase. Log lines go through `logStream` so they never tear the status line.
 */
export class ProgressDisplay {
  readonly #out: NodeJS.WriteStream;
  #timer: NodeJS.Timeout | undefined;
  #phase: string | undefined;
  #phaseStarted = 0;
  #detail = '';
  #drawn = false;
  readonly #frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  #frame = 0;

  readonly #clock: Clock;
  readonly #paint: Paint;

  /** `paint` defaults to what `out` takes (NO_COLOR, FORCE_COLOR, TERM=dumb). */
  constructor(out: NodeJS.WriteStream, clock: Clock = systemClock, paint: Paint = paintFor(out, process.env)) {
    this.#out = out;
    this.#clock = clock;
    this.#paint = paint;
  }

  readonly logStream = new Writable({
    write: (chunk: Buffer, _encoding, callback) => {
      this.#clear();
      this.#out.write(chunk);
      this.#draw();
      callback();
    },
  });

  onEvent(event: RunEvent): void {
    switch (event.type) {
      case 'phase-started':
        this.#phase = event.phase;
        this.#phaseStarted = this.#clock.now().getTime();
        this.#detail = '';
        this.#timer ??= setInterval(() => this.#draw(), 100);
        this.#draw();
        break;
      case 'progress':
        this.#detail = progressText(event.detail) ?? this.#detail;
        break;
      case 'phase-finished': {
        const phase = event.run.phases.find((p) => p.name === event.phase);
        this.#clear();
        const mark = phase?.status === 'succeeded' ? this.#paint.green('✓') : this.#paint.red('✗');
        this.#out.write(`${mark} ${event.phase.padEnd(9)} ${formatDuration(phase?.durationMs)}\n`);
        this.#phase = undefined;
        break;
      }
      case 'run-finished':
        this.stop();
        break;
      default:
        break;
    }
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#clear();
  }

  #clear(): void {
    if (this.#drawn) this.#out.write('\r\x1b[2K');
    this.#drawn = false;
  }

  #draw(): void {
    if (!this.#phase) return;
    this.#frame = (this.#frame + 1) % this.#frames.length;
    const elapsed = formatDuration(this.#clock.now().getTime() - this.#phaseStarted);
    this.#clear();
    this.#out.write(
      `${this.#paint.cyan(this.#frames[this.#frame] ?? '')} ${this.#phase.padEnd(9)} ${elapsed}${this.#detail ? `  ${this.#detail}` : ''}`,
    );
    this.#drawn = true;
  }
}

/**
 * The progress line's detail: percent and bytes (a local clone's pg_basebackup,
 * a CNPG clone's pg_stat_progress_basebackup), the ETA when the target knows
 * its rate, or what the copy waits for before the first byte. Undefined keeps
 * the line as it was (a report with nothing to show).
 */
export function progressText(detail: Record<string, unknown>): string | undefined {
  const { percent, copiedBytes, totalBytes, etaMs, backupPhase } = detail as {
    percent?: number;
    copiedBytes?: number;
    totalBytes?: number;
    etaMs?: number;
    backupPhase?: string;
  };
  if (percent === undefined) return typeof backupPhase === 'string' ? backupPhase : undefined;
  const bytes = copiedBytes !== undefined && totalBytes !== undefined ? ` (${formatBytes(copiedBytes)} of ${formatBytes(totalBytes)})` : '';
  const eta = typeof etaMs === 'number' && percent < 100 ? `, about ${formatDuration(etaMs)} left` : '';
  return `${percent}%${bytes}${eta}`;
}
