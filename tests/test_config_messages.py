"""The config gate's own wording: dev defaults that survive a partial section, YAML scalars a user
types where a string is expected, seconds said as seconds, the providers' URL and secret rules at
load, plain wording instead of pydantic's, and no duplicate line for a misspelt required key.

Like tests/test_config_gate.py, each case feeds a stack file as the CLI hands it over, with one
change, and asserts the exact user-facing parts of each line.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_config_gate import P, load, problems, set_


def only(stack: str, changes: dict[Any, Any]) -> list[str]:
    """The problem lines, without the `identity-platform:` prefix."""
    return [line.removeprefix(f"{P}:") for line in problems(stack, changes)]


# -- 1. swarm dev: a partial section keeps the section's other defaults ----------------------------


class TestDevDefaultsPerField:
    @pytest.mark.parametrize(
        ("changes", "check"),
        [
            pytest.param({"keycloak.realm": "acme"},
                         lambda c: (c.keycloak.realm, c.keycloak.hostname, c.keycloak.published_port)
                         == ("acme", "localhost", 8080), id="keycloak-realm"),
            pytest.param({"ziti.advertisedPort": 1281}, lambda c: (c.ziti.advertised_port, c.ziti.advertised_address,
                                                                  c.ziti.cluster_trust_domain,
                                                                  c.ziti.router_advertised_address)
                         == (1281, "localhost", "ctrl.dev.zt.internal", "localhost"), id="ziti-port"),
            pytest.param({"spire.caTtl": "48h"}, lambda c: (c.spire.ca_ttl, c.spire.trust_domain)
                         == ("48h", "dev.zt.internal"), id="spire-ca-ttl"),
            pytest.param({("nodes", "local", "labels", "rack"): "a1"},
                         lambda c: (c.nodes["local"].docker_host, c.nodes["local"].labels, c.nodes["local"].manager)
                         == ("unix:///var/run/docker.sock", {"zt.db": "true", "rack": "a1"}, True), id="node-label"),
        ],
    )  # fmt: skip
    def test_a_nested_key_keeps_the_other_defaults(self, changes: dict[Any, Any], check: Any) -> None:
        assert check(load("dev", changes))

    def test_a_value_set_to_null_is_refused_without_none_in_the_message(self) -> None:
        lines = only("dev", {"keycloak.hostname": None})
        assert lines == [f"keycloak.hostname: required: set it {set_('keycloak.hostname')}"]
        assert not any("None" in line for line in problems("dev", {"keycloak.hostname": None}))
