"""platform kubernetes, enterprise topology: `__main__.py` with `Pulumi.k8s-enterprise.yaml` under the
mock engine (preview and update). Asserts the design's two clusters (one provider each, every object
through its cluster's), namespaces, NodePorts, the two trust domains, the downstream's CA (an
intermediate the root signs, the root as its UpstreamAuthority bundle), the federation both ways,
the entries per cluster with `federatesWith`, spire-controller-manager beside both servers with
each side's ClusterFederatedTrustDomain (seeded with the root's bundle) and the downstream's
ClusterSPIFFEID, and the basic topology's security rules for every pod spec of both
clusters. Expected values are written out from the stack file and the design, not computed by the
code under test. The config refusals follow (one error line per bad key, all at once)."""

from __future__ import annotations

import base64
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import stack_config
from components.kubernetes.controller_manager import CRD_DIR
from policy.image_ref import pin_problem
from stack_config import ConfigError
from tests.components._platform import is_secret, unwrap, walk_strings
from tests.conftest import MODES, program_run
from tests.harness.mock_engine import SECRET_PREFIX, ProgramRun, Registered, mock_cert_pem, run_program
from tests.harness.mock_engine import stack_config as raw_stack_config

ROOT = Path(__file__).resolve().parents[2]
STACK = "k8s-enterprise"
K8S = "kubernetes:"
UP, DOWN = "hq", "branch"
UP_TD, DOWN_TD = "hq.acme-identity.net", "branch.acme-identity.net"
WORKLOADS = {"enterprise-api", "data-processor", "security-gateway"}
WORKLOAD_KINDS = ("apps/v1:StatefulSet", "apps/v1:DaemonSet", "apps/v1:Deployment")
NODE_LEVEL = {"spire-agent", "spiffe-csi-driver"}  # spire-system, privileged (as in basic)


@pytest.fixture(params=MODES)
def run(request: pytest.FixtureRequest) -> ProgramRun:
    return program_run(STACK, request.param)


def cluster_of(r: ProgramRun, x: Registered) -> str:
    providers = {p.urn: p.name.removeprefix("k8s-") for p in r.resources if p.type == "pulumi:providers:kubernetes"}
    return next(name for urn, name in providers.items() if x.provider.startswith(urn + "::"))


def objects(r: ProgramRun, kind: str, cluster: str) -> dict[str, dict[str, Any]]:
    """`namespace/name` (or name) -> unwrapped inputs of every object of `kind` in `cluster`."""
    out = {}
    for x in r.resources:
        if x.type.startswith(K8S) and x.type.endswith(kind) and cluster_of(r, x) == cluster:
            meta = x.inputs["metadata"]
            out[f"{meta['namespace']}/{meta['name']}" if "namespace" in meta else meta["name"]] = unwrap(x.inputs)
    return out


def pod_specs(r: ProgramRun, cluster: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for kind in WORKLOAD_KINDS:
        for key, inputs in objects(r, kind, cluster).items():
            yield key.split("/")[0], inputs["metadata"]["name"], inputs["spec"]["template"]["spec"]


def test_two_clusters_each_through_its_provider(run: ProgramRun) -> None:
    providers = {p.name: p.inputs for p in run.resources if p.type == "pulumi:providers:kubernetes"}
    assert {n: p["context"] for n, p in providers.items()} == {"k8s-hq": "acme-hq", "k8s-branch": "acme-branch"}
    for x in run.resources:
        if x.type.startswith(K8S):
            assert cluster_of(run, x) in (UP, DOWN), x.name


def test_the_namespaces_of_each_cluster(run: ProgramRun) -> None:
    levels = {c: {n: ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
                  for n, ns in objects(run, "core/v1:Namespace", c).items()} for c in (UP, DOWN)}
    assert levels == {
        UP: {"spire-server": "restricted", "spire-system": "privileged"},
        DOWN: {"spire-server": "restricted", "spire-system": "privileged", "downstream-workloads": "restricted"},
    }


def test_the_node_ports_of_the_design(run: ProgramRun) -> None:
    def node_ports(cluster: str) -> dict[str, dict[str, tuple[int, int]]]:
        return {k: {p["name"]: (p["port"], p["nodePort"]) for p in s["spec"]["ports"]}
                for k, s in objects(run, "core/v1:Service", cluster).items() if s["spec"].get("type") == "NodePort"}

    assert node_ports(UP) == {"spire-server/spire-server-external": {"grpc": (8081, 31081),
                                                                     "federation": (8443, 31443)}}
    assert node_ports(DOWN) == {
        "spire-server/spire-server-external": {"grpc": (8081, 32081), "federation": (8443, 32443)},
        "downstream-workloads/security-gateway": {"https": (8080, 30080)},
    }
    gateway = objects(run, "core/v1:Service", DOWN)["downstream-workloads/security-gateway"]
    assert gateway["spec"]["selector"] == {"app.kubernetes.io/name": "security-gateway"}


def server_conf(run: ProgramRun, cluster: str) -> dict[str, Any]:
    text = objects(run, "core/v1:ConfigMap", cluster)["spire-server/spire-server"]["data"]["server.conf"]
    return dict(json.loads(text))


def test_trust_domains_and_federation_both_ways(run: ProgramRun) -> None:
    up, down = server_conf(run, UP), server_conf(run, DOWN)
    assert up["server"]["trust_domain"] == UP_TD and down["server"]["trust_domain"] == DOWN_TD
    for doc in (up, down):
        assert doc["server"]["federation"]["bundle_endpoint"] == {
            "address": "0.0.0.0",  # noqa: S104 - peers in the other cluster
            "port": 8443, "refresh_hint": "5m", "profile": {"https_spiffe": {}}}
        # The relationship is the ClusterFederatedTrustDomain's (below), not static.
        assert "federates_with" not in doc["server"]["federation"]
    relationships = {c: objects(run, "spire.spiffe.io/v1alpha1:ClusterFederatedTrustDomain", c) for c in (UP, DOWN)}
    for cluster, peer, url in ((UP, DOWN_TD, "https://nodes.branch.acme-identity.net:32443"),
                               (DOWN, UP_TD, "https://nodes.hq.acme-identity.net:31443")):
        (name, cftd), = relationships[cluster].items()
        spec = dict(cftd["spec"])
        bundle = spec.pop("trustDomainBundle", None)
        assert (name, spec) == (peer, {
            "trustDomain": peer, "bundleEndpointURL": url, "className": "identity-platform",
            "bundleEndpointProfile": {"type": "https_spiffe", "endpointSPIFFEID": f"spiffe://{peer}/spire/server"}})
        if not run.preview:  # the root is known after the update only
            assert_seed_is_the_root(bundle)
    for cluster, doc in ((UP, up), (DOWN, down)):
        (psat,) = doc["plugins"]["NodeAttestor"]
        assert psat["k8s_psat"]["plugin_data"]["clusters"] == {
            cluster: {"service_account_allow_list": ["spire-system:spire-agent"]}}
    agents = {c: json.loads(objects(run, "core/v1:ConfigMap", c)["spire-system/spire-agent"]["data"]["agent.conf"])
              for c in (UP, DOWN)}
    assert agents[UP]["agent"]["trust_domain"] == UP_TD and agents[DOWN]["agent"]["trust_domain"] == DOWN_TD
    assert {c: a["plugins"]["NodeAttestor"][0]["k8s_psat"]["plugin_data"]["cluster"] for c, a in agents.items()} == {
        UP: UP, DOWN: DOWN}


def assert_seed_is_the_root(bundle: str) -> None:
    """The seed is the SPIFFE bundle of the root (the mock engine's pulumi-tls root `root-ca`): one
    x509-svid key whose x5c is that certificate and whose EC point is its public key."""
    root = x509.load_pem_x509_certificate(mock_cert_pem("root-ca").encode())
    key_of_root = root.public_key()
    assert isinstance(key_of_root, ec.EllipticCurvePublicKey)
    numbers = key_of_root.public_numbers()
    (key,) = json.loads(bundle)["keys"]
    assert key == {
        "use": "x509-svid", "kty": "EC", "crv": "P-256",
        "x": base64.urlsafe_b64encode(numbers.x.to_bytes(32, "big")).decode().rstrip("="),
        "y": base64.urlsafe_b64encode(numbers.y.to_bytes(32, "big")).decode().rstrip("="),
        "x5c": [base64.b64encode(root.public_bytes(serialization.Encoding.DER)).decode()],
    }


def test_the_upstream_authorities(run: ProgramRun) -> None:
    """The root server chains to the root itself; the downstream's CA is an intermediate, with the
    root as the bundle it chains up to: no root key in the downstream cluster."""
    (up,) = server_conf(run, UP)["plugins"]["UpstreamAuthority"]
    (down,) = server_conf(run, DOWN)["plugins"]["UpstreamAuthority"]
    assert up == {"disk": {"plugin_data": {"cert_file_path": "/run/spire/secrets/upstream-ca.pem",
                                           "key_file_path": "/run/spire/secrets/upstream-ca.key"}}}
    assert down == {"disk": {"plugin_data": {"cert_file_path": "/run/spire/secrets/upstream-ca.pem",
                                             "key_file_path": "/run/spire/secrets/upstream-ca.key",
                                             "bundle_file_path": "/run/spire/secrets/upstream-bundle.pem"}}}
    certs = [x for x in run.resources if x.type == "tls:index/locallySignedCert:LocallySignedCert"]
    (intermediate,) = certs
    assert intermediate.inputs["isCaCertificate"] is True
    root = next(x for x in run.resources if x.type == "tls:index/selfSignedCert:SelfSignedCert")
    assert root.urn in intermediate.dependencies
    if not run.preview:  # the certificates are known after the update only
        secrets = {c: objects(run, "core/v1:Secret", c)["spire-server/spire-server-upstream-ca"] for c in (UP, DOWN)}
        assert set(secrets[UP]["stringData"]) == {"upstream-ca.pem", "upstream-ca.key"}
        assert set(secrets[DOWN]["stringData"]) == {"upstream-ca.pem", "upstream-ca.key", "upstream-bundle.pem"}
        assert secrets[DOWN]["stringData"]["upstream-bundle.pem"] == secrets[UP]["stringData"]["upstream-ca.pem"]
        assert secrets[DOWN]["stringData"]["upstream-ca.key"] != secrets[UP]["stringData"]["upstream-ca.key"]


def test_entries_per_cluster_in_its_trust_domain_with_federation(run: ProgramRun) -> None:
    entries = {e.name: unwrap(e.inputs) for e in run.resources if e.type == "pulumi-python:dynamic/spire:Entry"}
    aliases = {n: e for n, e in entries.items() if n.endswith("-node-alias")}
    assert {n: e["spiffe_id"] for n, e in aliases.items()} == {
        "enterprise-upstream-node-alias": f"spiffe://{UP_TD}/k8s/hq/agents",
        "enterprise-downstream-node-alias": f"spiffe://{DOWN_TD}/k8s/branch/agents",
    }
    for e in aliases.values():
        assert e["connection"]["trust_domain"] in (UP_TD, DOWN_TD)
    workloads = {n.removeprefix("spire-entries-branch-entry-"): e for n, e in entries.items() if n not in aliases}
    assert set(workloads) == WORKLOADS
    for w, e in workloads.items():
        assert e["spiffe_id"] == f"spiffe://{DOWN_TD}/ns/downstream-workloads/sa/{w}"
        assert e["parent_id"] == f"spiffe://{DOWN_TD}/k8s/branch/agents"
        assert sorted(e["selectors"]) == ["k8s:ns:downstream-workloads", f"k8s:sa:{w}"]
        assert e["connection"]["context"] == "acme-branch" and e["connection"]["trust_domain"] == DOWN_TD
    # None federated: the input is left out (the provider's check makes it []).
    assert {w: e.get("federates_with") for w, e in workloads.items()} == {
        "enterprise-api": [UP_TD], "security-gateway": [UP_TD], "data-processor": None}


def test_the_controller_manager_beside_both_servers(run: ProgramRun) -> None:
    for cluster, td in ((UP, UP_TD), (DOWN, DOWN_TD)):
        server = objects(run, "apps/v1:StatefulSet", cluster)["spire-server/spire-server"]["spec"]["template"]["spec"]
        assert [c["name"] for c in server["containers"]] == ["spire-server", "spire-controller-manager"]
        manager = server["containers"][1]
        assert manager["image"] == "ghcr.io/spiffe/spire-controller-manager:0.7.0"
        assert {"name": "ENABLE_WEBHOOKS", "value": "false"} in manager["env"]
        mounts = {m["name"]: m for m in manager["volumeMounts"]}
        assert mounts["admin-socket"] == {"name": "admin-socket", "mountPath": "/tmp/spire-server/private",
                                          "readOnly": True}
        conf = yaml.safe_load(objects(run, "core/v1:ConfigMap", cluster)["spire-server/spire-controller-manager"][
            "data"]["config.yaml"])
        assert (conf["trustDomain"], conf["clusterName"], conf["entryIDPrefix"]) == (td, cluster, f"k8s-{cluster}")
        assert conf["spireServerSocketPath"] == "/tmp/spire-server/private/api.sock"
        assert conf["reconcile"] == {"clusterSPIFFEIDs": True, "clusterStaticEntries": True,
                                     "clusterFederatedTrustDomains": True}
    assert not objects(run, "spire.spiffe.io/v1alpha1:ClusterSPIFFEID", UP)
    ids = objects(run, "spire.spiffe.io/v1alpha1:ClusterSPIFFEID", DOWN)
    assert ids["downstream-workloads"]["spec"] == {
        "className": "identity-platform",
        "spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/"
                            "{{ .PodSpec.ServiceAccountName }}",
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "downstream-workloads"}},
        "podSelector": {"matchLabels": {"identity-platform/registration": "crd"}},
        "federatesWith": [UP_TD],
    }
    for cluster in (UP, DOWN):
        crds = objects(run, "apiextensions.k8s.io/v1:CustomResourceDefinition", cluster)
        assert set(crds) == {"clusterspiffeids.spire.spiffe.io", "clusterfederatedtrustdomains.spire.spiffe.io",
                             "clusterstaticentries.spire.spiffe.io"}
        for name, crd in crds.items():
            published = yaml.safe_load((CRD_DIR / f"{name}.yaml").read_text())
            assert crd["spec"] == published["spec"], name  # as published, keys unchanged


def test_without_the_controller_manager_the_relationships_are_static() -> None:
    """No CRD, no sidecar: the relationships are static in server.conf (seeded by hand, docs)."""
    k8s = json.loads(raw_stack_config(STACK)[0]["identity-platform:kubernetes"])
    k8s["enterprise"]["controllerManager"] = False
    r = run_program(STACK, False, config={"identity-platform:kubernetes": json.dumps(k8s)})
    assert not [x for x in r.resources if x.type.endswith(
        ("CustomResourceDefinition", "ClusterSPIFFEID", "ClusterFederatedTrustDomain"))]
    for cluster in (UP, DOWN):
        server = objects(r, "apps/v1:StatefulSet", cluster)["spire-server/spire-server"]["spec"]["template"]["spec"]
        assert [c["name"] for c in server["containers"]] == ["spire-server"]
        assert set(objects(r, "rbac.authorization.k8s.io/v1:ClusterRole", cluster)) == {
            "identity-platform-spire-server", "identity-platform-spire-agent"}
    assert server_conf(r, UP)["server"]["federation"]["federates_with"] == {DOWN_TD: {
        "bundle_endpoint_url": "https://nodes.branch.acme-identity.net:32443",
        "bundle_endpoint_profile": {"https_spiffe": {"endpoint_spiffe_id": f"spiffe://{DOWN_TD}/spire/server"}},
    }}
    assert server_conf(r, DOWN)["server"]["federation"]["federates_with"] == {UP_TD: {
        "bundle_endpoint_url": "https://nodes.hq.acme-identity.net:31443",
        "bundle_endpoint_profile": {"https_spiffe": {"endpoint_spiffe_id": f"spiffe://{UP_TD}/spire/server"}},
    }}


def test_rbac_is_least_privilege(run: ProgramRun) -> None:
    roles = {c: {n: r["rules"] for n, r in objects(run, "rbac.authorization.k8s.io/v1:ClusterRole", c).items()}
             for c in (UP, DOWN)}
    server = [{"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
              {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get"]}]
    agent = [{"apiGroups": [""], "resources": ["nodes/pods"], "verbs": ["get"]}]
    kinds = ["clusterspiffeids", "clusterstaticentries", "clusterfederatedtrustdomains"]
    for cluster in (UP, DOWN):
        assert roles[cluster] == {
            "identity-platform-spire-server": server, "identity-platform-spire-agent": agent,
            "identity-platform-spire-controller-manager": [
                {"apiGroups": [""], "resources": ["pods", "nodes", "namespaces", "endpoints"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["spire.spiffe.io"], "resources": kinds, "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["spire.spiffe.io"], "resources": [f"{k}/status" for k in kinds],
                 "verbs": ["get", "patch", "update"]},
                {"apiGroups": ["spire.spiffe.io"], "resources": [f"{k}/finalizers" for k in kinds],
                 "verbs": ["update"]},
            ],
        }
    for cluster_roles in roles.values():
        for rules in cluster_roles.values():
            for rule in rules:
                assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
    for cluster in (UP, DOWN):
        (election,) = objects(run, "rbac.authorization.k8s.io/v1:Role", cluster).values()
        assert election["metadata"]["namespace"] == "spire-server"
        assert [r["resources"] for r in election["rules"]] == [["leases"], ["events"]]
        assert "delete" not in election["rules"][0]["verbs"]


def test_every_pod_spec_is_restricted_but_the_node_level_parts(run: ProgramRun) -> None:
    assert_pod_security(run, {UP: {"spire-server", "spire-db"} | NODE_LEVEL,
                              DOWN: {"spire-server", "spire-db"} | NODE_LEVEL | WORKLOADS}, NODE_LEVEL)


def assert_pod_security(run: ProgramRun, apps: dict[str, set[str]], node_level: set[str]) -> None:
    """Every pod spec of each cluster (exactly the apps `apps` names) has requests and limits, a pinned
    image and a read-only root; all but the `node_level` apps (in spire-system) are restricted."""
    for cluster, expected in apps.items():
        seen = set()
        for ns, app, spec in pod_specs(run, cluster):
            seen.add(app)
            for c in spec["containers"] + spec.get("initContainers", []):
                res = c["resources"]
                assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"])
                assert pin_problem(c["image"]) is None, c["image"]
                assert c["securityContext"]["readOnlyRootFilesystem"] is True, (app, c["name"])
            if app in node_level:
                assert ns == "spire-system"
                continue
            pod = spec["securityContext"]
            assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0 and pod["seccompProfile"] == {
                "type": "RuntimeDefault"}, app
            assert not spec.get("hostPID") and not spec.get("hostNetwork") and not spec.get("hostIPC"), app
            assert not any("hostPath" in v for v in spec.get("volumes", [])), app
            for c in spec["containers"]:
                ctx = c["securityContext"]
                assert ctx["allowPrivilegeEscalation"] is False and ctx["privileged"] is False, (app, c["name"])
                assert ctx["capabilities"] == {"drop": ["ALL"]} and ctx["runAsNonRoot"] is True, (app, c["name"])
        assert seen == expected, cluster
        agent = next(spec for _, app, spec in pod_specs(run, cluster) if app == "spire-agent")
        assert agent["hostPID"] is True  # the k8s workload attestor; the one exception of the agent pod
        pdbs = objects(run, "policy/v1:PodDisruptionBudget", cluster)
        assert pdbs["spire-server/spire-server"]["spec"]["minAvailable"] == 1


def test_network_policies_allow_the_cross_cluster_flows_only(run: ProgramRun) -> None:
    for cluster, peer_port in ((UP, 32443), (DOWN, 31443)):
        policies = objects(run, "networking.k8s.io/v1:NetworkPolicy", cluster)
        namespaces = ["spire-server", "spire-system"] + (["downstream-workloads"] if cluster == DOWN else [])
        for ns in namespaces:
            assert policies[f"{ns}/default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        server = policies["spire-server/spire-server"]["spec"]
        # In-cluster agents on 8081; from outside (NodePorts): the agent API and the bundle endpoint.
        assert server["ingress"][1] == {"ports": [{"protocol": "TCP", "port": 8081}, {"protocol": "TCP", "port": 8443}]}
        assert "from" not in server["ingress"][1] and len(server["ingress"]) == 2
        # Out: the database, the API server, DNS, and the other cluster's bundle endpoint NodePort.
        assert sorted(p["port"] for rule in server["egress"] for p in rule["ports"]) == sorted(
            [5432, 443, 6443, 53, 53, peer_port])
    gateway = objects(run, "networking.k8s.io/v1:NetworkPolicy", DOWN)["downstream-workloads/security-gateway"]
    assert gateway["spec"] == {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "security-gateway"}},
                               "policyTypes": ["Ingress"], "ingress": [{"ports": [{"protocol": "TCP", "port": 8080}]}]}


def test_keys_live_only_in_secrets(run: ProgramRun) -> None:
    for x in run.resources:
        if x.type.startswith(K8S) and x.type.endswith("core/v1:Secret"):
            data = x.inputs["stringData"]
            assert is_secret(data) or all(is_secret(v) for k, v in data.items() if not k.endswith(".pem")), x.name
        elif x.type.startswith(K8S):
            for text in walk_strings(x.inputs):
                assert SECRET_PREFIX not in text and "PRIVATE KEY" not in text, x.name


def test_the_stack_exports() -> None:
    values = {k: e.value for k, e in program_run(STACK, False).exports.items()}
    assert values["kubernetesTopology"] == "enterprise" and values["kubernetesClusters"] == ["branch", "hq"]
    assert values["spireTrustDomain"] == UP_TD
    assert values["spireServerAddress"] == "nodes.hq.acme-identity.net:31081"
    assert set(values["spireEntryIds"]) == WORKLOADS


# --- config ------------------------------------------------------------------------------------


def _enterprise(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "environment": "prod", "platform": "kubernetes", "strict": True,
        "spire": {"trustDomain": "hq.acme.net"},
        "kubernetes": {
            "topology": "enterprise",
            "clusters": {"hq": {"context": "hq"}, "branch": {"context": "branch"}},
            "enterprise": {"upstream": {"cluster": "hq", "address": "hq-nodes.acme.net"},
                           "downstream": {"cluster": "branch", "address": "branch-nodes.acme.net",
                                          "trustDomain": "branch.acme.net"}},
        },
    }
    raw.update(changes)
    return raw


def _problems(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as e:
        stack_config.parse(raw)
    return str(e.value)


class TestEnterpriseConfig:
    def test_the_stack_file_parses(self) -> None:
        config = stack_config.parse_stack_values(*raw_stack_config(STACK))
        assert config.kubernetes is not None and config.kubernetes.topology == "enterprise"
        assert config.trust_domains == {UP: UP_TD, DOWN: DOWN_TD}

    def test_a_minimal_enterprise_config_is_accepted(self) -> None:
        config = stack_config.parse(_enterprise())
        assert config.workload_trust_domain("branch") == "branch.acme.net"

    def test_every_problem_at_once_each_naming_its_key(self) -> None:
        raw = _enterprise(kubernetes={
            "topology": "enterprise",
            "clusters": {"hq": {}, "branch": {}, "third": {}},
            "enterprise": {"upstream": {"cluster": "hq", "address": "localhost"},
                           "downstream": {"cluster": "elsewhere", "address": "nodes.example.com",
                                          "trustDomain": "hq.acme.net"}},
        }, workloads={"w": {"spiffePath": "/w", "node": "hq", "selectors": ["k8s:ns:a", "k8s:sa:w"],
                            "federatesWith": ["other.acme.net"]}})
        text = _problems(raw)
        for key, fragment in {
            "kubernetes.clusters": "exactly two clusters",
            "kubernetes.enterprise.downstream.cluster": "'elsewhere' is not a key of kubernetes.clusters",
            "kubernetes.enterprise.downstream.trustDomain": "needs two trust domains",
            "kubernetes.enterprise.upstream.address": "localhost",
            "workloads.w.federatesWith": "'other.acme.net' is not federated with 'hq.acme.net'",
        }.items():
            assert f"identity-platform:{key}: " in text and fragment in text, (key, text)
        assert "kubernetes.enterprise.downstream.address" in text  # example.com: a placeholder (strict)

    def test_the_enterprise_section_is_required_and_only_there(self) -> None:
        raw = _enterprise()
        del raw["kubernetes"]["enterprise"]
        assert "identity-platform:kubernetes.enterprise: required with the enterprise topology" in _problems(raw)
        basic = _enterprise()
        basic["kubernetes"] |= {"topology": "basic", "clusters": {"hq": {}}}
        assert "identity-platform:kubernetes.enterprise: only the enterprise topology" in _problems(basic)

    def test_both_sides_in_one_cluster_are_refused(self) -> None:
        raw = _enterprise()
        raw["kubernetes"]["enterprise"]["downstream"]["cluster"] = "hq"
        assert "identity-platform:kubernetes.enterprise.downstream.cluster: the downstream server runs in the " \
               "other cluster" in _problems(raw)

    def test_strict_mode_refuses_a_placeholder_downstream_trust_domain(self) -> None:
        raw = _enterprise()
        raw["kubernetes"]["enterprise"]["downstream"]["trustDomain"] = "branch.example.org"
        assert "identity-platform:kubernetes.enterprise.downstream.trustDomain: 'branch.example.org' is a " \
               "placeholder" in _problems(raw)

    def test_federation_outside_the_enterprise_topology_is_refused(self) -> None:
        raw = {"environment": "dev", "platform": "kubernetes", "spire": {"trustDomain": "k8s.acme.net"},
               "kubernetes": {"clusters": {"dev": {}}},
               "workloads": {"w": {"spiffePath": "/w", "node": "dev", "selectors": ["k8s:ns:a", "k8s:sa:w"],
                                   "federatesWith": ["other.acme.net"]}}}
        assert "identity-platform:workloads.w.federatesWith: only the enterprise topology" in _problems(raw)

    def test_the_committed_crd_classes_are_what_the_committed_crds_generate(self) -> None:
        spec = importlib.util.spec_from_file_location("gen_crd_types", ROOT / "scripts" / "gen_crd_types.py")
        assert spec is not None and spec.loader is not None
        gen_crd_types = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(gen_crd_types)
        assert gen_crd_types.MODULE.read_text() == gen_crd_types.generate(
            gen_crd_types.committed_crds(), "v" + stack_config.versions.SPIRE_CONTROLLER_MANAGER)
