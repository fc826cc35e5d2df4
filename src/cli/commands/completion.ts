import { Argument, type Command, type Option } from 'commander';
import { chooseConfigPath } from '../../config/load.js';
import { parseYamlText, readTextFile } from '../../config/read-yaml.js';
import { type Completion, complete, type OptionShape, type ProgramShape } from '../completion/candidates.js';
import { completionScript, SHELLS, type Shell } from '../completion/scripts.js';
import { RemoteClient } from '../remote/client.js';
import { REMOTE_VERBS } from './remote.js';

/**
 * `db-refresher completion bash|zsh|fish` prints a completion script; the
 * script calls the hidden `db-refresher __complete -- WORD…` on every Tab,
 * which offers verbs, options, option values, and job names read from the
 * config file (--config) or asked of the server (--server).
 */

function optionShape(option: Option): OptionShape {
  const flags = [option.short, option.long].filter((f): f is string => Boolean(f));
  return { flags, takesValue: option.required || option.optional, choices: option.argChoices };
}

export function programShape(program: Command): ProgramShape {
  return {
    globalOptions: program.options.map(optionShape),
    verbs: program.commands
      .filter((c) => !(c as Command & { _hidden?: boolean })._hidden)
      .map((c) => ({ name: c.name(), options: c.options.map(optionShape), args: c.registeredArguments.map((a) => a.name()) })),
  };
}

const SERVER_TIMEOUT_MS = 2000;

/** The `jobs:` names (or `notifications:` keys) of a config file, read leniently: a half-written file still completes. */
function namesFromConfig(file: string, of: 'job' | 'target'): string[] {
  const read = readTextFile(file, 1024 * 1024);
  if (!read.ok) return [];
  const parsed = parseYamlText(read.value);
  if (!parsed.ok || !parsed.value || typeof parsed.value !== 'object') return [];
  const config = parsed.value as { jobs?: unknown; notifications?: unknown };
  if (of === 'target') {
    return config.notifications && typeof config.notifications === 'object' ? Object.keys(config.notifications) : [];
  }
  if (!Array.isArray(config.jobs)) return [];
  return config.jobs.flatMap((job) => (typeof job?.name === 'string' ? [job.name as string] : []));
}

async function namesFromServer(options: { server?: string; tokenFile?: string }): Promise<string[]> {
  const api = RemoteClient.from(options, process.env);
  const page = await api.request<{ jobs: Array<{ name: string }> }>('GET', '/api/v1/jobs?limit=1000', undefined, {
    timeoutMs: SERVER_TIMEOUT_MS,
  });
  return page.jobs.map((j) => j.name);
}

async function candidates(completion: Completion): Promise<string[]> {
  switch (completion.kind) {
    case 'words':
      return completion.words;
    case 'files':
      return [':files'];
    case 'names': {
      // A server named on the line wins; a server verb asks $DB_REFRESHER_SERVER unless the line names a config file.
      const askServer =
        completion.of === 'job' &&
        (completion.server !== undefined ||
          (completion.config === undefined && REMOTE_VERBS.includes(completion.verb) && Boolean(process.env.DB_REFRESHER_SERVER)));
      if (askServer) {
        return namesFromServer({
          ...(completion.server ? { server: completion.server } : {}),
          ...(completion.tokenFile ? { tokenFile: completion.tokenFile } : {}),
        });
      }
      return namesFromConfig(chooseConfigPath(completion.config, process.env), completion.of);
    }
  }
}

export function registerCompletion(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script: verbs, options, and job names from the config or the server')
    .addArgument(new Argument('<shell>', 'bash, zsh or fish').choices(SHELLS))
    .addHelpText(
      'after',
      `
Examples:
  $ source <(db-refresher completion bash)          # in ~/.bashrc
  $ source <(db-refresher completion zsh)           # in ~/.zshrc, after compinit
  $ db-refresher completion fish | source           # in ~/.config/fish/config.fish
`,
    )
    .action((shell: Shell) => {
      process.stdout.write(completionScript(shell));
    });

  program
    .command('__complete', { hidden: true })
    .description('candidates for the word being completed (used by the completion scripts)')
    .argument('[words...]')
    .allowUnknownOption()
    .helpOption(false)
    .action(async (words: string[]) => {
      let found: string[] = [];
      try {
        found = await candidates(complete(programShape(program), words.length ? words : ['']));
      } catch {
        // A Tab press must never print an error into the command line (no server, bad token): offer nothing.
      }
      if (found.length) process.stdout.write(`${found.join('\n')}\n`);
    });
}
