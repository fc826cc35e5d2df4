import type { TestRole } from '../config/types.js';
import { quoteIdent, quoteLiteral } from './sql-text.js';

/**
 * Pure SQL for the job's test roles: create or alter each role to match the
 * config after every clone, and grant what it needs per database and schema.
 * Passwords arrive as SCRAM verifiers (scram.ts), never as the password.
 */

const WRITE_PRIVILEGES = new Set(['INSERT', 'UPDATE', 'DELETE', 'ALL']);

/** Cluster-wide statements for one role: CREATE (when missing) or ALTER, password, memberships. */
export function roleStatements(role: TestRole, input: { exists: boolean; passwordVerifier?: string | undefined }): string[] {
  const name = quoteIdent(role.name);
  const login = role.login ? 'LOGIN' : 'NOLOGIN';
  const password = input.passwordVerifier === undefined ? 'PASSWORD NULL' : `PASSWORD ${quoteLiteral(input.passwordVerifier)}`;
  return [
    input.exists ? `ALTER ROLE ${name} WITH ${login} ${password}` : `CREATE ROLE ${name} WITH ${login} ${password}`,
    ...role.inRoles.map((parent) => `GRANT ${quoteIdent(parent)} TO ${name}`),
  ];
}

/** Statements for the owner's password on a local copy (CNPG applies it from the owner's Secret itself). */
export function ownerPasswordStatement(owner: string, verifier: string): string {
  return `ALTER ROLE ${quoteIdent(owner)} WITH PASSWORD ${quoteLiteral(verifier)}`;
}

/** Grants grouped by the database they must run in. */
export function grantStatementsByDatabase(roles: readonly TestRole[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const role of roles) {
    const name = quoteIdent(role.name);
    for (const grant of role.grants) {
      const schema = quoteIdent(grant.schema);
      const privileges = grant.privileges.includes('ALL') ? 'ALL PRIVILEGES' : [...new Set(grant.privileges)].join(', ');
      const statements = out.get(grant.database) ?? [];
      statements.push(
        `GRANT CONNECT ON DATABASE ${quoteIdent(grant.database)} TO ${name}`,
        `GRANT USAGE ON SCHEMA ${schema} TO ${name}`,
        `GRANT ${privileges} ON ALL TABLES IN SCHEMA ${schema} TO ${name}`,
      );
      // Inserting into a table with a serial or identity column needs the sequence.
      if (grant.privileges.some((p) => WRITE_PRIVILEGES.has(p))) {
        statements.push(`GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA ${schema} TO ${name}`);
      } else if (grant.privileges.includes('SELECT')) {
        statements.push(`GRANT SELECT ON ALL SEQUENCES IN SCHEMA ${schema} TO ${name}`);
      }
      out.set(grant.database, statements);
    }
  }
  return out;
}

/** What `plan` says about the roles. */
export function describeRoles(roles: readonly TestRole[]): string[] {
  return roles.map((role) => {
    const parts = [role.login ? 'LOGIN' : 'NOLOGIN', role.password ? `password ${String(role.password)}` : 'no password'];
    if (role.inRoles.length) parts.push(`member of ${role.inRoles.join(', ')}`);
    for (const g of role.grants) parts.push(`${g.privileges.join('/')} on ${g.database}.${g.schema}.*`);
    return `${role.name}: ${parts.join('; ')}`;
  });
}
