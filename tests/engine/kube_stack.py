"""What the engine tests of the Kubernetes stacks share (test_kubernetes_stack.py,
test_kubernetes_enterprise_stack.py): a kube-apiserver of a test's own, a stack of the test program
(`k8s_program/__main__.py`) from a shipped stack file with its clusters pointed at such servers, the
Kubernetes objects the state records (and through which cluster's provider), `--exclude` arguments,
and the check that `destroy` removed every object.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

import servers
from tests.engine.cli import REPO, Cli
from tests.harness.kube_api import ApiRefusedError, KubeApi

PROJECT = "identity-platform"
PROGRAM = Path(__file__).parent / "k8s_program" / "__main__.py"
PART_OF = "app.kubernetes.io/part-of=identity-platform"


@contextmanager
def api_server(root: Path) -> Iterator[KubeApi]:
    """A kube-apiserver (and etcd) in `root`, of the caller's own, stopped afterwards."""
    run = servers.start(["kubernetes"], root=root)
    try:
        yield KubeApi(run.servers["kubernetes"])
    finally:
        run.stop()


def obj(kube: KubeApi, api_version: str, kind: str, ns: str | None, name: str) -> dict[str, Any] | None:
    """The object as the API server has it, None when there is none."""
    try:
        return kube.get(f"{kube.collection(api_version, kind, ns)}/{name}")
    except ApiRefusedError as e:
        if e.status == 404:
            return None
        raise


def k8s_stack(engine_bin: Path, plugin_bin: Path, work: Path, stack: str, shipped: str,
              clusters: Mapping[str, KubeApi]) -> tuple[Cli, dict[str, Any]]:
    """The test program in a new project directory, `pulumi stack init` done, and the settings of
    the shipped stack file `shipped` with its clusters replaced by `clusters` (name -> the API
    server that cluster is, by its kubeconfig and context)."""
    cli = Cli(engine_bin, work, stack, plugins=[plugin_bin])
    shutil.copyfile(PROGRAM, cli.dir / "__main__.py")
    (cli.dir / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())
    (cli.dir / ".venv").symlink_to(REPO / ".venv")
    cli("stack", "init")
    config = yaml.safe_load((REPO / shipped).read_text())["config"]
    plain = {k.removeprefix(f"{PROJECT}:"): v for k, v in config.items()}
    plain["kubernetes"]["clusters"] = {
        name: {"kubeconfig": kube.section["kubeconfig"], "context": kube.section["context"]}
        for name, kube in clusters.items()
    }
    return cli, plain


def _k8s_resources(cli: Cli) -> list[dict[str, Any]]:
    deployment = json.loads(cli("stack", "export").stdout)["deployment"]
    return [r for r in deployment["resources"]
            if r["type"].startswith("kubernetes:") and "metadata" in (r.get("outputs") or {})]


def k8s_state(cli: Cli) -> list[dict[str, Any]]:
    """The outputs of every Kubernetes object in the stack's state (what the provider applied)."""
    return [r["outputs"] for r in _k8s_resources(cli)]


def k8s_state_by_cluster(cli: Cli) -> dict[str, list[dict[str, Any]]]:
    """Cluster name -> the outputs of every Kubernetes object the state records as applied through
    that cluster's provider (`k8s-<cluster>`, components/kubernetes/cluster.py)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in _k8s_resources(cli):
        provider_name = r["provider"].split("::")[-2]  # urn:…::pulumi:providers:kubernetes::<name>::<id>
        out.setdefault(provider_name.removeprefix("k8s-"), []).append(r["outputs"])
    return out


def assert_not_in_state(cli: Cli, *values: str) -> None:
    """None of `values` (keys, passwords) is in the stack's state files in plain text: neither as
    written, nor as JSON escapes it (a PEM's newlines), nor a PEM's body joined onto one line.
    (Not line by line: the last lines of an EC key's PEM encode its public point, which the
    certificate of that key, public, may carry in the same base64 alignment.)"""
    text = cli.state_text()
    for value in values:
        parts = [value, json.dumps(value)[1:-1]]
        if value.lstrip().startswith("-----BEGIN"):
            parts.append("".join(line for line in value.strip().splitlines()[1:-1]))
        found = [p for p in parts if p in text]
        if found:
            resources = json.loads(cli("stack", "export").stdout)["deployment"]["resources"]
            holders = [r["urn"] for r in resources if found[0] in json.dumps(r)]
            raise AssertionError(f"a secret value is in the state in plain text (its part {found[0][:12]!r}...), "
                                 f"in {holders}")


def excluded(patterns: Iterable[str], *command: str) -> list[str]:
    """`command` leaving out the resources matching `patterns` (URN globs) and their dependents."""
    return [*command, "--exclude-dependents", *(a for pattern in sorted(patterns) for a in ("--exclude", pattern))]


def release_claims(kube: KubeApi, applied: Iterable[Mapping[str, Any]]) -> None:
    """No pod uses the claims (none runs): release them as the pvc-protection controller would, so
    that `destroy` does not wait on their finalizers."""
    for o in applied:
        if o["kind"] == "PersistentVolumeClaim":
            kube.release_finalizers(kube.path(o))


def assert_destroyed(kube: KubeApi, applied: Iterable[Mapping[str, Any]]) -> None:
    """Every object of `applied` is gone from `kube`, but namespaces, which stay Terminating: the
    namespace controller that would finish them is part of the controller manager (not run here)."""
    for o in applied:
        try:
            body = kube.get(kube.path(o))
        except ApiRefusedError as e:
            assert e.status == 404, e
            continue
        assert o["kind"] == "Namespace" and body["status"]["phase"] == "Terminating", (o["kind"], body["metadata"])
