/**
 * SQL text, kept in one place. Verification costs a fixed number of catalog
 * queries per database (never one per table), so it takes the same time for
 * ten tables or ten thousand.
 */

/** Size and owner of the connected database. */
export const DATABASE_SIZE_AND_OWNER = `
SELECT pg_database_size(d.oid)::bigint AS size_bytes, pg_get_userbyid(d.datdba) AS owner
FROM pg_database d WHERE d.datname = current_database()`;

/**
 * User tables per schema: ordinary and partitioned tables, not partitions
 * (relispartition) so a partitioned table counts once, whatever its partitions.
 */
export const TABLES_PER_SCHEMA = `
SELECT n.nspname AS schema, count(*)::int AS tables
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp\\_%'
GROUP BY n.nspname ORDER BY n.nspname`;

/** Which of the given schema-qualified tables exist; $1 is a text[] of "schema.table". */
export const PRESENT_TABLES = `
SELECT n.nspname || '.' || c.relname AS name
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND (n.nspname || '.' || c.relname) = ANY($1::text[])`;

/** Databases a refresh copies and that accept connections. */
export const CONNECTABLE_DATABASES = `
SELECT datname AS name FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname`;

export const SOURCE_SETTINGS = `
SELECT current_setting('server_version_num')::int AS server_version_num,
       current_setting('max_wal_senders')::int AS max_wal_senders,
       (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'walsender') AS active_wal_senders,
       (SELECT coalesce(json_agg(json_build_object('name', spcname, 'location', pg_tablespace_location(oid))), '[]'::json)
          FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')) AS tablespaces,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS is_superuser,
       pg_has_role(current_user, 'pg_read_all_settings', 'USAGE') AS can_read_settings,
       (current_setting('server_version_num')::int >= 150000 AND pg_has_role(current_user, 'pg_checkpoint', 'USAGE')) AS has_pg_checkpoint,
       (SELECT json_object_agg(datname, pg_get_userbyid(datdba)) FROM pg_database WHERE NOT datistemplate) AS database_owners,
       pg_size_bytes(current_setting('wal_segment_size'))::bigint AS wal_segment_bytes`;

export const DATA_DIRECTORY = `SELECT current_setting('data_directory') AS data_directory`;

/** Total size of all databases; needs CONNECT on each or pg_read_all_stats. */
export const TOTAL_SIZE = `SELECT sum(pg_database_size(oid))::bigint AS total FROM pg_database`;
