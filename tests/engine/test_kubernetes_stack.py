"""The project's Kubernetes program applied by the real engine and the real pulumi-kubernetes plugin
to a real kube-apiserver: the CLI at the pin, `pulumi-resource-kubernetes` 4.25.0 built from its Go
module (`scripts/servers install pulumi-kubernetes`), a kube-apiserver 1.37.2 of each test's own
(so nothing another test applied is in it) and, for the crd-free stack, the shared real SPIRE server.

`tests/engine/k8s_program/__main__.py` runs the project's `__main__.py` with what this machine needs
(that file says why): `pulumi.com/skipAwait` and `deletionPropagationPolicy: background` on every
Kubernetes object (no nodes, no controller manager: nothing becomes ready and no garbage collector
finishes a foreground delete), and stand-ins for pulumi-random's RandomPassword and the pulumi-tls
resources (their plugins cannot be built here).

- `Pulumi.k8s-crd-free.yaml` as shipped, pointed at these servers (kubeconfig and context, SPIRE's
  trust domain, admin socket and bundle): every resource of the stack is created. `preview` writes
  nothing; `up` makes every object the design names, applied by the provider's field manager, and
  the node alias and workload entry on SPIRE; `preview --expect-no-changes`; `destroy` removes all.
- `Pulumi.k8s-dev.yaml` (basic topology, Keycloak on CNPG behind Istio, kubernetes.ziti) with a
  brought root CA, the Istio and ArgoCD CRDs of servers/crds.py created first (the CNPG ones are the
  program's own, from the operator's release), and `--exclude` of what cannot run here (`EXCLUDED`
  says why). A first `up` leaves out the Ziti side of the chain too (`ZITI_TRUST`): the
  StatefulSets, DaemonSets, RBAC, network policies, Secrets, the CNPG operator (CRDs, RBAC, webhook
  configurations, Deployment), the CNPG Cluster, the Istio objects and the Ziti controller's
  objects (its PKI root from the SelfSignedCert stand-in) are applied. Then the real ziti
  controller (`servers/ziti.py`) starts from what the controller pod's Secrets hold (the stack's PKI
  root and admin password), where the stack says the controller is, and a second `up` makes the
  Ziti side on it (SPIRE's root a verified CA, the workloads' identities and policy, the router
  entity) and the router's enrollment Secret and StatefulSet with the entity's JWT. `ops status`'s
  Ziti rows then read that stack as `load_target` does (the controller's CA from the real engine's
  state) and are ok against the real controller, but for what was left out; a preview has no
  changes; `destroy` removes every object and every Ziti entity.

After `destroy` the namespaces stay Terminating: the namespace controller that would finish them is
part of the controller manager, which does not run here.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pulumi.runtime import rpc

import stack_config
from components import ziti_stack
from dynamic_providers.spire.models import owner_prefix
from ops.health import Options, Target
from ops.health.checks import Context, certificate_rows, ziti_health, ziti_management
from ops.health.inputs import from_deployment, raw_from_cli_config
from ops.outputs import StackOutputs
from ops.workspace import open_stack
from servers import crds
from servers import pulumi_kubernetes as plugin
from servers import ziti as ziti_server
from servers.process import Run
from servers.stack import set_secrets, write_stack_file
from stack_config import versions
from tests.engine.cli import REPO, Cli, take_cli_env
from tests.engine.kube_stack import (
    PART_OF,
    PROJECT,
    api_server,
    assert_destroyed,
    assert_not_in_state,
    excluded,
    k8s_stack,
    k8s_state,
    obj,
    release_claims,
)
from tests.engine.test_external_stack import another_root
from tests.harness.kube_api import KubeApi
from tests.real._ziti import Admin
from tests.real.conftest import RealServers
from tests.real.spire_targets import Admin as SpireAdmin

# What the crd-free topology puts in the cluster (components/kubernetes/crd_free.py, spire_agents.py):
# (apiVersion, kind, namespace or None, name).
SYSTEM, RBAC = "spire-system", "rbac.authorization.k8s.io/v1"
CLUSTER_OBJECTS = {
    ("v1", "Namespace", None, SYSTEM), ("v1", "Namespace", None, "production"),
    *(("v1", "ServiceAccount", SYSTEM, n) for n in ("spire-agent", "spire-server", "spiffe-csi-driver")),
    *(("v1", "ConfigMap", SYSTEM, n) for n in ("spire-agent", "spire-bundle")),
    *(("apps/v1", "DaemonSet", SYSTEM, n) for n in ("spire-agent", "spiffe-csi-driver")),
    *((RBAC, kind, None, n) for kind in ("ClusterRole", "ClusterRoleBinding")
      for n in ("identity-platform-spire-agent", "identity-platform-spire-server")),
    ("storage.k8s.io/v1", "CSIDriver", None, "csi.spiffe.io"),
    *(("networking.k8s.io/v1", "NetworkPolicy", ns, n)
      for ns, n in ((SYSTEM, "default-deny"), (SYSTEM, "spire-agent"), ("production", "default-deny"))),
}


@pytest.fixture
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    """A kube-apiserver (and etcd) of this test's own, stopped afterwards."""
    with api_server(tmp_path_factory.mktemp("kube")) as api:
        yield api


def ours(kube: KubeApi) -> set[tuple[str, str, str | None, str]]:
    """Every object of the kinds above (in their namespaces) that carries the platform's label."""
    found = set()
    for api_version, kind, ns in {(a, k, n) for a, k, n, _ in CLUSTER_OBJECTS}:
        for item in kube.get(f"{kube.collection(api_version, kind, ns)}?labelSelector={PART_OF}")["items"]:
            found.add((api_version, kind, item["metadata"].get("namespace"), item["metadata"]["name"]))
    return found


def point_at_spire(plain: dict[str, Any], spire: dict[str, Any], cluster: str, workload: str) -> None:
    """The crd-free settings pointed at the real SPIRE server (trust domain, admin socket, bundle),
    with one workload `workload` on `cluster`."""
    plain["spire"]["trustDomain"] = spire["trust_domain"]
    plain["spire"]["transport"]["socketPath"] = spire["admin_socket"]
    # The address stays the shipped one: only the agents, which never run here, dial it.
    plain["kubernetes"]["externalServer"]["trustBundle"] = spire["bundle_pem"]
    (shipped_workload,) = plain["workloads"].values()
    plain["workloads"] = {workload: {**shipped_workload, "node": cluster,
                                     "spiffePath": f"/ns/production/sa/{workload}",
                                     "selectors": ["k8s:ns:production", f"k8s:sa:{workload}"]}}


def test_the_crd_free_stack_lives_and_dies_in_a_real_api_server(
    engine_bin: Path, k8s_plugin_bin: Path, kube: KubeApi, real_servers: RealServers, tmp_path: Path
) -> None:
    spire = real_servers("spire")
    admin = SpireAdmin(spire["admin_socket"])
    tag = secrets.token_hex(3)
    stack, cluster, workload = f"k8s-{tag}", f"engine-{tag}", f"ledger-{tag}"
    prefix = owner_prefix(PROJECT, stack)

    def entries() -> list[str]:
        return sorted(i for i in admin.ids() if i.startswith(prefix))

    try:
        assert plugin.SERVER.reported_version() == versions.PULUMI_KUBERNETES
        cli, plain = k8s_stack(engine_bin, k8s_plugin_bin, tmp_path, stack, "Pulumi.k8s-crd-free.yaml",
                               {cluster: kube})
        point_at_spire(plain, spire, cluster, workload)
        write_stack_file(cli.dir, stack, plain)

        # -- preview: a plan, and nothing written anywhere -----------------------------------------
        preview = cli("preview", "--diff")
        for kind in ("kubernetes:core/v1:Namespace", "kubernetes:apps/v1:DaemonSet",
                     "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
                     "kubernetes:networking.k8s.io/v1:NetworkPolicy", "pulumi-python:dynamic/spire:Entry"):
            assert kind in preview.stdout, (kind, preview.stdout)
        assert ours(kube) == set() and entries() == []

        # -- up ----------------------------------------------------------------------------------
        up = cli("up", "--yes")
        assert "unknown field" not in up.stdout + up.stderr, up.stdout  # the API server's warning, passed on
        assert ours(kube) == CLUSTER_OBJECTS
        for api_version, kind, ns, name in CLUSTER_OBJECTS:
            body = obj(kube, api_version, kind, ns, name)
            assert body is not None, (kind, name)
            meta = body["metadata"]
            managers = {f["manager"] for f in meta.get("managedFields") or []}
            assert any(m.startswith("pulumi-kubernetes") for m in managers), (kind, name, managers)
            assert meta["annotations"]["pulumi.com/skipAwait"] == "true", (kind, name)
        levels = {n: obj(kube, "v1", "Namespace", None, n) for n in ("spire-system", "production")}
        assert {n: (b or {})["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] for n, b in levels.items()} \
            == {"spire-system": "privileged", "production": "restricted"}
        agent = obj(kube, "apps/v1", "DaemonSet", SYSTEM, "spire-agent")
        assert agent is not None and agent["spec"]["template"]["spec"]["hostPID"] is True
        bundle = obj(kube, "v1", "ConfigMap", SYSTEM, "spire-bundle")
        assert bundle is not None and spire["bundle_pem"].strip() in "".join(bundle["data"].values())
        # The state records the provider at the pinned release: the version the SDK asks for.
        state = json.loads(cli("stack", "export").stdout)
        providers = [r for r in state["deployment"]["resources"] if r["type"] == "pulumi:providers:kubernetes"]
        assert providers and {p["inputs"]["version"] for p in providers} == {versions.PULUMI_KUBERNETES}
        # The node alias and the workload's entry, on the real SPIRE server.
        made = entries()
        assert len(made) == 2, made
        paths = set()
        for i in made:
            entry = admin.get(i)
            assert entry is not None
            paths.add(entry.spiffe_id.path)
        assert f"/ns/production/sa/{workload}" in paths, paths

        # -- nothing to do -------------------------------------------------------------------------
        cli("preview", "--expect-no-changes")

        # -- destroy -------------------------------------------------------------------------------
        cli("destroy", "--yes")
        assert entries() == []
        for api_version, kind, ns, name in CLUSTER_OBJECTS:
            body = obj(kube, api_version, kind, ns, name)
            if kind == "Namespace":
                assert body is not None and body["status"]["phase"] == "Terminating", (name, body)
            else:
                assert body is None, (kind, name, body)
    finally:
        admin.close()


# -- the basic topology with Keycloak on CNPG (k8s-dev), as far as this machine can take it ----------

# What `pulumi up` leaves out of k8s-dev here, by URN pattern (`--exclude`), and why:
EXCLUDED = {
    # registrations through `kubectl exec` into the SPIRE server pod, which never runs here (the
    # workload entries, SpireRegistrations, depend on the node alias: `--exclude-dependents`)
    "**::spire-dev-node-alias",
    # the realm and client, written to the Keycloak that never runs here; with them the Ziti
    # objects made from the realm (the ext-JWT signer, the users' auth policy)
    "**::keycloak-identity-*",
}
# The first `up` also leaves out the Ziti side of the chain (CA, policies, router entity, workload
# identities): its controller's pod never runs here, and the real controller that stands in for it
# (`servers/ziti.py`) starts from this stack's own PKI root and admin password, which that `up` makes.
# With them go their dependents, the router's enrollment Secret and StatefulSet (the entity's JWT).
ZITI_TRUST = "**::ziti-trust-*"
# Kinds the design puts in the cluster that must be there after `up` (each one checked by name below).
DEV_KINDS = {"Namespace", "StatefulSet", "DaemonSet", "Deployment", "ServiceAccount", "ClusterRole",
             "ClusterRoleBinding", "NetworkPolicy", "Secret", "ConfigMap", "Service", "PodDisruptionBudget",
             "Cluster", "PeerAuthentication", "AuthorizationPolicy", "Gateway", "VirtualService",
             "CustomResourceDefinition", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
# The CNPG operator's release, as committed (components/kubernetes/cnpg_operator.py deploys it).
CNPG_RELEASE = REPO / "components" / "kubernetes" / "generated" / "cnpg-operator.yaml"
CNPG_GROUP = "postgresql.cnpg.io"
CNPG_OPERATOR = "system:serviceaccount:cnpg-system:cnpg-manager"


def cnpg_release() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> object of the committed release manifest."""
    docs = yaml.load_all(CNPG_RELEASE.read_text(), Loader=yaml.CSafeLoader)
    return {(d["kind"], d["metadata"]["name"]): d for d in docs if d}


def assert_the_cnpg_operator_is_there(kube: KubeApi) -> None:
    """The operator's release in the API server: its CRDs served, its Deployment with the pinned
    image outside the mesh, its own rules bound to its account (and those rules granting what the
    operator does and no more), its webhook configurations pointing at its Service."""
    release = cnpg_release()
    for (kind, name), published in release.items():
        if kind == "CustomResourceDefinition":
            crd = kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
            assert conditions["Established"] == "True", (name, conditions)
            assert crd["spec"]["versions"] == published["spec"]["versions"], name
    operator = kube.get("/apis/apps/v1/namespaces/cnpg-system/deployments/cnpg-controller-manager")
    template = operator["spec"]["template"]
    assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    (container,) = template["spec"]["containers"]
    assert container["image"] == "ghcr.io/cloudnative-pg/cloudnative-pg:1.27.1"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert template["spec"]["serviceAccountName"] == "cnpg-manager"
    kube.get("/api/v1/namespaces/cnpg-system/serviceaccounts/cnpg-manager")
    role = kube.get("/apis/rbac.authorization.k8s.io/v1/clusterroles/cnpg-manager")
    assert role["rules"] == release[("ClusterRole", "cnpg-manager")]["rules"]
    binding = kube.get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/cnpg-manager-rolebinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "cnpg-manager", "namespace": "cnpg-system"}]
    groups = ("system:serviceaccounts", "system:serviceaccounts:cnpg-system")
    for verb, resource, group, allowed in (("create", "pods", "", True), ("create", "jobs", "batch", True),
                                           ("patch", "clusters", CNPG_GROUP, True), ("get", "secrets", "", True),
                                           ("create", "clusterroles", "rbac.authorization.k8s.io", False),
                                           ("delete", "nodes", "", False), ("create", "pods/attach", "", False)):
        res, _, sub = resource.partition("/")
        got = kube.can(CNPG_OPERATOR, verb, res, group=group, subresource=sub, namespace="iam-system", groups=groups)
        assert got is allowed, (verb, resource, got)
    assert kube.can(CNPG_OPERATOR, "patch", "validatingwebhookconfigurations", group="admissionregistration.k8s.io",
                    groups=groups)
    for kind, plural in (("MutatingWebhookConfiguration", "mutatingwebhookconfigurations"),
                         ("ValidatingWebhookConfiguration", "validatingwebhookconfigurations")):
        (published,) = [o for (k, _), o in release.items() if k == kind]
        stored = kube.get(f"/apis/admissionregistration.k8s.io/v1/{plural}/{published['metadata']['name']}")
        # As released but failurePolicy: the test program's `Ignore`, as no operator pod answers here.
        assert [w["name"] for w in stored["webhooks"]] == [w["name"] for w in published["webhooks"]]
        for w, p in zip(stored["webhooks"], published["webhooks"], strict=True):
            assert w["clientConfig"]["service"] == {**p["clientConfig"]["service"], "port": 443}, w["name"]
            assert w["rules"] == [{**r, "scope": "*"} for r in p["rules"]], w["name"]
            assert (w["failurePolicy"], p["failurePolicy"]) == ("Ignore", "Fail")


# kubernetes.ziti as the design names it (docs/architecture.md; NodePorts of Pulumi.k8s-dev.yaml).
ZITI = "ziti"
ZITI_OBJECTS = {
    ("v1", "Namespace", None, ZITI),
    *(("v1", kind, ZITI, n) for kind in ("ServiceAccount", "Service") for n in ("ziti-controller", "ziti-router")),
    ("apps/v1", "StatefulSet", ZITI, "ziti-controller"),
    *(("policy/v1", "PodDisruptionBudget", ZITI, n) for n in ("ziti-controller", "ziti-router")),
    *(("v1", "Secret", ZITI, n) for n in ("ziti-controller-admin", "ziti-controller-pki-root")),
    *(("networking.k8s.io/v1", "NetworkPolicy", ZITI, n)
      for n in ("default-deny", "allow-dns", "allow-istiod", "ziti-controller", "ziti-router")),
    ("security.istio.io/v1", "PeerAuthentication", ZITI, "default"),
}
# Left out of the first `up` with the router entity's JWT (ZITI_TRUST), applied by the second.
ZITI_NOT_APPLIED = {("apps/v1", "StatefulSet", ZITI, "ziti-router"), ("v1", "Secret", ZITI, "ziti-router-enrollment")}


def assert_the_ziti_objects_are_there(kube: KubeApi, ziti: dict[str, Any]) -> tuple[str, str]:
    """kubernetes.ziti in the API server: the controller's StatefulSet reading its PKI root and
    admin password from the two Secrets at the Swarm secrets' paths, the NodePort Services, the
    namespace in the mesh (STRICT) with the controller's port outside the sidecar, the network
    policies, Keycloak's AuthorizationPolicy and NetworkPolicy admitting the namespace; the PKI root
    a real self-signed CA of `ziti.clusterTrustDomain` whose key matches it. Returns the root's key
    and the admin password (secrets, for the state check)."""
    for api_version, kind, ns, name in ZITI_OBJECTS:
        assert obj(kube, api_version, kind, ns, name) is not None, (kind, ns, name)
    namespace = kube.get("/api/v1/namespaces/ziti")["metadata"]["labels"]
    assert (namespace["istio-injection"], namespace["pod-security.kubernetes.io/enforce"]) == ("enabled", "restricted")
    peer = kube.get("/apis/security.istio.io/v1/namespaces/ziti/peerauthentications/default")
    assert peer["spec"] == {"mtls": {"mode": "STRICT"}}

    # The controller reads what the Secrets hold, under the file names of the Swarm wrapper.
    controller = kube.get("/apis/apps/v1/namespaces/ziti/statefulsets/ziti-controller")["spec"]
    pod = controller["template"]
    port = ziti["advertisedPort"]
    assert pod["metadata"]["annotations"]["traffic.sidecar.istio.io/excludeInboundPorts"] == str(port)
    (container,) = pod["spec"]["containers"]
    assert container["image"] == f"docker.io/openziti/ziti-controller:{versions.ZITI}"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ZITI_CTRL_ADVERTISED_ADDRESS"] == ziti["advertisedAddress"]
    assert env["ZITI_CTRL_ADVERTISED_PORT"] == str(port)
    (projected,) = [v["projected"] for v in pod["spec"]["volumes"] if "projected" in v]
    files = {(s["secret"]["name"], i["key"], i["path"]) for s in projected["sources"] for i in s["secret"]["items"]}
    assert files == {("ziti-controller-admin", "password", "ziti-admin-password"),
                     ("ziti-controller-pki-root", "cert", "ziti-pki-root.cert"),
                     ("ziti-controller-pki-root", "key", "ziti-pki-root.key")}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["serviceAccountName"] == "ziti-controller"
    assert kube.get("/api/v1/namespaces/ziti/serviceaccounts/ziti-controller")["automountServiceAccountToken"] is False
    for name, service_port, node_port in (("ziti-controller", port, 31280), ("ziti-router", 3022, 31022)):
        service = kube.get(f"/api/v1/namespaces/ziti/services/{name}")["spec"]
        assert service["type"] == "NodePort", name
        assert [(p["port"], p["nodePort"]) for p in service["ports"]] == [(service_port, node_port)], name

    # The PKI root: a self-signed CA of the controller's trust domain, and the key that signed it.
    pki = kube.get("/api/v1/namespaces/ziti/secrets/ziti-controller-pki-root")["data"]
    key_pem = base64.b64decode(pki["key"]).decode()
    cert = x509.load_pem_x509_certificate(base64.b64decode(pki["cert"]))
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"
    assert key.public_key() == cert.public_key()
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert (usage.key_cert_sign, usage.crl_sign, usage.digital_signature) == (True, True, True)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [f"spiffe://{ziti['clusterTrustDomain']}"]
    admin = base64.b64decode(kube.get("/api/v1/namespaces/ziti/secrets/ziti-controller-admin")["data"]["password"])
    assert len(admin) == 32

    # Who may reach the controller, and what it may reach: Keycloak's HTTP port for the realm's JWKS.
    policy = kube.get("/apis/networking.k8s.io/v1/namespaces/ziti/networkpolicies/ziti-controller")["spec"]
    assert policy["ingress"] == [{"ports": [{"port": port, "protocol": "TCP"}]}]
    (egress,) = policy["egress"]
    assert egress["to"][0]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "iam-system"}}
    keycloak_in = kube.get("/apis/networking.k8s.io/v1/namespaces/iam-system/networkpolicies/keycloak")["spec"]
    assert {"kubernetes.io/metadata.name": ZITI} in [p.get("namespaceSelector", {}).get("matchLabels")
                                                     for rule in keycloak_in["ingress"] for p in rule.get("from", [])]
    mesh = kube.get("/apis/security.istio.io/v1/namespaces/iam-system/authorizationpolicies/keycloak")["spec"]
    (ziti_rule,) = [r for r in mesh["rules"] if r["from"][0]["source"].get("namespaces") == [ZITI]]
    assert ziti_rule["to"] == [{"operation": {"ports": ["8080"], "methods": ["GET"], "paths": ["/realms/*"]}}]
    return key_pem, admin.decode()


# What the second `up` makes on the controller (collection, name): the SPIRE root as a CA, the
# workloads' auth policy, the router entity, the router policies. (The identities: by workload.)
ZITI_ENTITIES = (("cas", "ziti-trust-spire"), ("auth-policies", "ziti-trust-spiffe-workloads"),
                 ("edge-routers", "edge-router-1"), ("edge-router-policies", "ziti-trust-all-identities-all-routers"),
                 ("service-edge-router-policies", "ziti-trust-all-services-all-routers"))


def assert_the_ziti_side_is_on_the_controller(zt: Admin, kube: KubeApi, plain: dict[str, Any], root_pem: str) -> str:
    """The chain's Ziti side as the real controller has it: SPIRE's root a verified CA, an identity
    per workload by SPIFFE ID under the workloads' policy, the router entity whose one-time JWT is
    what the router's Secret holds (and its StatefulSet now applied); no signer (the realm is left
    out with Keycloak). Returns the JWT."""
    found = {}
    for collection, name in ZITI_ENTITIES:
        (found[collection],) = zt.find(collection, name)
    ca = found["cas"]
    assert (ca["isVerified"], ca["isAuthEnabled"]) == (True, True)
    assert ca["certPem"].strip() == root_pem.strip()
    assert zt.find("external-jwt-signers", "ziti-trust-keycloak") == []
    policy_id = found["auth-policies"]["id"]
    for workload, spec in plain["workloads"].items():
        (identity,) = zt.find("identities", workload)
        assert identity["externalId"] == f"spiffe://{plain['spire']['trustDomain']}{spec['spiffePath']}"
        assert identity["authPolicyId"] == policy_id
    router = zt.get(f"edge-routers/{found['edge-routers']['id']}")
    assert router is not None
    secret = kube.get("/api/v1/namespaces/ziti/secrets/ziti-router-enrollment")
    jwt = base64.b64decode(secret["data"]["jwt"]).decode()
    assert jwt == router["enrollmentJwt"]
    for api_version, kind, ns, name in ZITI_NOT_APPLIED:
        assert obj(kube, api_version, kind, ns, name) is not None, (kind, ns, name)
    return jwt


def start_the_stacks_controller(ctrl: ziti_server.Controller, kube: KubeApi) -> tuple[str, str]:
    """The real controller started, as the pod would be, from the files its projected Secrets hold:
    the stack's PKI root and admin password, as the API server has them. Returns (root PEM, password)."""
    pki = kube.get("/api/v1/namespaces/ziti/secrets/ziti-controller-pki-root")["data"]
    password = base64.b64decode(kube.get("/api/v1/namespaces/ziti/secrets/ziti-controller-admin")["data"]["password"])
    files = {ziti_stack.ADMIN_PASSWORD_FILE: password, ziti_stack.PKI_ROOT_CERT_FILE: base64.b64decode(pki["cert"]),
             ziti_stack.PKI_ROOT_KEY_FILE: base64.b64decode(pki["key"])}
    for name, content in files.items():
        (ctrl.secrets / name).write_bytes(content)
        (ctrl.secrets / name).chmod(0o400)
    ctrl.password = password.decode()
    ctrl.start()
    return base64.b64decode(pki["cert"]).decode(), ctrl.password


# What `EXCLUDED` leaves out has no outputs: the engine exports its unknown sentinel for them.
LEFT_OUT_OUTPUTS = {"keycloakIssuerUrl", "keycloakJwksUrl", "keycloakRealmId", "keycloakZitiClientId",
                    "zitiAuthPolicyId", "zitiExtJwtSignerId"}


def assert_ops_status_reads_the_ziti_side(cli: Cli, stack: str, root_pem: str) -> None:
    """`ops status`'s Ziti rows on this stack, against the real controller, with their inputs read
    as `load_target` reads them: the config through the Automation API, the controller's CA from the
    real engine's state (the ZitiController component's `controller_ca_pem`, not a secret). The
    outputs contract refuses the unknowns of what `EXCLUDED` leaves out (Keycloak's outputs, the
    signer and the users' policy made from the realm): those become stand-ins that name nothing, so
    those two rows fail as never made; the rest is what `up` made on the controller."""
    st = open_stack(stack, create=False, root=cli.dir, environ=cli.env)
    raw, _ = raw_from_cli_config(st.get_all_config(), PROJECT)
    ca_pem, services = from_deployment(st.export_stack().deployment)
    assert (ca_pem, services) == (root_pem, ())
    exports = json.loads(cli("stack", "output", "--json", "--show-secrets").stdout)
    assert {k for k, v in exports.items() if v == rpc.UNKNOWN} == LEFT_OUT_OUTPUTS
    exports |= {k: "http://auth.localhost/left-out" if k.endswith("Url") else "left-out" for k in LEFT_OUT_OUTPUTS}
    outputs = StackOutputs.from_mapping(exports)
    target = Target(stack=stack, project=PROJECT, config=stack_config.parse(raw), outputs=outputs,
                    ziti_admin_password=outputs.ziti_admin_password, ziti_ca_pem=ca_pem)
    o, ctx = Options(timeout=10), Context(None)
    rows = {r.check: r for r in [*ziti_health(target, o, ctx), *ziti_management(target, o, ctx),
                                 *certificate_rows(target, o, ctx)] if r.check != "root CA"}
    assert {check: r.status for check, r in rows.items()} == {
        "health": "ok", "ca": "ok", "identities": "ok", "controller TLS": "ok",
        "edge router": "warn",  # its pod never runs here, so it never enrolls
        "ext-jwt signer": "fail", "auth policy": "fail"}, rows
    assert rows["ca"].detail == "CA ziti-trust-spire registered, verified, authentication enabled"
    assert rows["identities"].detail.startswith("identities present: all 3 (workloads: 3")
    assert rows["ext-jwt signer"].detail.startswith("signer left-out is not on the controller")


def test_the_basic_topology_with_keycloak_on_cnpg_is_applied_to_a_real_api_server(
    engine_bin: Path, k8s_plugin_bin: Path, kube: KubeApi, servers_run: Run, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Istio's and ArgoCD's CRDs: the cluster's own. CloudNativePG's are the program's (its operator's release).
    kube.establish([d for d in crds.definitions() if d["spec"]["group"] != CNPG_GROUP])
    tag = secrets.token_hex(3)
    stack = f"k8s-dev-{tag}"
    cli, plain = k8s_stack(engine_bin, k8s_plugin_bin, tmp_path, stack, "Pulumi.k8s-dev.yaml", {"dev": kube})
    # A brought root CA (pulumi-tls cannot be built here): certificate in config, key a secret.
    cert_pem, key_pem = another_root(f"{stack} root")
    plain["rootCa"] = {"certificate": cert_pem}
    # The controller is reached where the real one of the second `up` listens (its certificate names localhost).
    ctrl = ziti_server.Controller(servers_run, f"controller-{stack}")
    plain["ziti"] |= {"advertisedAddress": "localhost", "advertisedPort": ctrl.port}
    write_stack_file(cli.dir, stack, plain)
    set_secrets({"rootCaKey": key_pem}, stack=stack, cwd=cli.dir, env=cli.env)

    up = cli(*excluded({*EXCLUDED, ZITI_TRUST}, "up", "--yes"))
    assert "unknown field" not in up.stdout + up.stderr, up.stdout  # the API server's warning, passed on
    kube.forget_kinds()  # the program made the CNPG kinds
    applied = k8s_state(cli)
    assert DEV_KINDS <= {o["kind"] for o in applied}, sorted(DEV_KINDS - {o["kind"] for o in applied})
    for o in applied:
        body = kube.get(kube.path(o))
        managers = {f["manager"] for f in body["metadata"].get("managedFields") or []}
        assert any(m.startswith("pulumi-kubernetes") for m in managers), (o["kind"], o["metadata"]["name"])
    by_name = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in applied}
    for expected in (("StatefulSet", "spire-server", "spire-server"), ("StatefulSet", "spire-server", "spire-db"),
                     ("DaemonSet", "spire-system", "spire-agent"), ("Cluster", "iam-system", "keycloak-db"),
                     ("PeerAuthentication", "iam-system", "default"), ("Deployment", "iam-system", "keycloak"),
                     ("Deployment", "cnpg-system", "cnpg-controller-manager"),
                     ("CustomResourceDefinition", None, "clusters.postgresql.cnpg.io")):
        assert expected in by_name, expected
    assert_the_cnpg_operator_is_there(kube)
    # The stand-in's password reached the Secret the CNPG Cluster bootstraps from, and not the state.
    secret = kube.get("/api/v1/namespaces/iam-system/secrets/keycloak-db-credentials")
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert len(password) == 32
    ziti_secrets = assert_the_ziti_objects_are_there(kube, plain["ziti"])
    for api_version, kind, ns, name in ZITI_NOT_APPLIED:
        assert obj(kube, api_version, kind, ns, name) is None, (kind, ns, name)

    # -- the Ziti side against the real controller, started from the stack's own Secrets -----------
    root_pem, admin_password = start_the_stacks_controller(ctrl, kube)
    try:
        cli(*excluded(EXCLUDED, "up", "--yes"))
        zt = Admin({"url": ctrl.url, "ca_pem": root_pem, "admin_user": "admin", "admin_password": admin_password})
        jwt = assert_the_ziti_side_is_on_the_controller(zt, kube, plain, cert_pem)
        take_cli_env(cli, monkeypatch)
        assert_ops_status_reads_the_ziti_side(cli, stack, root_pem)
        applied = k8s_state(cli)
        assert_not_in_state(cli, password, key_pem, *ziti_secrets, jwt)

        cli(*excluded(EXCLUDED, "preview", "--expect-no-changes"))

        release_claims(kube, applied)
        cli("destroy", "--yes")
        assert_destroyed(kube, applied)
        for collection, name in ZITI_ENTITIES:
            assert zt.find(collection, name) == [], (collection, name)
    finally:
        ctrl.stop()
