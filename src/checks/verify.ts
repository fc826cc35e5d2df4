import type { JobConfig, PgEndpoint, VerifiedDatabase } from '../config/types.js';
import type { OwnerLogin, SqlConnector, Target } from '../ports.js';
import type { Check, DatabaseFigures, DatabaseVerification, Verification } from '../run/facts.js';
import { compareDatabase } from './compare.js';
import { CONNECTABLE_DATABASES, DATABASE_SIZE_AND_OWNER, PRESENT_TABLES, TABLES_PER_SCHEMA } from './queries.js';
import { sqlEndpoint } from './source.js';

/** Three catalog queries per database, whatever the number of tables. */
export async function collectFigures(
  sql: SqlConnector,
  endpoint: PgEndpoint,
  database: string,
  requiredTables: readonly string[],
): Promise<DatabaseFigures> {
  return sql.withSession(endpoint, database, async (session) => {
    const [sizeRow] = await session.query<{ size_bytes: string; owner: string }>(DATABASE_SIZE_AND_OWNER);
    const tableRows = await session.query<{ schema: string; tables: number }>(TABLES_PER_SCHEMA);
    const figures: DatabaseFigures = {
      database,
      sizeBytes: Number(sizeRow?.size_bytes ?? 0),
      owner: sizeRow?.owner ?? '',
      tablesBySchema: Object.fromEntries(tableRows.map((r) => [r.schema, Number(r.tables)])),
    };
    if (requiredTables.length > 0) {
      const present = await session.query<{ name: string }>(PRESENT_TABLES, [requiredTables]);
      figures.presentTables = present.map((r) => r.name).sort();
    }
    return figures;
  });
}

/** The databases to verify: configured ones, or every connectable database on the source. */
export async function databasesToVerify(job: JobConfig, sql: SqlConnector): Promise<VerifiedDatabase[]> {
  if (job.verify.databases.length > 0) return job.verify.databases;
  const rows = await sql.withSession(sqlEndpoint(job.source), job.source.dbname, (session) =>
    session.query<{ name: string }>(CONNECTABLE_DATABASES),
  );
  return rows.map((r) => ({ name: r.name, requiredTables: [] }));
}

/** Source figures, taken just before teardown: what the copy is compared with. */
export async function snapshotSource(
  job: JobConfig,
  databases: readonly VerifiedDatabase[],
  sql: SqlConnector,
): Promise<DatabaseFigures[]> {
  const figures: DatabaseFigures[] = [];
  for (const db of databases) {
    figures.push(await collectFigures(sql, sqlEndpoint(job.source, db.name), db.name, db.requiredTables));
  }
  return figures;
}

export async function verifyCopy(input: {
  job: JobConfig;
  databases: readonly VerifiedDatabase[];
  sourceFigures: readonly DatabaseFigures[];
  target: Target;
  /** The owner the target gave (defaultOwner), for targets that need it to reach the copy. */
  copyOwner?: OwnerLogin | undefined;
  sql: SqlConnector;
}): Promise<Verification> {
  // verify.owner: warn keeps the owner check but lets a database with another owner pass with a warning.
  const ownerMismatch = input.job.verify.owner === 'warn' ? 'warning' : 'error';
  const { job, target, sql, copyOwner } = input;
  const results: DatabaseVerification[] = [];
  for (const expected of input.databases) {
    const source = input.sourceFigures.find((f) => f.database === expected.name);
    try {
      const copy = await collectFigures(sql, target.endpoint(expected.name, copyOwner), expected.name, expected.requiredTables);
      results.push({
        database: expected.name,
        ...(source ? { source } : {}),
        copy,
        checks: compareDatabase({ expected, source, copy, sizeTolerancePercent: job.verify.sizeTolerancePercent }),
      });
    } catch (error) {
      results.push({
        database: expected.name,
        ...(source ? { source } : {}),
        checks: [
          {
            name: `${expected.name}: reachable on the copy`,
            ok: false,
            message: `cannot read database ${expected.name} on the copy: ${error instanceof Error ? error.message : String(error)}`,
            failureClass: 'verification-failed',
          },
        ],
      });
    }
  }

  const checks: Check[] = [];
  const owner = typeof job.verify.owner === 'object' ? job.verify.owner : input.copyOwner;
  if (owner) {
    const endpoint: PgEndpoint = { ...target.endpoint(owner.database, copyOwner), user: owner.user, password: owner.password };
    try {
      const [row] = await sql.withSession(endpoint, owner.database, (session) =>
        session.query<{ owner: string }>('SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = current_database()'),
      );
      checks.push({ name: 'owner can log in', ok: true, message: `${owner.user} logged in to ${owner.database} with its password` });
      checks.push(
        row?.owner === owner.user
          ? { name: 'database owner', ok: true, message: `${owner.database} is owned by ${owner.user}` }
          : {
              name: 'database owner',
              ok: false,
              message: `${owner.database} is owned by ${row?.owner ?? 'nobody'}, not ${owner.user}; a physical copy keeps the source's ownership, so change it on the source (ALTER DATABASE ${owner.database} OWNER TO ${owner.user})`,
              failureClass: 'verification-failed',
              ...(ownerMismatch === 'warning' ? { severity: 'warning' as const } : {}),
            },
      );
    } catch (error) {
      checks.push({
        name: 'owner can log in',
        ok: false,
        message: `${owner.user} cannot log in to ${owner.database} on the copy: ${error instanceof Error ? error.message : String(error)}`,
        failureClass: 'verification-failed',
      });
    }
  }

  const passes = (c: Check) => c.ok || c.severity === 'warning';
  const ok = results.every((r) => r.checks.every(passes)) && checks.every(passes);
  return { ok, databases: results, checks };
}
