"""SPIRE's SQLite backup job (`python3 -c THIS` in the python image, prod, `spire.datastore: sqlite3`).

Every BACKUP_INTERVAL_SECONDS: SQLite's online backup API makes a consistent copy while SPIRE
writes, `PRAGMA integrity_check` vets it, and the copy and the KeyManager's `keys.json` are
published onto the rclone volume as closed files (copied beside the target, renamed over it), so
rclone uploads only complete files. The time of the last success goes to STATE_DIR/last-success,
which the job's healthcheck reads. A failure is logged and retried after 30 s.
"""

import os
import shutil
import sqlite3
import sys
import time

DATA = os.environ.get("DATA_DIR", "/data")
DST = os.environ.get("BACKUP_DIR", "/backup")
STATE = os.environ.get("STATE_DIR", "/tmp")  # noqa: S108 - the container's own scratch space
SRC, KEYS = f"{DATA}/datastore.sqlite3", f"{DATA}/keys.json"


def publish(local: str, name: str) -> None:
    """One closed file per object: copy next to the target, then rename over it."""
    shutil.copyfile(local, f"{DST}/{name}.partial")
    os.replace(f"{DST}/{name}.partial", f"{DST}/{name}")


def once() -> None:
    src = sqlite3.connect(f"file:{SRC}?mode=ro", uri=True, timeout=30)
    copy = f"{STATE}/datastore.sqlite3"
    dst = sqlite3.connect(copy)
    try:
        src.backup(dst)
        if dst.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise RuntimeError("integrity_check failed on the backup copy")
    finally:
        src.close()
        dst.close()
    publish(copy, "datastore.sqlite3")
    if os.path.exists(KEYS):
        publish(KEYS, "keys.json")
    with open(f"{STATE}/last-success", "w") as f:
        f.write(str(int(time.time())))


def main() -> None:
    interval = int(os.environ["BACKUP_INTERVAL_SECONDS"])
    while True:
        try:
            if not os.path.exists(SRC):
                raise FileNotFoundError(SRC)
            once()
            print("backup: wrote datastore.sqlite3", flush=True)
            time.sleep(interval)
        except Exception as e:  # noqa: BLE001 - any failure: log it and try again
            print(f"backup failed: {e!r}; retrying in 30s", file=sys.stderr, flush=True)
            time.sleep(30)


if __name__ == "__main__":
    main()
