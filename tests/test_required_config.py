"""The Pulumi CLI's required-config-keys rule, checked without the CLI for every stack file.

A key declared under `config:` in `Pulumi.yaml` in the project's namespace, with neither a
`default` nor a project-level `value`, is required: `pulumi preview/up/refresh/destroy/import`
refuse to start when a `Pulumi.<stack>.yaml` does not set it (pulumi/pulumi#21797; the CLI's
`mergeConfig` in pkg/workspace/config.go collects such keys as "missing configuration value").
The mock engine never applies that rule, so it is checked here for every stack file.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.harness.mock_engine import ROOT, stack_files


def _qualified(key: str, project: str) -> str:
    """A `Pulumi.yaml` key as the CLI names it (bare keys are in the project's namespace)."""
    return key if ":" in key else f"{project}:{key}"


def _stack_key(key: str) -> str | None:
    """A stack file's key as the CLI parses it (`ns:name`, or the old `ns:config:name`); a key
    without a namespace is no key at all there (the CLI rejects it), so it sets nothing."""
    parts = key.split(":")
    if len(parts) == 2:
        return key
    if len(parts) == 3 and parts[1] == "config":
        return f"{parts[0]}:{parts[2]}"
    return None


def missing_required_keys(project_doc: dict[str, Any], stack_doc: dict[str, Any]) -> list[str]:
    """The project-namespace keys `project_doc` declares without default or value that
    `stack_doc` (a parsed `Pulumi.<stack>.yaml`) does not set, as the CLI reports them."""
    project = project_doc["name"]
    stack_keys = {_stack_key(k) for k in (stack_doc.get("config") or {})}
    missing = []
    for key, decl in (project_doc.get("config") or {}).items():
        full = _qualified(key, project)
        if full.split(":", 1)[0] != project:
            continue  # the CLI applies the rule to the project's own namespace only
        has_default = isinstance(decl, dict) and decl.get("default") is not None
        has_value = not isinstance(decl, dict) or decl.get("value") is not None
        if not has_default and not has_value and full not in stack_keys:
            missing.append(full)
    return sorted(missing)


def _load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / name).read_text()) or {}
    return doc


def test_there_are_stack_files_to_check() -> None:
    assert {"dev", "prod"} <= set(stack_files())


@pytest.mark.parametrize("stack", stack_files())
def test_every_stack_file_key_has_a_namespace(stack: str) -> None:
    bad = [k for k in (_load(f"Pulumi.{stack}.yaml").get("config") or {}) if _stack_key(k) is None]
    assert not bad, f"Pulumi.{stack}.yaml: keys without `<namespace>:` (the CLI rejects them): {bad}"


@pytest.mark.parametrize("stack", stack_files())
def test_every_declared_key_without_default_is_set_by_the_stack_file(stack: str) -> None:
    missing = missing_required_keys(_load("Pulumi.yaml"), _load(f"Pulumi.{stack}.yaml"))
    assert not missing, (
        f"Pulumi.{stack}.yaml does not set {missing}, which Pulumi.yaml declares without a default: "
        "the Pulumi CLI refuses to run this stack (give the key a default or set it in every stack file)"
    )


def test_the_check_finds_what_the_cli_would_refuse() -> None:
    project = {
        "name": "p",
        "config": {
            "needed": {"type": "string"},
            "described": {"description": "no type, no default: still required"},
            "p:qualified": {"type": "boolean"},
            "defaulted": {"type": "string", "default": "x"},
            "falsy-default": {"type": "boolean", "default": False},
            "valued": {"value": 3},
            "shorthand": "a project-level value",
            "aws:region": {"type": "string"},
        },
    }
    stack = {"config": {"p:described": {"a": 1}, "other:needed": "x"}}
    assert missing_required_keys(project, stack) == ["p:needed", "p:qualified"]
    assert missing_required_keys(project, {"config": {"p:needed": "", "p:config:qualified": True,
                                                      "p:described": 1}}) == []
    assert missing_required_keys(project, {"config": {"needed": "bare keys set nothing"}})[1] == "p:needed"
    assert missing_required_keys(project, {}) == ["p:described", "p:needed", "p:qualified"]
