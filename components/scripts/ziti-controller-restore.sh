# shellcheck shell=sh
# restoreOnFirstStart for the Ziti controller (`sh -c THIS` in a one-shot container): PKI, config and
# the latest database snapshot into an empty data volume. The snapshot (a bbolt file) goes where
# config.yml's `db:` names the database, so the image's bootstrap finds config and database and only
# renews the leaf certificates. ZITI_HOME is where the controller sees the volume (config.yml's paths
# start there); DATA_DIR is where this container sees it.
set -eu
data="${DATA_DIR:-/data}" backup="${BACKUP_DIR:-/backup}" home="${ZITI_HOME:-/ziti-controller}"
if [ -s "$data/config.yml" ]; then
  echo "restoreOnFirstStart: the controller volume is initialised; nothing to restore"
elif [ -s "$backup/ctrl.db" ] && [ -s "$backup/config.yml" ] && [ -d "$backup/pki" ]; then
  db="$(sed -n 's/^db:[[:space:]]*"\{0,1\}\([^"]*\)"\{0,1\}[[:space:]]*$/\1/p' "$backup/config.yml")"
  case "$db" in
    "$home"/*) ;;
    *) echo "restoreOnFirstStart: config.yml names no database under $home (db: '$db')" >&2; exit 1 ;;
  esac
  target="$data/${db#"$home"/}"
  cp -a "$backup/pki" "$data/pki"
  mkdir -p "$(dirname "$target")"
  cp "$backup/ctrl.db" "$target.partial" && mv "$target.partial" "$target"
  cp "$backup/config.yml" "$data/config.yml"
  echo "restoreOnFirstStart: restored the controller from the bucket"
else
  echo "restoreOnFirstStart: no complete backup in the bucket; the controller bootstraps empty" >&2
fi
chown -R 2171:2171 "$data"
