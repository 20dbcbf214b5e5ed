"""Fixtures shared by every test module: program runs under the mock engine, the dynamic
provider host, and loopback servers. All are built from `tests/harness/`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pulumi.dynamic import ResourceProvider

from tests.harness.dynamic_host import DynamicProviderHost
from tests.harness.loopback import App, LoopbackServer
from tests.harness.mock_engine import ProgramRun, run_program, stack_files

STACKS = stack_files()
MODES = [pytest.param(True, id="preview"), pytest.param(False, id="update")]

_RUNS: dict[tuple[str, bool], ProgramRun] = {}


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
