"""The pulumi-kubernetes plugin and the Python SDK that asks for it come from one pin
(`versions.PULUMI_KUBERNETES`): requirements.txt, the installed SDK's plugin request, the tools
module `servers/go/pulumi-kubernetes` and the build's version stamp must all name it."""

from __future__ import annotations

import json
import re
from importlib import metadata, resources

import servers
from servers import pulumi_kubernetes as plugin
from servers import toolchain
from stack_config import versions
from tests.harness.mock_engine import ROOT

# The pseudo-version the Go module proxy serves: commit f47bc2d6f199 of pulumi/pulumi-kubernetes,
# the commit its tag v4.25.0 points at.
PROVIDER_PSEUDO_VERSION = "v4.0.0-20260115033456-f47bc2d6f199"


def test_requirements_and_the_installed_sdk_name_the_pin() -> None:
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.M))
    assert pins["pulumi-kubernetes"] == versions.PULUMI_KUBERNETES == "4.25.0"
    assert metadata.version("pulumi-kubernetes") == versions.PULUMI_KUBERNETES


def test_the_sdk_asks_for_the_plugin_version_that_is_built() -> None:
    asked = json.loads(resources.files("pulumi_kubernetes").joinpath("pulumi-plugin.json").read_text())
    assert (asked["name"], asked["version"]) == ("kubernetes", versions.PULUMI_KUBERNETES)
    assert f"pkg/version.Version={versions.PULUMI_KUBERNETES}" in plugin.LDFLAGS


def test_the_tools_module_pins_the_commit_of_the_release() -> None:
    go = toolchain.GO_MODULES / plugin.MODULE
    assert toolchain.go_module_require(go, plugin.PROVIDER_MODULE) == PROVIDER_PSEUDO_VERSION
    tool = f"{plugin.PROVIDER_MODULE}/{plugin.MAIN}"
    assert re.search(rf"^tool {re.escape(tool)}$", (go / "go.mod").read_text(), re.M)


def test_the_plugin_is_a_tool_installed_only_when_named() -> None:
    assert "pulumi-kubernetes" in servers.TOOLS and "pulumi-kubernetes" not in servers.ORDER
    assert servers.get("pulumi-kubernetes").version == versions.PULUMI_KUBERNETES
    assert "pulumi-kubernetes" not in servers.closure(())
    assert servers.closure(["pulumi", "pulumi-kubernetes"]) == ["pulumi", "pulumi-kubernetes"]
