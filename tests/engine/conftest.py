"""The real-engine tier: the Pulumi CLI at the pin (`scripts/servers install pulumi`) runs real
Pulumi programs against the real servers of `servers/`.

The engine is installed on first use; when it cannot be (no Go toolchain, a failed build) the
tests fail with the build's log, never skip. The real-server fixtures are the suite-wide ones of
`tests/harness/real_servers.py` (one server each for both tiers); `--no-real-servers` skips this
tier too, and CI never passes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from servers import pulumi as engine
from servers import pulumi_kubernetes

__all__ = ["engine_bin", "k8s_plugin_bin"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.real_server)


@pytest.fixture(scope="session")
def engine_bin() -> Path:
    """The bin dir of the installed engine (builds it on first use; raises ServerError if it cannot)."""
    engine.SERVER.install()
    return engine.SERVER.path_entries()[0]


@pytest.fixture(scope="session")
def k8s_plugin_bin() -> Path:
    """The bin dir holding `pulumi-resource-kubernetes` (built on first use, like the engine)."""
    pulumi_kubernetes.SERVER.install()
    return pulumi_kubernetes.SERVER.path_entries()[0]
