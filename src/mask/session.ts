import type { SqlSession } from '../ports.js';

/**
 * The settings every masking connection starts with (README: Masking says
 * what each is for). Every masking session sets session_replication_role =
 * replica: user triggers and foreign-key checks do not fire for its own
 * updates, so nothing runs per row, and nothing has to be switched back on
 * afterwards (a crash leaves no table with triggers disabled).
 */

/** Session settings of every masking connection; what each one is for is said in README (Masking). */
export const MASKING_SESSION_SETTINGS: ReadonlyArray<{ sql: string; why: string; required: boolean }> = [
  {
    sql: 'SET session_replication_role = replica',
    why: 'triggers and foreign-key checks off for this session only',
    required: true,
  },
  { sql: 'SET statement_timeout = 0', why: 'a large table may take longer than the default statement timeout', required: true },
  { sql: 'SET synchronous_commit = off', why: 'the copy is rebuilt by the next run anyway', required: true },
  { sql: "SET DateStyle = 'ISO, YMD'", why: 'dateShift hashes the text of a date; the same in every session', required: true },
  { sql: "SET TimeZone = 'UTC'", why: 'dateShift hashes the text of a timestamp; the same in every session', required: true },
  { sql: 'SET jit = off', why: 'compiling the long masking expressions costs more than it saves', required: true },
  // Keep bind parameters (the key blocks) out of the server log, where the server supports it.
  { sql: 'SET log_parameter_max_length = 0', why: 'bind parameters (the key blocks) stay out of the server log', required: false },
  { sql: 'SET log_parameter_max_length_on_error = 0', why: 'bind parameters stay out of error log lines', required: false },
];

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export async function applySessionSettings(session: SqlSession): Promise<void> {
  for (const setting of MASKING_SESSION_SETTINGS) {
    try {
      await session.execute(setting.sql);
    } catch (error) {
      if (!setting.required) continue;
      if (setting.sql.includes('session_replication_role')) {
        throw new Error(
          `cannot switch off triggers and foreign-key checks for the masking session (${errorText(error)}); masking needs a superuser on the copy, or on PostgreSQL 15 and later: GRANT SET ON PARAMETER session_replication_role TO the role db-refresher uses`,
        );
      }
      throw error;
    }
  }
}
