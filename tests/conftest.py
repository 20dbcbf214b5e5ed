"""Fixtures shared by every test module: program runs under the mock engine, the dynamic
provider host, and loopback servers. All are built from `tests/harness/`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pulumi.dynamic import ResourceProvider

from dynamic_providers._transport import forget_sessions
from tests.harness.dynamic_host import DynamicProviderHost
from tests.harness.loopback import App, LoopbackServer
from tests.harness.mock_engine import ProgramRun, run_program, stack_files, swarm_stack_files

pytest_plugins = ["tests.harness.real_servers"]

STACKS = stack_files()
SWARM_STACKS = swarm_stack_files()
MODES = [pytest.param(True, id="preview"), pytest.param(False, id="update")]

_RUNS: dict[tuple[str, bool], ProgramRun] = {}


@pytest.fixture(autouse=True)
def _cold_sessions() -> Iterator[None]:
    """Each test starts without the logins and pooled connections of the tests before it."""
    yield
    forget_sessions()


def program_run(stack: str, preview: bool) -> ProgramRun:
    """The program evaluated once per (stack, mode) per session; tests only read the result."""
    key = (stack, preview)
    if key not in _RUNS:
        _RUNS[key] = run_program(stack, preview)
    return _RUNS[key]


@pytest.fixture(
    params=[pytest.param((s, p), id=f"{s}-{'preview' if p else 'update'}") for s in STACKS for p in (True, False)]
)
def every_run(request: pytest.FixtureRequest) -> ProgramRun:
    """`__main__.py` for every stack file, in preview and in update mode."""
    stack, preview = request.param
    return program_run(stack, preview)


@pytest.fixture(
    params=[pytest.param((s, p), id=f"{s}-{'preview' if p else 'update'}") for s in SWARM_STACKS for p in (True, False)]
)
def swarm_run(request: pytest.FixtureRequest) -> ProgramRun:
    """`__main__.py` for every stack file of platform swarm (the program runs the servers)."""
    stack, preview = request.param
    return program_run(stack, preview)


@pytest.fixture
def dynamic_host() -> Iterator[Callable[..., DynamicProviderHost]]:
    """Factory: `dynamic_host(provider, resource_type=...)` starts `python -m pulumi.dynamic`."""
    hosts: list[DynamicProviderHost] = []

    def start(provider: ResourceProvider, **kwargs: Any) -> DynamicProviderHost:
        host = DynamicProviderHost(provider, **kwargs)
        hosts.append(host)
        host.configure({})
        return host

    yield start
    for h in hosts:
        h.close()


@pytest.fixture
def loopback() -> Iterator[Callable[..., LoopbackServer]]:
    """Factory: `loopback(app, tls=True)` serves a fake on 127.0.0.1 until the test ends."""
    servers: list[LoopbackServer] = []

    def start(app: App, tls: bool = True) -> LoopbackServer:
        srv = LoopbackServer(app, tls=tls).start()
        servers.append(srv)
        return srv

    yield start
    for s in servers:
        s.stop()


# --- the real-server tier (tests/real/): option, skip, and the report line ----------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-real-servers",
        action="store_true",
        help="skip the real-server tier (tests/real/) for quick local runs; CI never passes it",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--no-real-servers"):
        return
    skip = pytest.mark.skip(reason="--no-real-servers: the real-server tier was not asked for")
    for item in items:
        path = str(item.fspath)
        if item.get_closest_marker("real_server") or "/tests/real/" in path or "/tests/engine/" in path:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> list[str]:
    from stack_config import versions

    tier = "skipped (--no-real-servers)" if config.getoption("--no-real-servers") else "on"
    return [
        f"real servers {tier}: SPIRE {versions.SPIRE}, OpenZiti {versions.ZITI}, "
        f"Keycloak {versions.KEYCLOAK}, PostgreSQL {versions.POSTGRES} (stack_config/versions.py)"
    ]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    from tests.harness.real_servers import STARTED

    if config.getoption("--no-real-servers"):
        terminalreporter.write_line("real servers: not run (--no-real-servers)")
        return
    if not STARTED:
        terminalreporter.write_line("real servers: none started in this run")
        return
    for name, reported in STARTED.items():
        terminalreporter.write_line(f"real servers: {name} ran (installed binary reports {reported})")
