#!/usr/bin/env bash
# The peer db-refresher is measured against: the CronJob-style script people
# write by hand. Same work: stop and remove the old copy, pg_basebackup
# (streamed WAL, fast checkpoint), pg_ctl start, and the two verification
# queries (database size, user tables per schema). No checks, no record.
set -euo pipefail
: "${PGBIN:?}" "${DATA_DIR:?}" "${TARGET_PORT:?}" "${SOURCE_HOST:?}" "${SOURCE_PORT:?}" "${SOURCE_USER:?}" "${PGPASSFILE:?}" "${VERIFY_DB:?}"

if [ -f "$DATA_DIR/postmaster.pid" ]; then
  "$PGBIN/pg_ctl" stop -D "$DATA_DIR" -m fast -w >/dev/null
fi
rm -rf "$DATA_DIR"
"$PGBIN/pg_basebackup" -D "$DATA_DIR" -X stream -c fast -w \
  -d "host=$SOURCE_HOST port=$SOURCE_PORT user=$SOURCE_USER"
cat >>"$DATA_DIR/postgresql.auto.conf" <<CONF
port = $TARGET_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
archive_mode = 'off'
CONF
"$PGBIN/pg_ctl" start -D "$DATA_DIR" -w -l "$DATA_DIR/server.log" >/dev/null
"$PGBIN/psql" -X -q -At -h 127.0.0.1 -p "$TARGET_PORT" -U "$SOURCE_USER" -d "$VERIFY_DB" \
  -c "SELECT pg_database_size(current_database())" \
  -c "SELECT n.nspname, count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p') AND NOT c.relispartition AND n.nspname NOT IN ('pg_catalog','information_schema') GROUP BY 1" >/dev/null
