"""kubernetes.ziti's pods against the real `ziti` 1.7.2 and the real kube-apiserver 1.37.2.

1. The controller and router pods as k8s-dev declares them (the inputs `__main__.py` registers
   under the mock engine, update mode) run the real thing: their command (the Swarm wrapper), their
   environment (the Swarm `ZITI_*`, and HOME on the pod's writable `/tmp`) and the files their projected
   Secrets put under `/run/secrets` drive the image's own entrypoint and bootstrap of the pinned
   module (`servers/ziti.py`), which renders the controller's and router's configs and runs them;
   the controller answers its admin, serves a certificate chained to the Pulumi-style root, and
   the router enrolls with an edge-router JWT and comes online. What a pod cannot reproduce here is
   remapped to the run directory and loopback, by name (`CONTROLLER_REMAPPED`, `ROUTER_REMAPPED`):
   paths of the image, ports, and the advertised names (the router reaches the controller as
   `localhost`, which the controller's certificate also carries, instead of through its host alias).
2. k8s-prod's Ziti objects are accepted by the real API server (k8s-dev's are, with every other
   object, in test_kubernetes_manifests.py), and their pods pass Pod Security `restricted`.

The Ziti resources themselves (CA, signer, policies) as this platform builds them run against the
real controller in test_chain.py (`platform` kubernetes) and test_ziti_resources.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from components import docker_helpers, ziti_router, ziti_stack
from servers import ziti as ziti_server
from servers.process import Run
from tests.components._platform import unwrap
from tests.conftest import program_run
from tests.harness.kube_api import KubeApi, as_sent
from tests.real._ziti import unique

CONTROLLER_REMAPPED = ("ZITI_CTRL_BOOTSTRAP_BASH", "ZITI_CONSOLE_LOCATION", "ZITI_HOME", "ZITI_CTRL_ADVERTISED_ADDRESS",
                       "ZITI_CTRL_ADVERTISED_PORT", "ZITI_CTRL_BIND_ADDRESS", "ZITI_CTRL_EDGE_BIND_ADDRESS", "PATH")
ROUTER_REMAPPED = ("ZITI_ROUTER_BOOTSTRAP_BASH", "ZITI_ENROLL_TOKEN", "ZITI_HOME", "ZITI_CTRL_ADVERTISED_ADDRESS",
                   "ZITI_CTRL_ADVERTISED_PORT", "ZITI_ROUTER_ADVERTISED_ADDRESS", "ZITI_ROUTER_PORT",
                   "ZITI_ROUTER_LISTENER_BIND_PORT", "ZITI_ROUTER_BIND_ADDRESS", "PATH")


def pod(stack: str, app: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod spec, its one container) of the StatefulSet `app` in the namespace `ziti`."""
    (obj,) = [unwrap(x.inputs) for x in program_run(stack, False).resources
              if x.type == "kubernetes:apps/v1:StatefulSet" and x.inputs["metadata"]["name"] == app]
    spec = obj["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return spec, container


def wrapper_of(container: dict[str, Any]) -> str:
    command = container["command"]
    assert command[:2] == ["/bin/bash", "-c"] and command[3:] == ["entrypoint"], command
    assert container["args"] == ["run", "config.yml"]
    return str(command[2])


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def projected_files(spec: dict[str, Any]) -> set[str]:
    (vol,) = [v for v in spec["volumes"] if v["name"] == "secrets"]
    return {item["path"] for src in vol["projected"]["sources"] for item in src["secret"]["items"]}


def pod_env(container: dict[str, Any], local: dict[str, str], remapped: tuple[str, ...], tmp: Path) -> dict[str, str]:
    """The pod's environment with only `remapped` (and HOME: the pod's /tmp) taken from the local run."""
    env = env_of(container)
    assert env["HOME"] == "/tmp"
    return {**env, **{k: local[k] for k in remapped}, "HOME": str(tmp)}


def test_the_k8s_dev_controller_and_router_pods_run_the_real_ziti(servers_run: Run) -> None:
    spec, container = pod("k8s-dev", "ziti-controller")
    ctrl = ziti_server.Controller(servers_run, "k8s-controller")
    scripts = ziti_server.image_root(servers_run, "controller")
    ctrl.script = ziti_server.localize(wrapper_of(container), {
        docker_helpers.SECRETS_DIR: str(ctrl.secrets),
        ziti_stack.CONTROLLER_HOME: str(ctrl.home),
        "/entrypoint.bash": str(scripts / "entrypoint.bash"),
    })
    home = servers_run.dir("ziti", "k8s-controller", "tmp")
    ctrl.env = {**ziti_server.image_env("controller"),
                **pod_env(container, ctrl.env, CONTROLLER_REMAPPED, home)}
    root_pem = ctrl.place_secrets()
    # The files the pod's projected Secrets hold are the ones the wrapper reads.
    assert projected_files(spec) == {p.name for p in ctrl.secrets.iterdir()}
    ctrl.start()
    try:
        root = x509.load_pem_x509_certificate(root_pem.encode())
        server = x509.load_pem_x509_certificate(
            (ctrl.home / "pki" / "intermediate" / "certs" / "server.cert").read_bytes())
        inter = x509.load_pem_x509_certificate(
            (ctrl.home / "pki" / "intermediate" / "certs" / "intermediate.cert").read_bytes())
        inter.verify_directly_issued_by(root)
        server.verify_directly_issued_by(inter)
        config = ctrl.config.read_text()
        assert f'"{ctrl.home}/{ziti_stack.DATABASE_FILE}"' in config  # the claim holds the database

        rspec, rcontainer = pod("k8s-dev", "ziti-router")
        router = ziti_server.Router(servers_run, ctrl, "k8s-router", router_name=unique("k8s-router"))
        rscripts = ziti_server.image_root(servers_run, "router")
        router.script = ziti_server.localize(wrapper_of(rcontainer), {
            docker_helpers.SECRETS_DIR: str(router.secrets),
            f'home="{ziti_router.ROUTER_HOME}"': f'home="{router.home}"',
            "/entrypoint.bash": str(rscripts / "entrypoint.bash"),
        })
        router.env = {**ziti_server.image_env("router"),
                      **pod_env(rcontainer, router.env, ROUTER_REMAPPED, servers_run.dir("ziti", "k8s-router", "tmp"))}
        assert projected_files(rspec) == {router.jwt_file.name}
        router.create()
        router.start()  # waits until the controller reports it online
        assert router.online()
    finally:
        ctrl.stop()


PROD_NAMESPACE = "ziti-prod"  # k8s-dev's objects live in `ziti` on the same server (claim templates are immutable)


@pytest.fixture(scope="module")
def prod_ziti(kube_api: KubeApi) -> list[dict[str, Any]]:
    """k8s-prod's objects of the namespace `ziti`, moved to their own namespace of the same labels."""
    objects = [as_sent(unwrap(x.inputs)) for x in program_run("k8s-prod", False).resources
               if x.type.startswith("kubernetes:") and not x.type.startswith("kubernetes:security.istio.io/")
               and "metadata" in x.inputs
               and (x.inputs["metadata"].get("namespace") == "ziti" or x.inputs["metadata"].get("name") == "ziti")]
    for o in objects:
        o["metadata"] = {**o["metadata"], ("name" if o["kind"] == "Namespace" else "namespace"): PROD_NAMESPACE}
    (namespace,) = [o for o in objects if o["kind"] == "Namespace"]
    kube_api.apply(namespace)
    for account in (o for o in objects if o["kind"] == "ServiceAccount"):  # what the probe pods name
        kube_api.apply(account)
    return [o for o in objects if o["kind"] != "Namespace"]


def test_k8s_prods_ziti_objects_are_accepted(prod_ziti: list[dict[str, Any]], kube_api: KubeApi) -> None:
    kinds = sorted(o["kind"] for o in prod_ziti)
    assert kinds == sorted(["ServiceAccount"] * 2 + ["Secret"] * 3 + ["Service"] * 2 + ["StatefulSet"] * 2
                           + ["PodDisruptionBudget"] * 2 + ["NetworkPolicy"] * 5), kinds
    for obj in prod_ziti:
        applied = kube_api.apply(obj, dry_run=True, strict=True)
        assert applied.warnings == [], (obj["kind"], obj["metadata"]["name"], applied.warnings)
    for obj in (o for o in prod_ziti if o["kind"] == "StatefulSet"):
        template = obj["spec"]["template"]
        probe = {"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": f"{obj['metadata']['name']}-probe", "namespace": PROD_NAMESPACE,
                              "labels": template["metadata"]["labels"]},
                 "spec": {**template["spec"], "volumes": [*template["spec"]["volumes"], {
                     "name": "data", "persistentVolumeClaim": {"claimName": f"data-{obj['metadata']['name']}-0"}}]}}
        created = kube_api.create(probe, dry_run=True)  # Pod Security: the namespace enforces restricted
        assert created.warnings == [], created.warnings
