/**
 * Colour in the CLI's text output, decided once per stream: FORCE_COLOR
 * (any value but 0 or false) turns it on even into a pipe, NO_COLOR (any
 * non-empty value, https://no-color.org) turns it off, otherwise a terminal
 * other than TERM=dumb gets colour. FORCE_COLOR wins over NO_COLOR, as in
 * Node itself. Pure: the caller passes the stream's isTTY and the environment.
 */

export interface Paint {
  readonly enabled: boolean;
  green(text: string): string;
  red(text: string): string;
  yellow(text: string): string;
  cyan(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
  /** The colour for a run or phase status: green succeeded, red failed/interrupted, yellow running/queued, dim the rest. */
  status(status: string, text?: string): string;
}

export function colorEnabled(isTTY: boolean | undefined, env: NodeJS.ProcessEnv): boolean {
  const force = env.FORCE_COLOR;
  if (force !== undefined && force !== '') return force !== '0' && force.toLowerCase() !== 'false';
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return Boolean(isTTY) && env.TERM !== 'dumb';
}

const sgr = (open: number, close: number) => (text: string) => `\x1b[${open}m${text}\x1b[${close}m`;

const STATUS_COLOURS: Record<string, 'green' | 'red' | 'yellow' | 'dim'> = {
  succeeded: 'green',
  failed: 'red',
  interrupted: 'red',
  cancelled: 'yellow',
  running: 'yellow',
  queued: 'yellow',
  paused: 'yellow',
  skipped: 'dim',
  pending: 'dim',
};

export function makePaint(enabled: boolean): Paint {
  const id = (text: string) => text;
  const colours = enabled
    ? { green: sgr(32, 39), red: sgr(31, 39), yellow: sgr(33, 39), cyan: sgr(36, 39), dim: sgr(2, 22), bold: sgr(1, 22) }
    : { green: id, red: id, yellow: id, cyan: id, dim: id, bold: id };
  return {
    enabled,
    ...colours,
    status(status: string, text = status) {
      const colour = STATUS_COLOURS[status];
      return colour ? colours[colour](text) : text;
    },
  };
}

/** No colour: for JSON, YAML and anything that is not a person's terminal. */
export const plain: Paint = makePaint(false);

export function paintFor(stream: { isTTY?: boolean | undefined }, env: NodeJS.ProcessEnv): Paint {
  return makePaint(colorEnabled(stream.isTTY, env));
}
