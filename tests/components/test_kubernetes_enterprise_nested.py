"""platform kubernetes, enterprise topology nested (`kubernetes.enterprise.nesting: spire`):
`__main__.py` with `Pulumi.k8s-enterprise-nested.yaml` under the mock engine (preview and update).

Asserts the nesting wiring: one trust domain in both clusters and nothing federated (no bundle
endpoint, no federation NodePort, no ClusterFederatedTrustDomain, no `federatesWith`); the
downstream server's `UpstreamAuthority "spire"` dialing the upstream's agent API NodePort through
the upstream agent's socket, which its pod mounts from the upstream agents' own CSI driver; those
agents (a DaemonSet in the downstream cluster with its own host directory) attesting to the
upstream as cluster `branch-upstream`, which the upstream's k8s_psat reviews through the
downstream cluster's kubeconfig (an optional Secret: with `downstream.apiServer`, as the stack file
sets it, `pulumi up` builds it from the reviewer's token Secret as a Pulumi secret, and no plain
input or export holds the token; without it the operator creates it); the downstream entry on
the upstream (`downstream: true`, selecting the downstream server's container); no program-made
intermediate; and the security rules for every pod spec. Expected values are written out from the
stack file and the design. The config refusals of the mode follow.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

import stack_config
from components.kubernetes.spire_config import peer_kubeconfig
from tests.components._platform import is_secret, unwrap, walk_strings
from tests.components.test_kubernetes_enterprise import (
    NODE_LEVEL,
    WORKLOADS,
    _enterprise,
    _problems,
    assert_pod_security,
    objects,
    pod_specs,
    server_conf,
)
from tests.conftest import MODES, program_run
from tests.harness.mock_engine import ProgramRun, Registered, mock_cert_pem, mock_sa_token, run_program
from tests.harness.mock_engine import stack_config as raw_stack_config

STACK = "k8s-enterprise-nested"
UP, DOWN = "hq", "branch"
TD = "hq.acme-identity.net"
UPSTREAM_NODE_LEVEL = {"spire-upstream-agent", "spiffe-upstream-csi-driver"}
ENTRY = "pulumi-python:dynamic/spire:Entry"


@pytest.fixture(params=MODES)
def run(request: pytest.FixtureRequest) -> ProgramRun:
    return program_run(STACK, request.param)


def _agent_conf(run: ProgramRun, cluster: str, name: str) -> dict[str, Any]:
    return dict(json.loads(objects(run, "core/v1:ConfigMap", cluster)[f"spire-system/{name}"]["data"]["agent.conf"]))


def _pod(run: ProgramRun, cluster: str, app: str) -> dict[str, Any]:
    (spec,) = [spec for _, name, spec in pod_specs(run, cluster) if name == app]
    return spec


def _entries(run: ProgramRun) -> dict[str, Registered]:
    return {e.name: e for e in run.resources if e.type == ENTRY}


def test_one_trust_domain_and_nothing_federated(run: ProgramRun) -> None:
    for cluster in (UP, DOWN):
        doc = server_conf(run, cluster)
        assert doc["server"]["trust_domain"] == TD
        assert "federation" not in doc["server"], cluster
        assert _agent_conf(run, cluster, "spire-agent")["agent"]["trust_domain"] == TD
        assert not objects(run, "spire.spiffe.io/v1alpha1:ClusterFederatedTrustDomain", cluster)

    def node_ports(cluster: str) -> dict[str, dict[str, tuple[int, int]]]:
        return {k: {p["name"]: (p["port"], p["nodePort"]) for p in s["spec"]["ports"]}
                for k, s in objects(run, "core/v1:Service", cluster).items() if s["spec"].get("type") == "NodePort"}

    assert node_ports(UP) == {"spire-server/spire-server-external": {"grpc": (8081, 31081)}}
    assert node_ports(DOWN) == {"spire-server/spire-server-external": {"grpc": (8081, 32081)},
                                "downstream-workloads/security-gateway": {"https": (8080, 30080)}}
    for cluster in (UP, DOWN):
        ports = [p["name"] for p in _pod(run, cluster, "spire-server")["containers"][0]["ports"]]
        assert ports == ["grpc", "health", "metrics"], cluster
    workloads = {n: unwrap(e.inputs) for n, e in _entries(run).items() if n.startswith("spire-entries-branch-")}
    assert {n.removeprefix("spire-entries-branch-entry-"): e["spiffe_id"] for n, e in workloads.items()} == {
        w: f"spiffe://{TD}/ns/downstream-workloads/sa/{w}" for w in WORKLOADS}
    assert all(not e.get("federates_with") for e in workloads.values())


def test_the_downstream_server_is_nested_under_the_upstream(run: ProgramRun) -> None:
    (up,) = server_conf(run, UP)["plugins"]["UpstreamAuthority"]
    (down,) = server_conf(run, DOWN)["plugins"]["UpstreamAuthority"]
    assert up == {"disk": {"plugin_data": {"cert_file_path": "/run/spire/secrets/upstream-ca.pem",
                                           "key_file_path": "/run/spire/secrets/upstream-ca.key"}}}
    assert down == {"spire": {"plugin_data": {
        "server_address": "nodes.hq.acme-identity.net", "server_port": "31081",
        "workload_api_socket": "/run/spire/upstream-agent/agent.sock"}}}
    # The upstream server mints the downstream's CA: no intermediate, no CA Secret in branch.
    assert not [x for x in run.resources if x.type == "tls:index/locallySignedCert:LocallySignedCert"]
    assert "spire-server/spire-server-upstream-ca" not in objects(run, "core/v1:Secret", DOWN)
    assert "spire-server/spire-server-upstream-ca" in objects(run, "core/v1:Secret", UP)
    # The socket the plugin dials: the upstream agents' CSI volume, read-only in the server container only.
    pod = _pod(run, DOWN, "spire-server")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["upstream-agent"] == {"name": "upstream-agent",
                                         "csi": {"driver": "upstream.csi.spiffe.io", "readOnly": True}}
    mounts = {c["name"]: [m for m in c["volumeMounts"] if m["name"] == "upstream-agent"] for c in pod["containers"]}
    assert mounts == {"spire-server": [{"name": "upstream-agent", "mountPath": "/run/spire/upstream-agent",
                                        "readOnly": True}],
                      "spire-controller-manager": []}
    assert not [s for s in volumes["secrets"]["projected"]["sources"] if "upstream-ca" in s["secret"]["name"]]
    assert "upstream-agent" not in {v["name"] for v in _pod(run, UP, "spire-server")["volumes"]}


def test_the_upstream_agents_of_the_downstream_cluster(run: ProgramRun) -> None:
    conf = _agent_conf(run, DOWN, "spire-upstream-agent")
    assert {k: conf["agent"][k] for k in ("server_address", "server_port", "trust_domain", "socket_path")} == {
        "server_address": "nodes.hq.acme-identity.net", "server_port": "31081", "trust_domain": TD,
        "socket_path": "/run/spire/sockets/agent.sock"}
    assert conf["plugins"]["NodeAttestor"] == [{"k8s_psat": {"plugin_data": {
        "cluster": "branch-upstream", "token_path": "/var/run/secrets/tokens/spire-agent"}}}]
    # Its own host directory behind the usual socket path, shared only with its own CSI driver.
    agent = _pod(run, DOWN, "spire-upstream-agent")
    assert agent["serviceAccountName"] == "spire-upstream-agent" and agent["hostPID"] is True
    host = {v["name"]: v["hostPath"]["path"] for v in agent["volumes"] if "hostPath" in v}
    assert host == {"sockets": "/run/spire/upstream-sockets"}
    assert {"name": "sockets", "mountPath": "/run/spire/sockets"} in agent["containers"][0]["volumeMounts"]
    csi = _pod(run, DOWN, "spiffe-upstream-csi-driver")
    assert {v["name"]: v["hostPath"]["path"] for v in csi["volumes"]}["sockets"] == "/run/spire/upstream-sockets"
    assert csi["containers"][0]["args"][csi["containers"][0]["args"].index("-plugin-name") + 1] == \
        "upstream.csi.spiffe.io"
    assert set(objects(run, "storage.k8s.io/v1:CSIDriver", DOWN)) == {"csi.spiffe.io", "upstream.csi.spiffe.io"}
    assert set(objects(run, "storage.k8s.io/v1:CSIDriver", UP)) == {"csi.spiffe.io"}
    # The cluster's own agents are unchanged beside them.
    own = _agent_conf(run, DOWN, "spire-agent")
    assert (own["agent"]["server_address"], own["plugins"]["NodeAttestor"][0]["k8s_psat"]["plugin_data"]["cluster"]) \
        == ("spire-server.spire-server.svc", "branch")
    assert {h["hostPath"]["path"] for h in _pod(run, DOWN, "spire-agent")["volumes"] if "hostPath" in h} == {
        "/run/spire/sockets"}


def test_the_upstream_reviews_those_agents_in_the_downstream_cluster(run: ProgramRun) -> None:
    (psat,) = server_conf(run, UP)["plugins"]["NodeAttestor"]
    # Two clusters: a list of one-key objects, as HCL reads them (components/spire_conf.py).
    assert psat["k8s_psat"]["plugin_data"]["clusters"] == [
        {"hq": {"service_account_allow_list": ["spire-system:spire-agent"]}},
        {"branch-upstream": {"service_account_allow_list": ["spire-system:spire-upstream-agent"],
                             "kube_config_file": "/run/spire/secrets/downstream-kubeconfig"}},
    ]
    (psat,) = server_conf(run, DOWN)["plugins"]["NodeAttestor"]
    assert psat["k8s_psat"]["plugin_data"]["clusters"] == {
        "branch": {"service_account_allow_list": ["spire-system:spire-agent"]}}
    # The kubeconfig: an optional Secret (the server starts before it exists; made below or by the operator).
    sources = {v["name"]: v for v in _pod(run, UP, "spire-server")["volumes"]}["secrets"]["projected"]["sources"]
    assert {"secret": {"name": "spire-server-downstream-kubeconfig", "optional": True,
                       "items": [{"key": "kubeconfig", "path": "downstream-kubeconfig"}]}} in sources
    # The identity it reviews with in branch: the reviewer role, bound to an account of its own.
    bindings = objects(run, "rbac.authorization.k8s.io/v1:ClusterRoleBinding", DOWN)
    reviewer = bindings["identity-platform-spire-upstream-reviewer"]
    assert reviewer["roleRef"]["name"] == "identity-platform-spire-server"
    assert reviewer["subjects"] == [{"kind": "ServiceAccount", "name": "spire-upstream-reviewer",
                                     "namespace": "spire-system"}]
    account = objects(run, "core/v1:ServiceAccount", DOWN)["spire-system/spire-upstream-reviewer"]
    assert account["automountServiceAccountToken"] is False


TOKEN_SECRET = "enterprise-downstream-upstream-reviewer-token"
KUBECONFIG_SECRET = "enterprise-peer-kubeconfig"
SECRET_TYPE = "kubernetes:core/v1:Secret"


def test_up_makes_the_reviewers_token_in_the_downstream_cluster(run: ProgramRun) -> None:
    # A service-account-token Secret of the reviewer account, which branch's token controller fills.
    secrets = objects(run, "core/v1:Secret", DOWN)
    token = secrets["spire-system/spire-upstream-reviewer-token"]
    assert token["type"] == "kubernetes.io/service-account-token"
    assert token["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "spire-upstream-reviewer"}
    assert "data" not in token and "stringData" not in token  # the program writes nothing into it
    registered = run.get(SECRET_TYPE, TOKEN_SECRET)
    # What the provider returns once the token is there is a secret output (the provider marks a
    # Secret's data so too), and the account exists first.
    assert "data" in registered.additional_secret_outputs
    account = run.get("kubernetes:core/v1:ServiceAccount", "enterprise-downstream-upstream-reviewer-account")
    assert account.urn in registered.dependencies
    # Only with downstream.apiServer: nothing of the kind in hq.
    assert not [k for k in objects(run, "core/v1:Secret", UP) if "reviewer" in k]


def test_up_delivers_the_kubeconfig_to_the_upstream_cluster(run: ProgramRun) -> None:
    secret = run.get(SECRET_TYPE, KUBECONFIG_SECRET)
    inputs = objects(run, "core/v1:Secret", UP)["spire-server/spire-server-downstream-kubeconfig"]
    assert inputs["metadata"]["labels"]["app.kubernetes.io/name"] == "spire-server" and "data" not in inputs
    assert run.get(SECRET_TYPE, TOKEN_SECRET).urn in secret.dependencies
    if run.preview:  # the token is not there before the token Secret is created
        assert not isinstance(inputs["stringData"], dict)
        return
    # A Pulumi secret end to end: the kubeconfig input is secret.
    assert set(inputs["stringData"]) == {"kubeconfig"}
    wrapped = secret.inputs["stringData"]
    assert is_secret(wrapped) or is_secret(wrapped["kubeconfig"]), wrapped
    doc = yaml.safe_load(inputs["stringData"]["kubeconfig"])
    ca = base64.b64encode(mock_cert_pem(f"{TOKEN_SECRET}-cluster-ca").encode()).decode()
    assert doc == {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "branch", "cluster": {"server": "https://api.branch.acme-identity.net:6443",
                                                    "certificate-authority-data": ca}}],
        "users": [{"name": "spire-upstream-reviewer", "user": {"token": mock_sa_token(TOKEN_SECRET)}}],
        "contexts": [{"name": "branch", "context": {"cluster": "branch", "user": "spire-upstream-reviewer"}}],
        "current-context": "branch",
    }


def test_no_plain_input_or_export_holds_the_reviewers_token() -> None:
    run = program_run(STACK, False)
    token = mock_sa_token(TOKEN_SECRET)
    forms = (token, base64.b64encode(token.encode()).decode())
    assert any(token in s for s in walk_strings(run.get(SECRET_TYPE, KUBECONFIG_SECRET).inputs))
    for x in run.resources:
        for text in walk_strings(x.inputs, into_secrets=False):
            assert not any(f in text for f in forms), x.name
    for key, export in run.exports.items():
        if not export.secret:
            assert not any(f in json.dumps(export.value) for f in forms), key


def test_without_api_server_the_operator_makes_the_kubeconfig() -> None:
    """downstream.apiServer unset (stacks from before it): the manual step, as before."""
    k8s = json.loads(raw_stack_config(STACK)[0]["identity-platform:kubernetes"])
    del k8s["enterprise"]["downstream"]["apiServer"]
    r = run_program(STACK, False, config={"identity-platform:kubernetes": json.dumps(k8s)})
    for cluster in (UP, DOWN):
        assert not [k for k in objects(r, "core/v1:Secret", cluster) if "kubeconfig" in k or "reviewer" in k]
    sources = {v["name"]: v for v in _pod(r, UP, "spire-server")["volumes"]}["secrets"]["projected"]["sources"]
    assert {"secret": {"name": "spire-server-downstream-kubeconfig", "optional": True,
                       "items": [{"key": "kubeconfig", "path": "downstream-kubeconfig"}]}} in sources
    assert "spire-system/spire-upstream-reviewer" in objects(r, "core/v1:ServiceAccount", DOWN)


def test_the_upstream_server_may_reach_an_api_server_on_another_port() -> None:
    """443 and 6443 are allowed to any address already (the stack file's 6443: no rule added)."""
    k8s = json.loads(raw_stack_config(STACK)[0]["identity-platform:kubernetes"])
    k8s["enterprise"]["downstream"]["apiServer"] = "https://api.branch.acme-identity.net:8443"
    r = run_program(STACK, False, config={"identity-platform:kubernetes": json.dumps(k8s)})
    server = objects(r, "networking.k8s.io/v1:NetworkPolicy", UP)["spire-server/spire-server"]["spec"]
    assert {"ports": [{"protocol": "TCP", "port": 8443}]} in server["egress"]
    assert sorted(p["port"] for rule in server["egress"] for p in rule["ports"]) == [53, 53, 443, 5432, 6443, 8443]
    (cluster,) = yaml.safe_load(objects(r, "core/v1:Secret", UP)["spire-server/spire-server-downstream-kubeconfig"]
                                ["stringData"]["kubeconfig"])["clusters"]
    assert cluster["cluster"]["server"] == "https://api.branch.acme-identity.net:8443"


def test_the_kubeconfig_is_yaml_whatever_the_values() -> None:
    text = peer_kubeconfig("b", "https://10.0.0.1:6443", "Q0E=", 'tok: "en\n#x')
    doc = yaml.safe_load(text)
    assert doc["users"][0]["user"]["token"] == 'tok: "en\n#x'
    assert doc["clusters"][0]["cluster"] == {"server": "https://10.0.0.1:6443", "certificate-authority-data": "Q0E="}


def test_the_downstream_entry_on_the_upstream(run: ProgramRun) -> None:
    entries = _entries(run)
    alias, down = unwrap(entries["enterprise-nested-node-alias"].inputs), unwrap(
        entries["enterprise-downstream-entry"].inputs)
    assert (alias["spiffe_id"], alias["parent_id"], sorted(alias["selectors"])) == (
        f"spiffe://{TD}/k8s/branch-upstream/agents", f"spiffe://{TD}/spire/server",
        ["k8s_psat:agent_ns:spire-system", "k8s_psat:agent_sa:spire-upstream-agent",
         "k8s_psat:cluster:branch-upstream"])
    assert (down["spiffe_id"], down["parent_id"], sorted(down["selectors"]), down["downstream"]) == (
        f"spiffe://{TD}/k8s/branch/spire-server", f"spiffe://{TD}/k8s/branch-upstream/agents",
        ["k8s:container-name:spire-server", "k8s:ns:spire-server", "k8s:sa:spire-server"], True)
    for e in (alias, down):  # registered on the upstream server (hq)
        assert (e["connection"]["context"], e["connection"]["trust_domain"]) == ("acme-hq", TD)
    # The downstream server starts once the upstream knows it.
    statefulset = next(x for x in run.resources if x.name == "enterprise-downstream-server-statefulset")
    assert entries["enterprise-downstream-entry"].urn in statefulset.dependencies
    own = {n: unwrap(e.inputs) for n, e in entries.items() if n.endswith("node-alias")}
    assert {n: (e["spiffe_id"], e["connection"]["context"]) for n, e in own.items()} == {
        "enterprise-upstream-node-alias": (f"spiffe://{TD}/k8s/hq/agents", "acme-hq"),
        "enterprise-downstream-node-alias": (f"spiffe://{TD}/k8s/branch/agents", "acme-branch"),
        "enterprise-nested-node-alias": (f"spiffe://{TD}/k8s/branch-upstream/agents", "acme-hq"),
    }


def test_the_controller_manager_runs_downstream_only(run: ProgramRun) -> None:
    containers = {c: [x["name"] for x in _pod(run, c, "spire-server")["containers"]] for c in (UP, DOWN)}
    assert containers == {UP: ["spire-server"], DOWN: ["spire-server", "spire-controller-manager"]}
    assert not objects(run, "apiextensions.k8s.io/v1:CustomResourceDefinition", UP)
    ids = objects(run, "spire.spiffe.io/v1alpha1:ClusterSPIFFEID", DOWN)
    assert "federatesWith" not in ids["downstream-workloads"]["spec"]


def test_every_pod_spec_is_restricted_but_the_node_level_parts(run: ProgramRun) -> None:
    server = {"spire-server", "spire-db"}
    assert_pod_security(run, {UP: server | NODE_LEVEL, DOWN: server | NODE_LEVEL | UPSTREAM_NODE_LEVEL | WORKLOADS},
                        NODE_LEVEL | UPSTREAM_NODE_LEVEL)


def test_network_policies_allow_the_nested_flows_only(run: ProgramRun) -> None:
    for cluster, peer_ports in ((UP, []), (DOWN, [31081])):
        server = objects(run, "networking.k8s.io/v1:NetworkPolicy", cluster)["spire-server/spire-server"]["spec"]
        # From outside (the NodePort): the agent API only; no bundle endpoint.
        assert server["ingress"][1] == {"ports": [{"protocol": "TCP", "port": 8081}]} and len(server["ingress"]) == 2
        # Out: the database, the API servers, DNS; downstream also the upstream's agent API NodePort.
        assert sorted(p["port"] for rule in server["egress"] for p in rule["ports"]) == sorted(
            [5432, 443, 6443, 53, 53, *peer_ports]), cluster
    policies = objects(run, "networking.k8s.io/v1:NetworkPolicy", DOWN)
    upstream_agent = policies["spire-system/spire-upstream-agent"]["spec"]
    assert upstream_agent["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "spire-upstream-agent"}}
    # Its server is in the other cluster: the NodePort on any address, the kubelet, DNS.
    assert upstream_agent["egress"][0] == {"ports": [{"protocol": "TCP", "port": 31081}]}
    assert sorted(p["port"] for rule in upstream_agent["egress"] for p in rule["ports"]) == [53, 53, 10250, 31081]
    # One default-deny in spire-system, from the cluster's own agents.
    assert sorted(k for k in policies if k.startswith("spire-system/")) == [
        "spire-system/default-deny", "spire-system/spire-agent", "spire-system/spire-upstream-agent"]


def test_the_stack_exports() -> None:
    values = {k: e.value for k, e in program_run(STACK, False).exports.items()}
    assert values["kubernetesTopology"] == "enterprise" and values["spireTrustDomain"] == TD
    assert values["spireServerAddress"] == "nodes.hq.acme-identity.net:31081"
    assert set(values["spireEntryIds"]) == WORKLOADS


# --- config ------------------------------------------------------------------------------------


def _nested(**downstream: Any) -> dict[str, Any]:
    raw = _enterprise()
    raw["kubernetes"]["enterprise"]["nesting"] = "spire"
    raw["kubernetes"]["enterprise"]["downstream"] = {"cluster": "branch", "address": "branch-nodes.acme.net",
                                                     **downstream}
    return raw


class TestNestedConfig:
    def test_the_stack_file_parses_into_one_trust_domain(self) -> None:
        config = stack_config.parse_stack_values(*raw_stack_config(STACK))
        assert config.kubernetes is not None and config.kubernetes.enterprise is not None
        assert config.kubernetes.enterprise.nesting == "spire"
        assert config.trust_domains == {UP: TD, DOWN: TD}

    def test_the_downstream_trust_domain_may_be_left_out_or_the_same(self) -> None:
        for raw in (_nested(), _nested(trustDomain="hq.acme.net")):
            assert stack_config.parse(raw).workload_trust_domain("branch") == "hq.acme.net"

    def test_another_trust_domain_is_refused_with_nesting(self) -> None:
        text = _problems(_nested(trustDomain="branch.acme.net"))
        assert "identity-platform:kubernetes.enterprise.downstream.trustDomain: 'branch.acme.net' differs from " \
               "spire.trustDomain ('hq.acme.net'), but nesting: spire puts the downstream server in the " \
               "upstream's trust domain" in text

    def test_federation_needs_the_downstream_trust_domain(self) -> None:
        raw = _enterprise()
        del raw["kubernetes"]["enterprise"]["downstream"]["trustDomain"]
        assert "identity-platform:kubernetes.enterprise.downstream.trustDomain: required with " \
               "kubernetes.enterprise.nesting none" in _problems(raw)

    def test_federates_with_is_refused_when_nested(self) -> None:
        raw = _nested()
        raw["workloads"] = {"w": {"spiffePath": "/w", "node": "branch", "selectors": ["k8s:ns:a", "k8s:sa:w"],
                                  "federatesWith": ["hq.acme.net"]}}
        assert "identity-platform:workloads.w.federatesWith: kubernetes.enterprise.nesting spire puts both " \
               "servers in 'hq.acme.net': there is no other trust domain" in _problems(raw)

    def test_an_unknown_nesting_is_refused_naming_the_key(self) -> None:
        raw = _nested()
        raw["kubernetes"]["enterprise"]["nesting"] = "federation"
        text = _problems(raw)
        assert "identity-platform:kubernetes.enterprise.nesting: 'federation' is not one of none, spire" in text, text

    def test_the_stack_file_sets_the_downstream_api_server(self) -> None:
        config = stack_config.parse_stack_values(*raw_stack_config(STACK))
        assert config.kubernetes is not None and config.kubernetes.enterprise is not None
        assert config.kubernetes.enterprise.downstream.api_server == "https://api.branch.acme-identity.net:6443"

    def test_the_api_server_is_optional(self) -> None:
        config = stack_config.parse(_nested())
        assert config.kubernetes is not None and config.kubernetes.enterprise is not None
        assert config.kubernetes.enterprise.downstream.api_server is None

    @pytest.mark.parametrize(("value", "why"), [
        ("api.branch.acme.net", "is not an https URL: give https://<host>[:<port>]"),
        ("http://api.branch.acme.net:6443", "is not an https URL: give https://<host>[:<port>]"),
        ("https://api.branch.acme.net:6443/x", "has a path, query or user info: give https://<host>[:<port>] alone"),
        ("https://admin@api.branch.acme.net", "has a path, query or user info"),
        ("https://api.branch.acme.net:70000", "is not a URL"),
        ("https://api_branch.acme.net", "has an unusable host: 'api_branch.acme.net' is not a host name"),
    ])
    def test_a_bad_api_server_is_refused_naming_the_key(self, value: str, why: str) -> None:
        text = _problems(_nested(apiServer=value))
        assert f"identity-platform:kubernetes.enterprise.downstream.apiServer: {value!r} {why}" in text, text
        assert text.count("identity-platform:") == 1, text

    def test_the_api_server_is_refused_without_nesting(self) -> None:
        raw = _enterprise()
        raw["kubernetes"]["enterprise"]["downstream"]["apiServer"] = "https://api.branch.acme.net:6443"
        assert "identity-platform:kubernetes.enterprise.downstream.apiServer: 'https://api.branch.acme.net:6443' " \
               "is used only with kubernetes.enterprise.nesting spire" in _problems(raw)

    def test_strict_mode_refuses_a_local_or_placeholder_api_server(self) -> None:
        for value, why in (("https://127.0.0.1:6443", "points at localhost"),
                           ("https://api.example.com", "is a placeholder")):
            assert f"identity-platform:kubernetes.enterprise.downstream.apiServer: {value!r} {why}" \
                   in _problems(_nested(apiServer=value))
        assert stack_config.parse({**_nested(apiServer="https://127.0.0.1:6443"), "strict": False})

    def test_a_cluster_name_too_long_for_the_upstream_agents_is_refused(self) -> None:
        long = "b" * 60
        raw = _nested()
        raw["kubernetes"]["clusters"] = {"hq": {}, long: {}}
        raw["kubernetes"]["enterprise"]["downstream"]["cluster"] = long
        assert f"identity-platform:kubernetes.enterprise.downstream.cluster: '{long}' is too long for nesting" \
               in _problems(raw)
