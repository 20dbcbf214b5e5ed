# The Ziti controller's backup job (`bash -c THIS`): the database snapshot (management API, via the
# CLI) plus PKI and config, copied onto the rclone volume as closed files. The controller writes the
# snapshot next to its database file as `<db>-YYYYMMDD-HHMMSS`; leftovers of an interrupted run are
# removed first, so the file with that suffix afterwards is this run's (an mtime marker is not
# enough: the snapshot can land within the file system's timestamp granularity).
set -u
shopt -s globstar nullglob
state="${STATE_DIR:-/tmp}" backup="${BACKUP_DIR:-/backup}"
ctrl="https://${ZITI_CTRL_ADVERTISED_ADDRESS}:${ZITI_CTRL_ADVERTISED_PORT}"
ca="${ZITI_HOME}/pki/root/certs/root.cert"
export ZITI_CONFIG_DIR="$state/ziti-cli"  # the CLI's login state, off the controller's volume
publish() {  # one closed file per object: copy beside the target, then rename over it
  cp "$1" "$backup/$2.partial" && mv -f "$backup/$2.partial" "$backup/$2"
}
list_snapshots() {
  snaps=("$ZITI_HOME"/**/*-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9][0-9][0-9][0-9][0-9][0-9])
}
backup_once() {
  ziti edge login "$ctrl" --username "$ZITI_USER" --password "$(<"$ZITI_PWD_FILE")" --ca "$ca" >/dev/null || return 1
  list_snapshots; rm -f "${snaps[@]}"
  ziti edge db snapshot >/dev/null || return 1
  sleep "${SNAPSHOT_WAIT_SECONDS:-5}"  # the snapshot may be written asynchronously
  list_snapshots
  local snap=""  # glob results sort by name, and names by their timestamp: the last is the newest
  if (( ${#snaps[@]} )); then snap="${snaps[${#snaps[@]}-1]}"; fi
  [[ -n "$snap" ]] || { echo "backup: no snapshot file appeared" >&2; return 1; }
  publish "$snap" ctrl.db || return 1
  publish "$ZITI_HOME/config.yml" config.yml || return 1
  mkdir -p "$backup/pki" && cp -a "$ZITI_HOME/pki/." "$backup/pki/" || return 1
  rm -f "$snap"
}
while :; do
  if backup_once; then
    date +%s > "$state/last-success"
    echo "backup: wrote ctrl.db, config.yml and pki"
    sleep "$BACKUP_INTERVAL_SECONDS"
  else
    echo "backup: failed; retrying in ${RETRY_SECONDS:-30}s" >&2
    sleep "${RETRY_SECONDS:-30}"
  fi
done
