"""Real SPIRE, OpenZiti, Keycloak and PostgreSQL servers on loopback, at the pinned versions
(`stack_config/versions.py`): the test suites' real-server tier and a local playground without
Docker. `scripts/servers install|start|stop|env|versions` is the command line; tests use
`install`, `start` and `Run.stop` directly.

Each server is a module with one `SERVER` object (see `Server`): `install` brings its binaries into
the cache (idempotent), `start` launches it in a `Run` and returns the section of the state
document that describes it (endpoints, credentials, CA bundles, sockets)."""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from servers.errors import ServerError
from servers.process import Run, load, remove_scratch, stop_procs

ORDER = ("postgres", "keycloak", "spire", "ziti", "kubernetes")
TOOLS = ("pulumi", "pulumi-kubernetes")
"""Installed like the servers but never started (`servers/pulumi.py`: the Pulumi engine;
`servers/pulumi_kubernetes.py`: the pulumi-kubernetes provider plugin it runs). Only named
ones are installed (`install(())` means ORDER); `start` skips them, so `scripts/servers start`,
with or without names, never "starts" a tool."""


class Server(Protocol):
    name: ClassVar[str]
    version: ClassVar[str]
    requires: ClassVar[tuple[str, ...]]

    def install(self) -> None:
        """Bring the pinned binaries into the cache (seconds when they are there)."""

    def start(self, run: Run, deps: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Start in `run` (`deps`: the state sections of what it requires); returns its section."""

    def reported_version(self) -> str:
        """The version the installed binary reports (ServerError when it is not installed)."""

    def path_entries(self) -> list[Path]:
        """Directories holding the server's binaries (for `scripts/servers env`)."""


def get(name: str) -> Server:
    """The `SERVER` of `servers/<name>.py`."""
    if name not in ORDER + TOOLS:
        raise ServerError(name, f"unknown server (known: {', '.join(ORDER + TOOLS)})")
    server: Server = importlib.import_module(f"servers.{name.replace('-', '_')}").SERVER
    return server


def closure(names: Sequence[str]) -> list[str]:
    """`names` (all servers, no tools, when empty) with everything they require, in start order
    (tools last)."""
    wanted: set[str] = set()
    todo = list(names or ORDER)
    while todo:
        n = todo.pop()
        if n not in wanted:
            wanted.add(n)
            todo.extend(get(n).requires)
    return [n for n in ORDER + TOOLS if n in wanted]


def install(names: Sequence[str] = ()) -> list[str]:
    """Install `names` and what they require; returns them in start order."""
    order = closure(names)
    for n in order:
        get(n).install()
    return order


def start(names: Sequence[str] = (), root: Path | None = None, run: Run | None = None) -> Run:
    """Install (if needed) and start `names` with their requirements, skipping what `run` already
    has; on failure stop what this call started and re-raise."""
    order = install(names)
    if run is None:
        run = Run(root=root or Path(tempfile.mkdtemp(prefix="identity-platform-servers-")))
        run.save()
    before, scratch_before = len(run.procs), len(run.scratch)
    try:
        for n in order:
            if n in run.servers or n in TOOLS:
                continue
            deps = {d: run.servers[d] for d in get(n).requires}
            run.record(n, {"version": get(n).version, **get(n).start(run, deps)})
    except BaseException:
        stop_procs(list(reversed(run.procs[before:])))
        remove_scratch(run.scratch[scratch_before:])
        del run.procs[before:], run.scratch[scratch_before:]
        run.save()
        raise
    return run


def stop(state_path: Path) -> list[str]:
    """Stop what the state document lists; returns the processes that needed SIGKILL."""
    run = load(state_path)
    killed = stop_procs(list(reversed(run.procs)))
    remove_scratch(run.scratch)
    return [f"{p.server}/{p.name} (pid {p.pid})" for p in killed]


__all__ = ["ORDER", "TOOLS", "Run", "Server", "ServerError", "closure", "get", "install", "start", "stop"]
