"""The pack itself, started the ways the CLI starts it, answers the analyzer protocol: it lists our
policies and reports a violating resource. It is started from the repository and from a copy
outside it under a name that is no Python identifier (as `pulumi policy publish` and a consumer's
checkout would hold it), with every import of the project's own packages refused, so the pack is
proven self-contained: its own modules and `requirements.txt`, nothing else."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policy import validators as v
from tests.harness.mock_engine import ROOT

# Installed before the pack runs: any import of the project's packages fails loudly.
NO_PROJECT = """
import sys
class NoProject:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"policy", "stack_config", "components", "dynamic_providers", "ops", "tests"}:
            raise ImportError(f"the policy pack imported {name} from the project")
        return None
sys.meta_path.insert(0, NoProject())
import runpy
"""
# How CLIs start a Python pack: 3.274's language host runs the directory (`python <pack> <engine>`,
# RunPlugin); older CLIs ran the pulumi-analyzer-policy-python shim (`python -m pulumi.policy <engine> <pack>`).
STARTS = {
    "run-directory": "sys.argv = [PACK, ENGINE]; runpy.run_path(PACK, run_name='__main__')",
    "pulumi.policy": "sys.argv = ['pulumi.policy', ENGINE, PACK]; runpy.run_module('pulumi.policy', "
                     "run_name='__main__')",
}


def start(pack: Path, how: str, cwd: Path) -> subprocess.Popen[str]:
    code = NO_PROJECT + f"PACK, ENGINE = {str(pack)!r}, '127.0.0.1:1'\n" + STARTS[how]
    return subprocess.Popen([sys.executable, "-c", code], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.fixture(scope="module", ids=lambda p: f"{p[0]}-{p[1]}",
                params=[("repo", "pulumi.policy"), ("copy", "run-directory"), ("copy", "pulumi.policy")])
def analyzer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    where, how = request.param
    if where == "repo":
        pack, cwd = ROOT / "policy", ROOT / "policy"
    else:
        cwd = tmp_path_factory.mktemp("elsewhere")
        pack = cwd / "identity-platform-policies v0.1.0"
        shutil.copytree(ROOT / "policy", pack, ignore=shutil.ignore_patterns("__pycache__", "venv"))
    proc = start(pack, how, cwd)
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


def test_the_project_guard_refuses_a_self_import(tmp_path: Path) -> None:
    """The guard above is not vacuous: a pack that imports itself by the folder name fails under it."""
    pack = tmp_path / "policy-copy"
    shutil.copytree(ROOT / "policy", pack, ignore=shutil.ignore_patterns("__pycache__", "venv"))
    main = pack / "__main__.py"
    main.write_text("import policy.validators\n" + main.read_text())
    proc = start(pack, "run-directory", tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "the policy pack imported policy" in err, out + err


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
