"""Where installed servers live: a cache outside the repository, one directory per
(server, version, build inputs). A finished install carries a `.complete` stamp, so a second
`install` is a few stat calls; concurrent installs of the same entry wait on a file lock."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STAMP = ".complete"


def cache_root() -> Path:
    """`$IDENTITY_PLATFORM_CACHE`, else `$XDG_CACHE_HOME/identity-platform`, else `~/.cache/...`."""
    explicit = os.environ.get("IDENTITY_PLATFORM_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "identity-platform"


def key(*parts: str | bytes) -> str:
    """A short, stable digest of the build inputs (files' bytes, flags, toolchain version)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:12]


def entry(name: str, version: str, digest: str) -> Path:
    """The install directory of one server build: `<root>/servers/<name>-<version>-<digest>`."""
    return cache_root() / "servers" / f"{name}-{version}-{digest}"


def is_complete(path: Path) -> bool:
    return (path / STAMP).is_file()


@contextmanager
def building(path: Path) -> Iterator[bool]:
    """Hold the entry's lock; yields True when the caller must build (no stamp yet).

    A half-built directory from an interrupted run is wiped first. The stamp is written when the
    block exits without an exception.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.parent / f".{path.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_complete(path):
            yield False
            return
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        yield True
        (path / STAMP).write_text("ok\n")
