"""platform kubernetes, basic topology: `__main__.py` with `Pulumi.k8s-dev.yaml` under the mock
engine (preview and update) builds the design's namespaces, SPIRE server, agents and sample
workloads, and every object follows the security rules: every pod spec restricted except the
node-level parts (each exception named), least-privilege RBAC, default-deny network policies
with only the required flows, a PodDisruptionBudget for the server, pinned images, secrets only
in Secrets. The SPIRE configs it ships are the ones `components/kubernetes/spire_config.py`
renders (the real-server tier validates those with the real binaries)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import stack_config
from components.kubernetes import spire_config
from components.kubernetes.spire_agents import CSI_DRIVER
from policy.image_ref import pin_problem
from stack_config import ConfigError
from tests.components._platform import is_secret, unwrap, walk_strings
from tests.conftest import MODES, STACKS, program_run
from tests.harness.mock_engine import SECRET_PREFIX, ProgramRun, Registered, stack_platform
from tests.harness.mock_engine import stack_config as raw_stack_config

STACK = "k8s-dev"
K8S = "kubernetes:"
WORKLOAD_KINDS = ("apps/v1:StatefulSet", "apps/v1:DaemonSet", "apps/v1:Deployment")
WORKLOADS = {"user-service", "payment-api", "inventory-service"}
# The node-level pods, in the one privileged namespace (components/kubernetes/spire_agents.py).
NODE_LEVEL = {"spire-agent": "spire-system", "spiffe-csi-driver": "spire-system",
              # k8s-enterprise-nested: the upstream server's agents in the downstream cluster.
              "spire-upstream-agent": "spire-system", "spiffe-upstream-csi-driver": "spire-system",
              "promtail": "observability"}  # kubernetes.iam.observability: reads the node's pod logs
SPIRE_NAMESPACES = ("spire-server/", "spire-system/", "production/")


@pytest.fixture(params=MODES)
def run(request: pytest.FixtureRequest) -> ProgramRun:
    return program_run(STACK, request.param)


def objects(r: ProgramRun, kind: str) -> list[Registered]:
    return [x for x in r.resources if x.type.startswith(K8S) and x.type.endswith(kind)]


def by_name(r: ProgramRun, kind: str) -> dict[str, dict[str, Any]]:
    """`namespace/name` (or name) -> unwrapped inputs of every object of `kind`."""
    out = {}
    for x in objects(r, kind):
        meta = x.inputs["metadata"]
        key = f"{meta['namespace']}/{meta['name']}" if "namespace" in meta else meta["name"]
        out[key] = unwrap(x.inputs)
    return out


def pod_specs(r: ProgramRun) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(namespace, app name, pod spec) of every workload object."""
    for kind in WORKLOAD_KINDS:
        for x in objects(r, kind):
            inputs = unwrap(x.inputs)
            yield inputs["metadata"]["namespace"], inputs["metadata"]["name"], inputs["spec"]["template"]["spec"]


def test_the_design_namespaces_with_their_pod_security_levels(run: ProgramRun) -> None:
    namespaces = by_name(run, "core/v1:Namespace")
    levels = {n: ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] for n, ns in namespaces.items()}
    assert levels == {"spire-server": "restricted", "spire-system": "privileged", "production": "restricted",
                      # kubernetes.iam (tests/components/test_kubernetes_iam.py)
                      "iam-system": "restricted", "cnpg-system": "restricted",
                      # privileged for Promtail's host log directory alone
                      "observability": "privileged",
                      # kubernetes.ziti (tests/components/test_kubernetes_ziti.py)
                      "ziti": "restricted"}
    for ns in namespaces.values():
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/warn"] == "restricted"


def test_objects_go_through_the_clusters_provider(run: ProgramRun) -> None:
    providers = [x for x in run.resources if x.type == "pulumi:providers:kubernetes"]
    assert [p.name for p in providers] == ["k8s-dev"]
    assert providers[0].inputs["context"] == "kind-identity-platform"
    for x in run.resources:
        if x.type.startswith(K8S):
            assert x.provider.startswith(providers[0].urn), x.name


def test_every_pod_spec_is_restricted_but_the_node_level_parts(run: ProgramRun) -> None:
    seen = set()
    for ns, app, spec in pod_specs(run):
        seen.add(app)
        containers = spec["containers"] + spec.get("initContainers", [])
        for c in containers:
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"]), (app, c)
            assert pin_problem(c["image"]) is None, c["image"]
            ctx = c["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, (app, c["name"])
        if app in NODE_LEVEL:
            assert ns == NODE_LEVEL[app]
            continue
        pod_ctx = spec["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True and pod_ctx["runAsUser"] > 0, app
        assert pod_ctx["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not spec.get("hostPID") and not spec.get("hostNetwork") and not spec.get("hostIPC"), app
        assert not any("hostPath" in v for v in spec.get("volumes", [])), app
        for c in containers:
            ctx = c["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False and ctx["privileged"] is False, (app, c["name"])
            assert ctx["capabilities"] == {"drop": ["ALL"]}, (app, c["name"])
            assert ctx["runAsNonRoot"] is True
    assert seen == {"spire-server", "spire-db", "spire-agent", "spiffe-csi-driver", "keycloak", "loki", "prometheus",
                    "grafana", "promtail", "ziti-controller", "ziti-router",
                    "cnpg-controller-manager"} | WORKLOADS  # the CNPG operator's release, same rules


def test_the_agent_exceptions_are_exactly_what_it_needs(run: ProgramRun) -> None:
    specs = {app: spec for _, app, spec in pod_specs(run)}
    agent = specs["spire-agent"]
    assert agent["hostPID"] is True  # the k8s attestor resolves callers' PIDs through the host's /proc
    assert not agent.get("hostNetwork")  # the kubelet is reached by node name instead
    (container,) = agent["containers"]
    ctx = container["securityContext"]
    assert ctx["capabilities"] == {"drop": ["ALL"]} and ctx["allowPrivilegeEscalation"] is False
    assert ctx["privileged"] is False
    host_paths = [v["hostPath"]["path"] for v in agent["volumes"] if "hostPath" in v]
    assert host_paths == [spire_config.AGENT_SOCKET_DIR] == ["/run/spire/sockets"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MY_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    token = next(v for v in agent["volumes"] if v["name"] == "token")
    (source,) = token["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "spire-server"
    csi = specs["spiffe-csi-driver"]
    assert [c["securityContext"].get("privileged") for c in csi["containers"]] == [True, False]


def test_workloads_reach_the_agent_through_the_csi_driver(run: ProgramRun) -> None:
    specs = {app: spec for _, app, spec in pod_specs(run)}
    for w in WORKLOADS:
        spec = specs[w]
        assert spec["serviceAccountName"] == w and spec["automountServiceAccountToken"] is False
        csi = [v["csi"] for v in spec["volumes"] if "csi" in v]
        assert csi == [{"driver": CSI_DRIVER, "readOnly": True}]
    drivers = by_name(run, "storage.k8s.io/v1:CSIDriver")
    assert drivers[CSI_DRIVER]["spec"]["volumeLifecycleModes"] == ["Ephemeral"]


def cnpg_release_rules() -> list[dict[str, Any]]:
    """The `cnpg-manager` ClusterRole's rules in the committed CNPG release manifest."""
    path = Path(__file__).resolve().parents[2] / "components" / "kubernetes" / "generated" / "cnpg-operator.yaml"
    (role,) = [d for d in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader)
               if d and d["kind"] == "ClusterRole" and d["metadata"]["name"] == "cnpg-manager"]
    return list(role["rules"])


def test_rbac_is_least_privilege(run: ProgramRun) -> None:
    roles = by_name(run, "rbac.authorization.k8s.io/v1:ClusterRole")
    rules = {n: r["rules"] for n, r in roles.items()}
    assert rules == {
        "identity-platform-spire-server": [
            {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get"]},
        ],
        "identity-platform-spire-agent": [{"apiGroups": [""], "resources": ["nodes/pods"], "verbs": ["get"]}],
        # kubernetes.iam.observability: Promtail's discovery of the pods whose logs it reads.
        "identity-platform-promtail": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
        # kubernetes.iam: the CNPG operator's own role, as its release (the committed manifest) has it.
        "cnpg-manager": cnpg_release_rules(),
    }
    for role in rules.values():
        for rule in role:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
    bindings = by_name(run, "rbac.authorization.k8s.io/v1:ClusterRoleBinding")
    subjects = {n: b["subjects"] for n, b in bindings.items()}
    assert subjects == {
        "identity-platform-spire-server": [{"kind": "ServiceAccount", "name": "spire-server",
                                           "namespace": "spire-server"}],
        "identity-platform-spire-agent": [{"kind": "ServiceAccount", "name": "spire-agent",
                                          "namespace": "spire-system"}],
        "identity-platform-promtail": [{"kind": "ServiceAccount", "name": "promtail", "namespace": "observability"}],
        "cnpg-manager-rolebinding": [{"kind": "ServiceAccount", "name": "cnpg-manager", "namespace": "cnpg-system"}],
    }
    assert not objects(run, "rbac.authorization.k8s.io/v1:Role")  # nothing namespaced beyond these


def test_network_policies_deny_by_default_and_allow_the_required_flows(run: ProgramRun) -> None:
    policies = by_name(run, "networking.k8s.io/v1:NetworkPolicy")
    for ns in ("spire-server", "spire-system", "production"):
        deny = policies[f"{ns}/default-deny"]["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    server = policies["spire-server/spire-server"]["spec"]
    assert server["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "spire-server"}}
    (ingress,) = server["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 8081}]
    assert ingress["from"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "spire-system"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "spire-agent"}},
    }]
    egress_ports = sorted(p["port"] for rule in server["egress"] for p in rule["ports"])
    assert egress_ports == [53, 53, 443, 5432, 6443]
    db = policies["spire-server/spire-db"]["spec"]
    assert db["policyTypes"] == ["Ingress"]
    assert db["ingress"] == [{"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "spire-server"}}}],
                              "ports": [{"protocol": "TCP", "port": 5432}]}]
    agent = policies["spire-system/spire-agent"]["spec"]
    assert agent["policyTypes"] == ["Egress"]
    assert sorted(p["port"] for rule in agent["egress"] for p in rule["ports"]) == [53, 53, 8081, 10250]
    # spire-server-metrics: kubernetes.iam.observability's Prometheus (test_kubernetes_iam.py)
    spire_policies = {p for p in policies if p.startswith(SPIRE_NAMESPACES)} - {"spire-server/spire-server-metrics"}
    assert spire_policies == {"spire-server/default-deny", "spire-system/default-deny", "production/default-deny",
                             "spire-server/spire-server", "spire-server/spire-db", "spire-system/spire-agent"}


def test_the_server_is_a_statefulset_on_postgres_with_a_disruption_budget(run: ProgramRun) -> None:
    sets = by_name(run, "apps/v1:StatefulSet")
    server = sets["spire-server/spire-server"]["spec"]
    assert server["replicas"] >= 2
    assert [c["metadata"]["name"] for c in server["volumeClaimTemplates"]] == ["data"]
    assert "spire-server/spire-db" in sets
    pdbs = by_name(run, "policy/v1:PodDisruptionBudget")
    assert pdbs["spire-server/spire-server"]["spec"] == {
        "minAvailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "spire-server"}},
    }
    conf = by_name(run, "core/v1:ConfigMap")["spire-server/spire-server"]["data"]["server.conf"]
    config = stack_config.parse_stack_values(*raw_stack_config(STACK))
    assert conf == spire_config.build_server_conf(config.spire, "dev").render()
    doc = json.loads(conf)
    assert doc["server"]["trust_domain"] == "k8s-dev.zt.internal"
    (datastore,) = doc["plugins"]["DataStore"]
    assert datastore["sql"]["plugin_data"]["database_type"] == "postgres"
    assert "password" not in conf.replace("passfile", "")
    (psat,) = doc["plugins"]["NodeAttestor"]
    assert psat == {"k8s_psat": {"plugin_data": {"clusters": {
        "dev": {"service_account_allow_list": ["spire-system:spire-agent"]},
    }}}}


def test_the_agents_config(run: ProgramRun) -> None:
    conf = by_name(run, "core/v1:ConfigMap")["spire-system/spire-agent"]["data"]["agent.conf"]
    config = stack_config.parse_stack_values(*raw_stack_config(STACK))
    assert config.kubernetes is not None
    assert conf == spire_config.build_agent_conf(config.spire.trust_domain, config.kubernetes, "dev").render()
    doc = json.loads(conf)
    assert doc["agent"]["socket_path"] == "/run/spire/sockets/agent.sock"
    assert doc["agent"]["server_address"] == "spire-server.spire-server.svc"
    assert doc["agent"]["trust_domain"] == "k8s-dev.zt.internal"
    assert [next(iter(p)) for p in doc["plugins"]["NodeAttestor"]] == ["k8s_psat"]
    assert doc["plugins"]["NodeAttestor"][0]["k8s_psat"]["plugin_data"]["cluster"] == "dev"
    assert [next(iter(p)) for p in doc["plugins"]["WorkloadAttestor"]] == ["k8s"]


def test_entries_register_the_workloads_under_the_clusters_agents(run: ProgramRun) -> None:
    entries = {e.name: e.inputs for e in run.resources if e.type == "pulumi-python:dynamic/spire:Entry"}
    td = "k8s-dev.zt.internal"
    alias = entries.pop("spire-dev-node-alias")
    assert alias["spiffe_id"] == f"spiffe://{td}/k8s/dev/agents"
    assert alias["parent_id"] == f"spiffe://{td}/spire/server"
    assert sorted(alias["selectors"]) == [
        "k8s_psat:agent_ns:spire-system", "k8s_psat:agent_sa:spire-agent", "k8s_psat:cluster:dev",
    ]
    assert {n.removeprefix("spire-entries-entry-") for n in entries} == WORKLOADS
    for name, e in entries.items():
        w = name.removeprefix("spire-entries-entry-")
        assert e["parent_id"] == alias["spiffe_id"]
        assert e["spiffe_id"] == f"spiffe://{td}/ns/production/sa/{w}"
        assert sorted(e["selectors"]) == ["k8s:ns:production", f"k8s:sa:{w}"]
        conn = unwrap(e["connection"])
        assert (conn["transport"], conn["namespace"], conn["pod"]) == ("kubectl-exec", "spire-server",
                                                                      "spire-server-0")
        assert conn["context"] == "kind-identity-platform"


def test_secrets_live_only_in_secrets(run: ProgramRun) -> None:
    """The root key and the database password are Secrets' (secret) data, nowhere else."""
    secrets = objects(run, "core/v1:Secret")
    assert {s.inputs["metadata"]["name"] for s in secrets} == {
        "spire-server-upstream-ca", "spire-server-pgpass", "spire-db-password",
        "keycloak-db-credentials", "keycloak-admin", "grafana-admin",  # kubernetes.iam
        "ziti-controller-admin", "ziti-controller-pki-root", "ziti-router-enrollment",  # kubernetes.ziti
    }
    for s in secrets:
        assert is_secret(s.inputs["stringData"]) or all(is_secret(v) for v in s.inputs["stringData"].values())
    # The mock engine's generated keys and passwords carry SECRET_PREFIX (unknown in preview).
    for x in run.resources:
        # (A CRD's schema is documentation: CNPG's mentions "PRIVATE KEY" in its descriptions.)
        if x.type.startswith(K8S) and not x.type.endswith(("core/v1:Secret", "v1:CustomResourceDefinition")):
            for text in walk_strings(x.inputs):
                assert SECRET_PREFIX not in text and "PRIVATE KEY" not in text, x.name
    for _, _, spec in pod_specs(run):
        for c in spec["containers"]:
            for env in c.get("env", []):
                # A file, or a reference to a Secret's key: never a literal value.
                assert "PASSWORD" not in env["name"] or env["name"].endswith("_FILE") or (
                    set(env) == {"name", "valueFrom"} and set(env["valueFrom"]) == {"secretKeyRef"}), env


def test_the_stack_exports_the_spire_side() -> None:
    r = program_run(STACK, False)
    values = {k: e.value for k, e in r.exports.items()}
    assert values["platform"] == "kubernetes" and values["kubernetesTopology"] == "basic"
    assert values["kubernetesClusters"] == ["dev"]
    assert values["spireServerAddress"] == "spire-server.spire-server.svc:8081"
    assert set(values["spireEntryIds"]) == WORKLOADS


def _config(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "environment": "dev", "platform": "kubernetes",
        "spire": {"trustDomain": "k8s.acme.net"},
        "kubernetes": {"clusters": {"dev": {"context": "kind-dev"}}},
    }
    raw.update(changes)
    return raw


class TestConfigRefusesWhatKubernetesCannotTake:
    def test_the_stack_file_parses(self) -> None:
        config = stack_config.parse_stack_values(*raw_stack_config(STACK))
        assert config.kubernetes is not None and config.kubernetes.topology == "basic"

    def test_every_problem_at_once(self) -> None:
        raw = _config(
            kubernetes={"topology": "basic", "clusters": {"a": {}, "b": {}}, "skipKubeletVerification": True},
            nodes={"n": {"dockerHost": "unix:///var/run/docker.sock"}},
            keycloak={"hostname": "auth.acme.net"},
            workloads={"w": {"spiffePath": "/w", "node": "a", "selectors": ["docker:label:a:b"]}},
            strict=True,
        )
        with pytest.raises(ConfigError) as e:
            stack_config.parse(raw)
        text = str(e.value)
        for key in ("kubernetes.clusters", "nodes", "keycloak", "workloads.w.selectors",
                    "kubernetes.skipKubeletVerification"):
            assert f"identity-platform:{key}:" in text, (key, text)

    def test_a_kubeconfig_must_be_a_path_not_its_contents(self) -> None:
        with pytest.raises(ConfigError, match=r"kubernetes.clusters.dev.kubeconfig: .*not its contents"):
            stack_config.parse(
                _config(kubernetes={"clusters": {"dev": {"kubeconfig": "apiVersion: v1\nkind: Config"}}})
            )

    def test_strict_mode_refuses_a_placeholder_trust_domain_and_a_floating_image(self) -> None:
        with pytest.raises(ConfigError) as e:
            stack_config.parse(_config(strict=True, spire={"trustDomain": "example.org"},
                                       images={"spireAgent": "ghcr.io/spiffe/spire-agent:latest"}))
        assert "identity-platform:spire.trustDomain:" in str(e.value)
        assert "identity-platform:images.spireAgent:" in str(e.value)

    def test_workloads_need_one_namespace_and_one_service_account(self) -> None:
        raw = _config(workloads={"w": {"spiffePath": "/w", "node": "dev", "selectors": ["k8s:ns:production"]}})
        with pytest.raises(ConfigError, match=r"workloads.w.selectors: needs exactly one k8s:ns and one k8s:sa"):
            stack_config.parse(raw)


CRD_FREE = "k8s-crd-free"


@pytest.fixture(params=MODES)
def crd_free(request: pytest.FixtureRequest) -> ProgramRun:
    return program_run(CRD_FREE, request.param)


class TestCrdFree:
    """Agents only, against the server in kubernetes.externalServer; entries through spire.transport."""

    def test_only_agents_run_in_the_cluster(self, crd_free: ProgramRun) -> None:
        assert sorted(by_name(crd_free, "core/v1:Namespace")) == ["production", "spire-system"]
        assert sorted(app for _, app, _ in pod_specs(crd_free)) == ["spiffe-csi-driver", "spire-agent"]
        assert not objects(crd_free, "core/v1:Secret") and not objects(crd_free, "apps/v1:StatefulSet")
        assert not [x for x in crd_free.resources if "CustomResourceDefinition" in x.type]

    def test_the_agents_attest_to_the_external_server_and_trust_its_bundle(self, crd_free: ProgramRun) -> None:
        config = stack_config.parse_stack_values(*raw_stack_config(CRD_FREE))
        assert config.kubernetes is not None and config.kubernetes.external_server is not None
        server = config.kubernetes.external_server
        maps = by_name(crd_free, "core/v1:ConfigMap")
        agent = json.loads(maps["spire-system/spire-agent"]["data"]["agent.conf"])
        assert (agent["agent"]["server_address"], agent["agent"]["server_port"]) == (server.address, str(server.port))
        assert maps["spire-system/spire-bundle"]["data"]["bundle.pem"] == server.trust_bundle
        assert "skip_kubelet_verification" not in json.dumps(agent)  # strict: the kubelets are verified
        policy = by_name(crd_free, "networking.k8s.io/v1:NetworkPolicy")["spire-system/spire-agent"]["spec"]
        assert {"ports": [{"protocol": "TCP", "port": server.port}]} in policy["egress"]

    def test_the_external_server_gets_a_reviewer_identity_and_nothing_that_writes(self, crd_free: ProgramRun) -> None:
        roles = by_name(crd_free, "rbac.authorization.k8s.io/v1:ClusterRole")
        assert roles["identity-platform-spire-server"]["rules"] == [
            {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get"]},
        ]
        bindings = by_name(crd_free, "rbac.authorization.k8s.io/v1:ClusterRoleBinding")
        assert bindings["identity-platform-spire-server"]["subjects"] == [
            {"kind": "ServiceAccount", "name": "spire-server", "namespace": "spire-system"},
        ]

    def test_entries_go_to_the_external_server_through_the_transport(self, crd_free: ProgramRun) -> None:
        entries = {e.name: e.inputs for e in crd_free.resources if e.type == "pulumi-python:dynamic/spire:Entry"}
        td = "regulated.acme-identity.net"
        alias = entries.pop("agents-regulated-node-alias")
        assert alias["spiffe_id"] == f"spiffe://{td}/k8s/regulated/agents"
        (ledger,) = entries.values()
        assert ledger["parent_id"] == alias["spiffe_id"]
        for e in (alias, ledger):
            conn = unwrap(e["connection"])
            assert (conn["transport"], conn["socket_path"]) == ("grpc", "/run/user/1000/spire-admin.sock")

    def test_config_refuses_what_crd_free_cannot_take(self) -> None:
        raw = _config(
            kubernetes={"topology": "crd-free", "clusters": {"dev": {}}},
            spire={"trustDomain": "k8s.acme.net", "datastore": "postgres"},
        )
        with pytest.raises(ConfigError) as e:
            stack_config.parse(raw)
        text = str(e.value)
        assert "identity-platform:kubernetes.externalServer: required with the crd-free topology" in text
        assert "identity-platform:spire.datastore: not used with the crd-free topology" in text
        assert "identity-platform:spire.transport.dockerHost: required for docker-exec with the crd-free" in text

    def test_basic_refuses_an_external_server(self) -> None:
        bundle = stack_config.parse_stack_values(*raw_stack_config(CRD_FREE)).kubernetes.external_server.trust_bundle
        raw = _config(kubernetes={"clusters": {"dev": {}}, "externalServer": {"address": "spire.acme.net",
                                                                              "trustBundle": bundle}})
        with pytest.raises(ConfigError, match=r"kubernetes.externalServer: the basic topology runs its own server"):
            stack_config.parse(raw)


KUBERNETES_STACKS = [s for s in STACKS if stack_platform(s) == "kubernetes"]


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
@pytest.mark.parametrize("preview", [True, False], ids=["preview", "update"])
def test_every_kubernetes_stack_keeps_the_pod_rules(stack: str, preview: bool) -> None:
    """The rules hold for every stack file of the platform, not only k8s-dev's."""
    run = program_run(stack, preview)
    specs = list(pod_specs(run))
    assert specs
    for ns, app, spec in specs:
        for c in spec["containers"]:
            assert pin_problem(c["image"]) is None and set(c["resources"]) == {"requests", "limits"}
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
        if ns == "spire-system" or app in NODE_LEVEL:
            assert NODE_LEVEL[app] == ns
            continue
        assert spec["securityContext"]["runAsNonRoot"] is True and not spec.get("hostPID"), (stack, app)
        for c in spec["containers"]:
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}, (stack, app)


def test_the_prod_stack_is_strict_and_uses_its_storage_class() -> None:
    config = stack_config.parse_stack_values(*raw_stack_config("k8s-prod"))
    assert config.is_strict and config.kubernetes is not None and not config.kubernetes.skip_kubelet_verification
    run = program_run("k8s-prod", False)
    for sts in by_name(run, "apps/v1:StatefulSet").values():
        (claim,) = sts["spec"]["volumeClaimTemplates"]
        assert claim["spec"]["storageClassName"] == "do-block-storage"
    agent = json.loads(by_name(run, "core/v1:ConfigMap")["spire-system/spire-agent"]["data"]["agent.conf"])
    assert "skip_kubelet_verification" not in json.dumps(agent)
