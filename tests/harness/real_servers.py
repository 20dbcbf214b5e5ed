"""The real-server fixtures, shared by every tier that needs real servers (tests/real/,
tests/engine/): one `servers.Run` per test session, servers started on first use.

`real_servers("spire")` returns the server's state section (the same document `scripts/servers
start` writes) and starts it, with what it requires, the first time it is asked for; a server that
cannot be installed or started fails the tests that need it with the server's log tail. Registered
for the whole suite by `pytest_plugins` in tests/conftest.py, so both tiers share one server each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import servers
from servers.process import Run
from tests.harness.kube_api import KubeApi

RealServers = Callable[[str], dict[str, Any]]

STARTED: dict[str, str] = {}
"""server -> version it reported, for the run report (tests/conftest.py prints it)."""


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


@pytest.fixture(scope="session")
def kube_api(real_servers: RealServers) -> KubeApi:
    """The real Kubernetes API server on loopback (`servers/kubernetes.py`), as its admin."""
    return KubeApi(real_servers("kubernetes"))
