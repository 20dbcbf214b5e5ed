# shellcheck shell=sh
# restoreOnFirstStart for SPIRE on SQLite (`sh -c THIS` in a one-shot container): copy the latest
# backup into an empty data volume; a volume that holds a datastore is left alone.
set -eu
data="${DATA_DIR:-/data}" backup="${BACKUP_DIR:-/backup}"
if [ -s "$data/datastore.sqlite3" ]; then
  echo "restoreOnFirstStart: the volume already holds a datastore; nothing to restore"
elif [ -s "$backup/datastore.sqlite3" ]; then
  cp "$backup/datastore.sqlite3" "$data/datastore.sqlite3"
  if [ -s "$backup/keys.json" ]; then cp "$backup/keys.json" "$data/keys.json"; fi
  echo "restoreOnFirstStart: restored the SPIRE datastore from the bucket"
else
  echo "restoreOnFirstStart: no backup in the bucket; SPIRE starts empty" >&2
fi
chown -R 1000:1000 "$data"
