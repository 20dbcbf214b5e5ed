#!/bin/bash
# Runs only when PostgreSQL initialises an empty data directory (docker-entrypoint-initdb.d).
set -euo pipefail
dump="${BACKUP_DIR:-/backup}/${POSTGRES_DB}.dump"
if [ -s "$dump" ]; then
  echo "restoreOnFirstStart: restoring $dump"
  pg_restore --exit-on-error --no-owner --role="$POSTGRES_USER" \
    --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" "$dump"
else
  echo "restoreOnFirstStart: no backup at $dump; starting with an empty database" >&2
fi
