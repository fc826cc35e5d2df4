import type { PgEndpoint } from '../config/types.js';
import type { SqlConnector, SqlSession } from '../ports.js';

/**
 * How the safe-copy phases reach the copy while it is private: as its
 * superuser, through a door only db-refresher has (local: a Unix socket in a
 * 0700 directory; CNPG: the one pg_hba rule that admits db-refresher).
 */
export interface CopyAccess {
  sql: SqlConnector;
  /** The private endpoint for a database on the copy. */
  endpoint(database: string): PgEndpoint;
  /** The database to use for cluster-wide statements (roles, ALTER SYSTEM). */
  maintenanceDatabase: string;
}

export function withCopySession<T>(access: CopyAccess, database: string, fn: (session: SqlSession) => Promise<T>): Promise<T> {
  return access.sql.withSession(access.endpoint(database), database, fn);
}
