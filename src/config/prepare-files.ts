import { readFileSync } from 'node:fs';
import type { PrepareStepInput } from './schema-safe-copy.js';

/** A prepare step after loading: its SQL is in hand, read from `file` when it came from one. */
export type PrepareStep = Omit<PrepareStepInput, 'sql'> & { sql: string };

/**
 * Reads the SQL files of `prepare` steps when the config is loaded, so a
 * missing or unreadable file is a config error naming its path, not a failed
 * refresh at 3 a.m.
 */
export function readPrepareSteps(
  steps: readonly PrepareStepInput[] | undefined,
  at: string,
  resolvePath: (p: string) => string,
  problems: string[],
): PrepareStep[] {
  return (steps ?? []).map((step, i) => {
    if (step.file === undefined) return { ...step, sql: step.sql ?? '' };
    const file = resolvePath(step.file);
    try {
      const sql = readFileSync(file, 'utf8');
      if (sql.trim() === '') problems.push(`${at}.prepare[${i}].file (step "${step.name}"): ${file} is empty`);
      return { ...step, file, sql };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const reason =
        code === 'ENOENT'
          ? 'does not exist'
          : code === 'EISDIR'
            ? 'is a directory, not a file'
            : `cannot be read (${code ?? String(error)})`;
      problems.push(
        `${at}.prepare[${i}].file (step "${step.name}"): ${file} ${reason}; fix the path (relative paths are relative to the config file)`,
      );
      return { ...step, file, sql: '' };
    }
  });
}
