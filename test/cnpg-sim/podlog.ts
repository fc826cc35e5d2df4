/**
 * Container logs, where the test API server serves them from: `<logDir>/<namespace>/<pod>.log`
 * (test/envtest/apiserver/podlog.go). Lines are JSON like CNPG's instance manager writes them
 * (zap: level, ts, msg, then fields; `logging_pod` names the pod).
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type LogLevel = 'info' | 'error' | 'debug';

export function podLogPath(logDir: string, namespace: string, pod: string): string {
  return join(logDir, namespace, `${pod}.log`);
}

export class PodLog {
  readonly path: string;
  readonly #pod: string;

  constructor(logDir: string, namespace: string, pod: string) {
    mkdirSync(join(logDir, namespace), { recursive: true });
    this.path = podLogPath(logDir, namespace, pod);
    this.#pod = pod;
  }

  write(level: LogLevel, msg: string, fields: Record<string, unknown> = {}, logger?: string): void {
    const line: Record<string, unknown> = { level, ts: new Date().toISOString() };
    if (logger) line.logger = logger;
    line.msg = msg;
    Object.assign(line, fields);
    line.logging_pod = this.#pod;
    appendFileSync(this.path, `${JSON.stringify(line)}\n`);
  }

  info(msg: string, fields?: Record<string, unknown>): void {
    this.write('info', msg, fields);
  }

  error(msg: string, fields?: Record<string, unknown>): void {
    this.write('error', msg, fields);
  }

  /** A line a child program printed, as the instance manager relays it. */
  pipe(logger: string, line: string, pipe: 'stdout' | 'stderr' = 'stderr'): void {
    this.write('info', line, { pipe }, logger);
  }
}
