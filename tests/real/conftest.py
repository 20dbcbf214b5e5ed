"""The real-server tier: one `servers.Run` per test session, servers started on first use.

`real_servers("spire")` returns the server's state section (the same document `scripts/servers
start` writes) and starts it, with what it requires, the first time it is asked for. Every test
in this folder is marked `real_server`; `--no-real-servers` skips them (never in CI). A server
that cannot be installed or started fails the tests that need it with the server's log tail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import servers
from servers.process import Run

RealServers = Callable[[str], dict[str, Any]]

STARTED: dict[str, str] = {}
"""server -> version it reported, for the run report (tests/conftest.py prints it)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.real_server)


@pytest.fixture(scope="session")
def servers_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    run = Run(root=tmp_path_factory.mktemp("servers"))
    yield run
    run.stop()


@pytest.fixture(scope="session")
def real_servers(servers_run: Run) -> RealServers:
    failures: dict[str, BaseException] = {}

    def get(name: str) -> dict[str, Any]:
        if name in failures:
            raise failures[name]
        if name not in servers_run.servers:
            try:
                servers.start([name], run=servers_run)
            except servers.ServerError as e:
                failures[name] = e
                raise
            for n in servers.closure([name]):
                STARTED.setdefault(n, servers.get(n).reported_version())
        return servers_run.servers[name]

    return get
