"""What the tests run is what the stacks deploy: each installed server reports the pinned version."""

from __future__ import annotations

import pytest

import servers
from stack_config import versions

PINNED = {"spire": versions.SPIRE, "ziti": versions.ZITI, "keycloak": versions.KEYCLOAK, "postgres": versions.POSTGRES,
          "kubernetes": versions.KUBERNETES}


@pytest.mark.parametrize("name", servers.ORDER)
def test_the_installed_binary_reports_the_pinned_version(name: str) -> None:
    servers.install([name])
    reported = servers.get(name).reported_version()
    assert reported.lstrip("v") == PINNED[name], f"{name}: installed {reported}, pinned {PINNED[name]}"
