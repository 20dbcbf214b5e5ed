# shellcheck shell=sh
# The PostgreSQL backup job's loop (`sh -c THIS`): pg_dump every BACKUP_INTERVAL_SECONDS to a local
# file, then copied beside the target on the rclone volume and renamed over it (rclone uploads closed files).
set -u
state="${STATE_DIR:-/tmp}"
dump="$BACKUP_DIR/$PGDATABASE.dump"
while :; do
  if pg_dump --format=custom --file="$state/partial.dump" && cp "$state/partial.dump" "$dump.partial" \
      && mv -f "$dump.partial" "$dump"; then
    date +%s > "$state/last-success"
    echo "backup: wrote $dump"
    sleep "$BACKUP_INTERVAL_SECONDS"
  else
    echo "backup: pg_dump to $dump failed; retrying in ${RETRY_SECONDS:-30}s" >&2
    sleep "${RETRY_SECONDS:-30}"
  fi
  rm -f "$state/partial.dump"
done
