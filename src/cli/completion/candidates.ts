/**
 * What to offer for the word being completed, from the words typed so far and
 * the shape of the command tree. Pure: the shell scripts hand the words to
 * `db-refresher __complete`, which asks this, then looks up job names.
 */

export interface OptionShape {
  flags: string[];
  /** The option reads the next word as its value. */
  takesValue: boolean;
  /** Allowed values, when the option lists them (-o text|json|yaml). */
  choices?: readonly string[] | undefined;
}

export interface VerbShape {
  name: string;
  options: OptionShape[];
  /** The name of each positional argument, in order: `job`, `run`, `target`. */
  args: string[];
}

export interface ProgramShape {
  globalOptions: OptionShape[];
  verbs: VerbShape[];
}

export type Completion =
  | { kind: 'words'; words: string[] }
  /** Fall back to the shell's own file name completion. */
  | { kind: 'files' }
  /** Names of jobs (or notification targets) from the config file or the server the line names. */
  | { kind: 'names'; of: 'job' | 'target'; verb: string; config?: string; server?: string; tokenFile?: string };

function optionNamed(options: readonly OptionShape[], flag: string): OptionShape | undefined {
  return options.find((o) => o.flags.includes(flag));
}

/** Options whose value is a file name. */
const FILE_VALUED = new Set(['--config', '-c', '--token-file']);

/**
 * `words` are the words after the program name; the last one is the word being
 * completed (empty right after a space).
 */
export function complete(shape: ProgramShape, words: readonly string[]): Completion {
  const typed = words.slice(0, -1);
  const current = words.at(-1) ?? '';
  let verb: VerbShape | undefined;
  const positionals: string[] = [];
  const globals: { config?: string; server?: string; tokenFile?: string } = {};
  let expecting: OptionShape | undefined;
  let expectingFlag = '';

  for (const word of typed) {
    if (expecting) {
      if (expectingFlag === '--config' || expectingFlag === '-c') globals.config = word;
      if (expectingFlag === '--server') globals.server = word;
      if (expectingFlag === '--token-file') globals.tokenFile = word;
      expecting = undefined;
      continue;
    }
    if (word.startsWith('-') && word !== '-') {
      const [flag = word, inline] = word.split(/=(.*)/s, 2);
      const option = optionNamed([...shape.globalOptions, ...(verb?.options ?? [])], flag);
      if (option?.takesValue) {
        if (inline === undefined) {
          expecting = option;
          expectingFlag = flag;
        } else if (flag === '--config' || flag === '-c') globals.config = inline;
        else if (flag === '--server') globals.server = inline;
        else if (flag === '--token-file') globals.tokenFile = inline;
      }
      continue;
    }
    if (!verb) {
      verb = shape.verbs.find((v) => v.name === word);
      if (!verb) return { kind: 'words', words: [] };
    } else positionals.push(word);
  }

  if (expecting) {
    if (FILE_VALUED.has(expectingFlag)) return { kind: 'files' };
    return { kind: 'words', words: [...(expecting.choices ?? [])] };
  }
  if (current.startsWith('-')) {
    const options = verb ? [...verb.options, ...shape.globalOptions] : shape.globalOptions;
    return { kind: 'words', words: options.flatMap((o) => o.flags.filter((f) => f.startsWith('--'))) };
  }
  if (!verb) return { kind: 'words', words: shape.verbs.map((v) => v.name) };
  const arg = verb.args[positionals.length];
  if (arg === 'job' || arg === 'target') {
    return { kind: 'names', of: arg, verb: verb.name, ...globals };
  }
  return { kind: 'words', words: [] };
}
