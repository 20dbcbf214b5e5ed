"""The pack itself, started the way the CLI starts it (`python -m pulumi.policy <engine> policy`),
answers the analyzer protocol: it lists our policies and reports a violating resource."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policy import validators as v
from tests.harness.mock_engine import ROOT


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulumi.policy", "127.0.0.1:1", str(ROOT / "policy")],
        cwd=ROOT / "policy",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        if not port.isdigit():
            proc.kill()
            pytest.fail(f"policy pack did not start: {port!r} {proc.stderr.read() if proc.stderr else ''}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_pack_lists_every_policy_as_mandatory(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == v.PACK_NAME
    names = {p.name: p.enforcementLevel for p in info.policies}
    assert set(names) == {r.name for r in v.RULES} | {"stateful-data-not-on-named-rclone-volumes"}
    assert set(names.values()) == {analyzer_pb2.MANDATORY}


def test_pack_reports_a_violating_service(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    props = struct_pb2.Struct()
    props.update({"taskSpec": {"containerSpec": {"image": "postgres", "env": {"POSTGRES_PASSWORD": "s3cret"}}}})
    resp = analyzer.Analyze(
        analyzer_pb2.AnalyzeRequest(type=v.SERVICE, properties=props, urn="urn:pulumi:dev::p::svc::pg", name="pg"),
        timeout=30,
    )
    found = {d.policyName for d in resp.diagnostics}
    assert {"images-pinned", "no-secret-env-values", "healthchecks-present"} <= found
    assert all(d.enforcementLevel == analyzer_pb2.MANDATORY for d in resp.diagnostics)
    assert all("s3cret" not in d.message for d in resp.diagnostics)


def test_pack_metadata_is_a_python_pack_with_its_own_venv() -> None:
    meta = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert meta["runtime"]["name"] == "python" and meta["runtime"]["options"]["virtualenv"] == "venv"
    reqs = (ROOT / "policy" / "requirements.txt").read_text().split()
    dev = (ROOT / "requirements-dev.txt").read_text() + (ROOT / "requirements.txt").read_text()
    for pin in (r for r in reqs if "==" in r):
        assert pin in dev, f"policy/requirements.txt pins {pin}, which the tests do not run with"
