"""Shell exports that make a shell use exactly the installed, pinned binaries."""

from __future__ import annotations

import os

import servers
from servers import cache
from servers.errors import ServerError


def exports() -> dict[str, str]:
    """PATH with every installed server's and tool's bin directories first, and the cache root."""
    entries: list[str] = []
    for name in servers.ORDER + servers.TOOLS:
        try:
            entries += [str(p) for p in servers.get(name).path_entries() if p.is_dir()]
        except ServerError:
            continue
    return {
        "PATH": os.pathsep.join([*entries, os.environ.get("PATH", "")]),
        "IDENTITY_PLATFORM_CACHE": str(cache.cache_root()),
    }
