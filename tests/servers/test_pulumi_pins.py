"""The Pulumi engine and the Pulumi Python packages come from the one pin table
(stack_config/versions.py): requirements.txt, the tools module `servers/go/pulumi` and the
installed SDK must all name it, so the CLI, its language host and the SDK cannot drift apart."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

import servers
from servers import pulumi as engine
from servers import toolchain
from stack_config import versions
from tests.harness.mock_engine import ROOT


def _requirements() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def _semver(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def test_requirements_pin_the_pulumi_packages_of_the_pin_table() -> None:
    req = _requirements()
    assert req["pulumi"] == versions.PULUMI_PYTHON_SDK
    assert req["pulumi-tls"] == versions.PULUMI_TLS
    assert req["pulumi-random"] == versions.PULUMI_RANDOM


def test_the_installed_sdk_is_the_pinned_one() -> None:
    assert metadata.version("pulumi") == versions.PULUMI_PYTHON_SDK
    assert metadata.version("pulumi-tls") == versions.PULUMI_TLS
    assert metadata.version("pulumi-random") == versions.PULUMI_RANDOM


def test_the_tools_module_builds_the_pinned_cli_against_the_same_sdk() -> None:
    go = toolchain.GO_MODULES / engine.MODULE
    assert toolchain.go_module_require(go, "github.com/pulumi/pulumi/pkg/v3") == f"v{versions.PULUMI}"
    assert toolchain.go_module_require(go, "github.com/pulumi/pulumi/sdk/v3") == f"v{versions.PULUMI}"
    assert re.search(r"^tool github\.com/pulumi/pulumi/pkg/v3/cmd/pulumi$", (go / "go.mod").read_text(), re.M)
    assert (go / engine.LANGUAGE_HOST / "main.go").is_file()
    assert f"version.Version=v{versions.PULUMI}" in engine.LDFLAGS


def test_the_cli_is_not_older_than_the_sdk_it_runs() -> None:
    assert _semver(versions.PULUMI) >= _semver(versions.PULUMI_PYTHON_SDK)


def test_the_engine_is_a_tool_installed_only_when_named_and_never_started() -> None:
    assert "pulumi" in servers.TOOLS and "pulumi" not in servers.ORDER
    assert servers.get("pulumi").version == versions.PULUMI
    assert "pulumi" not in servers.closure(())
    assert servers.closure(["pulumi"]) == ["pulumi"]
    assert servers.closure(["ziti", "pulumi"])[-1] == "pulumi"


def test_the_readme_names_the_pinned_engine() -> None:
    text = (ROOT / "README.md").read_text()
    assert re.search(rf"\b{re.escape(versions.PULUMI)}\b", text), f"README does not mention {versions.PULUMI}"


def test_without_go_the_engine_install_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_PLATFORM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no `go` here
    with pytest.raises(servers.ServerError, match=r"^go: the Go toolchain is not installed"):
        servers.install(["pulumi"])
    assert not list((tmp_path / "cache").rglob("pulumi-*")), "nothing half-built is left behind"
