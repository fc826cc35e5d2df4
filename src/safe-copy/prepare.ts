import type { PrepareStep } from '../config/prepare-files.js';
import { PhaseFailure } from '../errors.js';
import type { PhaseContext } from '../ports.js';
import { type CopyAccess, withCopySession } from './access.js';
import { splitStatements } from './sql-text.js';
import { describeStepError } from './step-error.js';

/**
 * Runs the job's `prepare` steps in order, as the superuser on the private
 * copy. A step with `transaction: true` is sent as one script (the simple
 * protocol runs it as one implicit transaction: all or nothing); with
 * `transaction: false` each statement runs and commits on its own, which is
 * what VACUUM or CREATE INDEX CONCURRENTLY need.
 */

export interface StepReport {
  name: string;
  database: string;
  durationMs: number;
  /** Rows affected, summed over the step's statements that report a count (INSERT, UPDATE, DELETE, …). */
  rows: number;
  statements: number;
}

export async function runPrepareSteps(access: CopyAccess, steps: readonly PrepareStep[], ctx: PhaseContext): Promise<StepReport[]> {
  const done: StepReport[] = [];
  for (const step of steps) {
    if (ctx.signal.aborted) throw ctx.signal.reason ?? new Error('aborted');
    const started = Date.now();
    ctx.progress({ step: step.name, index: done.length + 1, of: steps.length });
    ctx.log.info({ step: step.name, database: step.database }, 'prepare step started');
    const outcome = await withCopySession(access, step.database, async (session) => {
      await session.query(`SET statement_timeout = ${step.timeoutSeconds * 1000}`);
      if (step.transaction) {
        try {
          return await session.script(step.sql);
        } catch (error) {
          throw stepFailure(step, error, 0);
        }
      }
      const outcomes = [];
      for (const statement of splitStatements(step.sql)) {
        try {
          outcomes.push(...(await session.script(statement.text)));
        } catch (error) {
          throw stepFailure(step, error, statement.offset);
        }
      }
      return outcomes;
    }).catch((error: unknown) => {
      if (error instanceof PhaseFailure) throw error;
      // Not the SQL: the database is missing, or the connection failed.
      throw stepFailure(step, error, 0);
    });
    const report: StepReport = {
      name: step.name,
      database: step.database,
      durationMs: Date.now() - started,
      rows: outcome.reduce((sum, o) => sum + (o.rowCount ?? 0), 0),
      statements: outcome.length,
    };
    ctx.log.info(report, 'prepare step done');
    done.push(report);
  }
  return done;
}

function stepFailure(step: PrepareStep, error: unknown, offset: number): PhaseFailure {
  const described = describeStepError(step, error, offset);
  return new PhaseFailure('prepare-failed', described.message, { details: described.details });
}
