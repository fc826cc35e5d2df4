import type { SandboxCluster } from '../../scripts/pg-sandbox.js';
import { Secret } from '../../src/config/secret.js';
import type { PgEndpoint } from '../../src/config/types.js';

/** A database of a sandbox cluster as its superuser, over TCP without TLS: how the masking tests reach a copy. */
export function superuserEndpoint(cluster: SandboxCluster, database: string): PgEndpoint {
  return {
    host: cluster.host,
    port: cluster.port,
    user: 'postgres',
    password: new Secret(cluster.superuserPassword, 'test'),
    dbname: database,
    sslmode: 'disable',
  };
}
