import type { PrepareStep } from '../config/prepare-files.js';
import { lineAndColumn } from './sql-text.js';

/**
 * Words for a failed prepare step: its name, the server's error with SQLSTATE,
 * and where in the step's SQL (or file) it happened, with the line shown. Pure:
 * reads the fields PostgreSQL errors carry (pg's DatabaseError has them).
 */

interface ServerErrorFields {
  message?: string;
  code?: string;
  position?: string | number;
  detail?: string;
  hint?: string;
  where?: string;
}

export function describeStepError(step: PrepareStep, error: unknown, offset: number): { message: string; details: string[] } {
  const fields = (error ?? {}) as ServerErrorFields;
  const text = fields.message ?? String(error);
  const where = step.file ? `file ${step.file}` : 'its sql';
  const details: string[] = [];
  let position = '';
  if (fields.position !== undefined && Number(fields.position) > 0) {
    const absolute = offset + Number(fields.position);
    const { line, column } = lineAndColumn(step.sql, absolute);
    position = ` at line ${line}, column ${column} of ${where}`;
    const shown = step.sql.split('\n')[line - 1] ?? '';
    details.push(`${line} | ${shown}`, `${' '.repeat(String(line).length)} | ${' '.repeat(Math.max(0, column - 1))}^`);
  }
  if (fields.detail) details.push(`detail: ${fields.detail}`);
  if (fields.hint) details.push(`hint: ${fields.hint}`);
  if (fields.where) details.push(`where: ${fields.where}`);
  const code = fields.code ? ` (SQLSTATE ${fields.code})` : '';
  return {
    message: `prepare step "${step.name}" failed in database "${step.database}"${position}: ${text}${code}`,
    details,
  };
}
