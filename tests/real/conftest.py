"""The real-server tier: every test in this folder is marked `real_server`; `--no-real-servers`
skips them (never in CI). The fixtures (`real_servers`, `servers_run`) live in
tests/harness/real_servers.py, shared with tests/engine/."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.real_servers import STARTED, RealServers

__all__ = ["STARTED", "RealServers"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.real_server)
