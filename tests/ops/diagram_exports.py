"""Realistic `pulumi stack export` and `pulumi preview --json` documents from the mock engine.

`record(stack)` evaluates the project's `__main__.py` under the mock engine (tests/harness) and
keeps what the engine would write: every resource with its type, parent, inputs, dependencies
and property dependencies (captured from each RegisterResource request). `state_export` lays it
out as `pulumi stack export` does (deployment v3: the Stack resource, default providers, every
resource), `preview_json` as `pulumi preview --json` does (one step per resource: op, urn,
provider, newState/oldState), with the op computed from a state and the new program run: new
URN create, gone URN delete, changed inputs update, or replace where a replace-on-change input
changed. The shapes follow real CLI output (`tests/engine/test_diagram_engine.py` records one).

`python -m tests.ops.diagram_exports` regenerates the committed diagrams in docs/ (the tests
check docs/diagram-dev.md is current).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi.runtime import rpc

from tests.harness import mock_engine
from tests.harness.mock_engine import PROJECT, ROOT, ProgramRun, Registered

DOCS = ROOT / "docs"
DEV_MERMAID = DOCS / "diagram-dev.md"
EXTERNAL_SVG = DOCS / "diagram-external.svg"
# The providers' own replace-on-change inputs that the scenarios touch.
REPLACE_ON_CHANGE = {
    "pulumi-python:dynamic/ziti:CertificateAuthority": {"cert_pem"},
    "pulumi-python:dynamic/spire:Entry": {"parent_id"},
    "tls:index/selfSignedCert:SelfSignedCert": {"validityPeriodHours", "subject"},
}
SECRET_SIG = rpc._special_sig_key
SECRET_VALUE = rpc._special_secret_sig
PROVIDER_ID = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the id the CLI gives providers during a preview


@dataclass
class Recorded:
    """One mock-engine evaluation with the property dependencies of each resource."""

    run: ProgramRun
    property_dependencies: dict[str, dict[str, list[str]]]

    @property
    def stack(self) -> str:
        return self.run.stack


@contextmanager
def _capturing() -> Iterator[dict[str, dict[str, list[str]]]]:
    """The mock engine's monitor, also keeping each request's propertyDependencies."""
    captured: dict[str, dict[str, list[str]]] = {}
    original = mock_engine.RecordingMonitor

    class Monitor(original):  # type: ignore[misc, valid-type]
        def RegisterResource(self, request: Any) -> Any:
            response = super().RegisterResource(request)
            captured[response.urn] = {k: list(v.urns) for k, v in request.propertyDependencies.items()}
            return response

    mock_engine.RecordingMonitor = Monitor  # type: ignore[misc]
    try:
        yield captured
    finally:
        mock_engine.RecordingMonitor = original  # type: ignore[misc]


def record(stack: str, *, preview: bool = False, config: dict[str, str] | None = None) -> Recorded:
    with _capturing() as captured:
        run = mock_engine.run_program(stack, preview=preview, config=config)
    return Recorded(run, captured)


def stack_urn(stack: str) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{stack}"


def _package(type_: str) -> str:
    pkg = type_.split(":", 1)[0]
    return "pulumi-python" if pkg == "pulumi-python" else pkg


def _provider_ref(stack: str, r: Registered) -> str:
    if r.provider:
        return r.provider
    pkg = _package(r.type)
    name = "default" if pkg == "pulumi-python" else "default_x"
    return f"urn:pulumi:{stack}::{PROJECT}::pulumi:providers:{pkg}::{name}::{PROVIDER_ID}"


def _values(value: Any, *, secrets: str) -> Any:
    """Inputs as a document shows them: secrets in clear, as "[secret]", or as ciphertext."""
    if isinstance(value, Mapping):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            if secrets == "clear":
                return _values(value.get("value"), secrets=secrets)
            if secrets == "masked":
                return "[secret]"
            return {SECRET_SIG: SECRET_VALUE, "ciphertext": "v1:bW9jay1jaXBoZXJ0ZXh0"}
        return {k: _values(v, secrets=secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_values(v, secrets=secrets) for v in value]
    return value


def _state(rec: Recorded, r: Registered, *, secrets: str, with_id: bool) -> dict[str, Any]:
    inputs = _values(r.inputs, secrets=secrets)
    state: dict[str, Any] = {"urn": r.urn, "custom": r.custom}
    if r.custom and with_id:
        state["id"] = f"{r.name}-id"
    state["type"] = r.type
    if r.custom:
        state["inputs"] = inputs
        state["outputs"] = inputs
    state["parent"] = r.parent or stack_urn(rec.stack)
    if r.dependencies:
        state["dependencies"] = list(r.dependencies)
    if r.custom:
        state["provider"] = _provider_ref(rec.stack, r)
    deps = rec.property_dependencies.get(r.urn, {})
    if deps:
        state["propertyDependencies"] = deps
    return state


def _stack_resource(stack: str) -> dict[str, Any]:
    return {"urn": stack_urn(stack), "custom": False, "type": "pulumi:pulumi:Stack", "outputs": {}}


def _default_providers(rec: Recorded) -> list[dict[str, Any]]:
    out = {}
    for r in rec.run.resources:
        if r.custom and not r.provider and not r.type.startswith("pulumi:providers:"):
            ref = _provider_ref(rec.stack, r)
            urn, _, pid = ref.rpartition("::")
            out[urn] = {"urn": urn, "custom": True, "id": pid, "type": urn.split("::")[2], "inputs": {}, "outputs": {}}
    return list(out.values())


def state_export(rec: Recorded, *, secrets: str = "ciphertext") -> dict[str, Any]:
    """`pulumi stack export` of the recorded run (`secrets="clear"`: as with --show-secrets)."""
    resources = [
        _stack_resource(rec.stack),
        *_default_providers(rec),
        *(_state(rec, r, secrets=secrets, with_id=True) for r in rec.run.resources),
    ]
    return {
        "version": 3,
        "deployment": {
            "manifest": {"time": "2025-01-01T00:00:00Z", "magic": "mock", "version": "v3.272.0"},
            "secrets_providers": {"type": "passphrase", "state": {"salt": "v1:mock"}},
            "resources": resources,
        },
    }


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> set[str]:
    return {k for k in set(old) | set(new) if k != "__provider" and old.get(k) != new.get(k)}


def preview_json(after: Recorded, before: Recorded | None = None) -> dict[str, Any]:
    """`pulumi preview --json` of `after` against the state `before` (None: an empty stack)."""
    old = {r.urn: r for r in (before.run.resources if before else [])}
    steps: list[dict[str, Any]] = []
    counts: dict[str, int] = {}

    def step(op: str, urn: str, new: dict[str, Any] | None, previous: dict[str, Any] | None) -> None:
        s: dict[str, Any] = {"op": op, "urn": urn}
        state = new or previous or {}
        if "provider" in state:
            s["provider"] = state["provider"]
        if previous is not None:
            s["oldState"] = previous
        if new is not None:
            s["newState"] = new
        if op in ("update", "replace"):
            s["diffReasons"] = sorted(_changed_keys(previous.get("inputs", {}) if previous else {}, new or {}))
        steps.append(s)
        counts[op] = counts.get(op, 0) + 1

    stack = after.stack
    root = _stack_resource(stack)
    step("same" if before else "create", stack_urn(stack), root, root if before else None)
    for r in after.run.resources:
        new = _state(after, r, secrets="masked", with_id=False)
        prev = old.get(r.urn)
        if prev is None:
            step("create", r.urn, new, None)
            continue
        assert before is not None
        prev_state = _state(before, prev, secrets="masked", with_id=True)
        changed = _changed_keys(_values(prev.inputs, secrets="clear"), _values(r.inputs, secrets="clear"))
        if not changed:
            step("same", r.urn, new, prev_state)
        elif changed & REPLACE_ON_CHANGE.get(r.type, set()):
            step("replace", r.urn, new, prev_state)
        else:
            step("update", r.urn, new, prev_state)
    if before is not None:
        gone = [r for r in before.run.resources if r.urn not in {a.urn for a in after.run.resources}]
        for r in reversed(gone):
            step("delete", r.urn, None, _state(before, r, secrets="masked", with_id=True))
    return {"config": {}, "steps": steps, "duration": 1000000000, "changeSummary": counts}


def parse_svg(text: str) -> ET.Element:
    """Graphviz's SVG as XML (its DOCTYPE names an external DTD, which is not fetched)."""
    body = re.sub(r"<!DOCTYPE[^>]*>", "", text)
    return ET.fromstring(body.encode())  # noqa: S314 (our own Graphviz output)


# -- the committed diagrams ------------------------------------------------------------------


def dev_mermaid() -> str:
    """docs/diagram-dev.md: the dev stack's state as `ops diagram --format mermaid` draws it."""
    from ops import diagram

    doc = state_export(record("dev"))
    graph = diagram.build_graph(diagram.resources_from_state(doc), stack="dev", source="state")
    return diagram.render_mermaid(graph, command="python -m ops diagram --stack dev --from state")


def external_graph() -> Any:
    """The external stack (Pulumi.external.yaml: generated root CA) from its state."""
    from ops import diagram

    doc = state_export(record("external"))
    return diagram.build_graph(diagram.resources_from_state(doc), stack="external", source="state")


def write_docs() -> list[Path]:
    from ops import diagram

    DOCS.mkdir(exist_ok=True)
    DEV_MERMAID.write_text(dev_mermaid())
    EXTERNAL_SVG.write_text(diagram.render_svg(external_graph()))
    return [DEV_MERMAID, EXTERNAL_SVG]


def _main() -> None:
    for path in write_docs():
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    _main()
