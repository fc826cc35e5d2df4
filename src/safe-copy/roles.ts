import type { Secret } from '../config/secret.js';
import type { TestRole } from '../config/types.js';
import { type CopyAccess, withCopySession } from './access.js';
import { grantStatementsByDatabase, ownerPasswordStatement, roleStatements } from './roles-sql.js';
import { scramSha256Verifier } from './scram.js';

/**
 * Creates or alters the job's test roles to match the config, grants them
 * what the config says, and (local copies) sets the owner's password. Runs
 * after every clone, so the roles exist whatever production holds.
 */

export interface RolesReport {
  created: string[];
  altered: string[];
  grants: number;
  ownerPassword?: string;
}

export async function applyRoles(
  access: CopyAccess,
  roles: readonly TestRole[],
  owner?: { user: string; password: Secret } | undefined,
): Promise<RolesReport> {
  const report: RolesReport = { created: [], altered: [], grants: 0 };
  if (roles.length === 0 && !owner) return report;
  await withCopySession(access, access.maintenanceDatabase, async (session) => {
    const names = roles.map((r) => r.name);
    const existing = new Set(
      (await session.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])', [names])).map(
        (r) => r.rolname,
      ),
    );
    for (const role of roles) {
      const verifier = role.password ? scramSha256Verifier(role.password.reveal()) : undefined;
      for (const statement of roleStatements(role, { exists: existing.has(role.name), passwordVerifier: verifier })) {
        await session.query(statement);
      }
      (existing.has(role.name) ? report.altered : report.created).push(role.name);
    }
    if (owner) {
      await session.query(ownerPasswordStatement(owner.user, scramSha256Verifier(owner.password.reveal())));
      report.ownerPassword = owner.user;
    }
  });
  for (const [database, statements] of grantStatementsByDatabase(roles)) {
    await withCopySession(access, database, async (session) => {
      for (const statement of statements) await session.query(statement);
    });
    report.grants += statements.length;
  }
  return report;
}
