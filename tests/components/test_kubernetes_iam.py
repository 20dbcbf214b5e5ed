"""kubernetes.iam under the mock engine, for `Pulumi.k8s-dev.yaml` and `Pulumi.k8s-prod.yaml`
(preview and update): Keycloak on CloudNativePG in iam-system behind Istio STRICT mTLS.

What the design promises, asserted on the objects the program registers: the STRICT/PERMISSIVE
split (8000 alone PERMISSIVE, on the CNPG instances alone), replica counts per environment,
default-deny network policies and every allowed flow (and nothing else), the security rules of
every pod spec the program writes, credentials from pulumi-random only in Secrets, the operator
outside the mesh, the realm and client waiting for Keycloak, and the config rules of strict mode.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import stack_config
from components.kubernetes import cnpg_operator
from components.kubernetes import iam as iam_mod
from policy.image_ref import pin_problem
from stack_config import ConfigError
from stack_config.kubernetes_iam import REPLICAS
from tests.components._platform import is_secret, unwrap
from tests.conftest import program_run
from tests.harness.kube_api import as_sent
from tests.harness.mock_engine import ProgramRun, Registered

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_MANIFEST = ROOT / "components" / "kubernetes" / "generated" / "cnpg-operator.yaml"

STACKS = {"k8s-dev": "dev", "k8s-prod": "prod"}
PEER_AUTH = "kubernetes:security.istio.io/v1:PeerAuthentication"
AUTHZ = "kubernetes:security.istio.io/v1:AuthorizationPolicy"
GATEWAY = "kubernetes:networking.istio.io/v1:Gateway"
VIRTUAL_SERVICE = "kubernetes:networking.istio.io/v1:VirtualService"
CNPG_CLUSTER = "kubernetes:postgresql.cnpg.io/v1:Cluster"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
IAM_NAMESPACES = ("iam-system", "cnpg-system")
APPLICATION_SET = "kubernetes:argoproj.io/v1alpha1:ApplicationSet"


@pytest.fixture(params=[pytest.param((s, p), id=f"{s}-{'preview' if p else 'update'}")
                        for s in STACKS for p in (True, False)])
def run(request: pytest.FixtureRequest) -> ProgramRun:
    stack, preview = request.param
    return program_run(stack, preview)


def environment(r: ProgramRun) -> str:
    return str(r.exports["environment"].value)


def named(r: ProgramRun, type_: str) -> dict[str, dict[str, Any]]:
    """`namespace/name` -> unwrapped inputs of every object of `type_`."""
    out = {}
    for x in r.of_type(type_):
        meta = x.inputs["metadata"]
        out[f"{meta.get('namespace', '')}/{meta['name']}"] = unwrap(x.inputs)
    return out


def iam_objects(r: ProgramRun, kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in named(r, f"kubernetes:{kind}").items() if k.startswith(IAM_NAMESPACES)}


# --- Istio: mTLS ---------------------------------------------------------------------------------


def test_mtls_is_strict_everywhere_but_the_cnpg_status_port(run: ProgramRun) -> None:
    peer = named(run, PEER_AUTH)
    # kubernetes.ziti: the ziti namespace is in the mesh too (tests/components/test_kubernetes_ziti.py)
    assert set(peer) == {"iam-system/default", "observability/default", "ziti/default", "iam-system/keycloak-db"}
    for ns in ("iam-system", "observability", "ziti"):
        assert peer[f"{ns}/default"]["spec"] == {"mtls": {"mode": "STRICT"}}  # namespace-wide: no selector
    db = peer["iam-system/keycloak-db"]["spec"]
    assert db["selector"] == {"matchLabels": {"app.kubernetes.io/name": "keycloak-db"}}
    assert db["mtls"] == {"mode": "STRICT"}  # so 5432 (and every port not named) stays STRICT
    assert db["portLevelMtls"] == {"8000": {"mode": "PERMISSIVE"}}
    modes = [m["mode"] for p in peer.values()
             for m in [p["spec"]["mtls"], *(p["spec"].get("portLevelMtls") or {}).values()]]
    assert modes.count("PERMISSIVE") == 1


def test_the_cnpg_instances_carry_the_label_the_exception_selects(run: ProgramRun) -> None:
    (cluster,) = named(run, CNPG_CLUSTER).values()
    assert cluster["spec"]["inheritedMetadata"]["labels"]["app.kubernetes.io/name"] == "keycloak-db"
    assert cluster["metadata"]["name"] == "keycloak-db"


def release_manifest() -> dict[tuple[str, str], dict[str, Any]]:
    """The committed CNPG release manifest, read here on its own: (kind, name) -> object."""
    docs = yaml.load_all(OPERATOR_MANIFEST.read_text(), Loader=yaml.CSafeLoader)
    return {(d["kind"], d["metadata"]["name"]): d for d in docs if d}


def operator_objects(r: ProgramRun) -> dict[tuple[str, str], Registered]:
    """What the program registers under the CnpgOperator component: (kind, name) -> resource."""
    out = {}
    for x in r.resources:
        if x.type.startswith("kubernetes:") and any(
                a.type == "identity-platform:kubernetes:CnpgOperator" for a in r.ancestors(x)):
            out[(x.inputs["kind"], x.inputs["metadata"]["name"])] = x
    return out


def test_the_committed_operator_manifest_is_the_pinned_release() -> None:
    text = OPERATOR_MANIFEST.read_text()
    assert text.startswith("# GENERATED by scripts/gen_cnpg_operator.py: do not edit.\n")
    body = text[text.index("apiVersion:"):]
    assert hashlib.sha256(body.encode()).hexdigest() == \
        "0c60c2682eeacf5339d87368a87f4a8ff2e46b70a4f85dc7783cb1bb9cc5b9d7"
    assert subprocess.run([sys.executable, "scripts/gen_cnpg_operator.py", "--check"], cwd=ROOT,
                          check=False).returncode == 0


def test_a_changed_manifest_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = OPERATOR_MANIFEST.read_text()
    edited = tmp_path / "cnpg-operator.yaml"
    edited.write_text(text.replace("--max-concurrent-reconciles=10", "--max-concurrent-reconciles=11"))
    monkeypatch.setattr(cnpg_operator, "MANIFEST", edited)
    cnpg_operator.release_objects.cache_clear()
    try:
        with pytest.raises(cnpg_operator.ManifestError, match=r"has sha256 [0-9a-f]{64}, pinned 0c60c268"):
            cnpg_operator.release_objects()
    finally:
        cnpg_operator.release_objects.cache_clear()


def test_the_operator_is_the_pinned_release_as_typed_resources(run: ProgramRun) -> None:
    """Every object of the release but its Namespace and its six unbound editor/viewer roles is
    registered, each as the release has it (the Deployment's pod aside: the next test)."""
    release = release_manifest()
    made = operator_objects(run)
    unbound = {("ClusterRole", f"cnpg-{kind}-{role}-role") for kind in ("database", "publication", "subscription")
               for role in ("editor", "viewer")}
    assert unbound <= set(release)
    assert set(made) == set(release) - {("Namespace", "cnpg-system")} - unbound
    assert {k for k in made if k[0] == "CustomResourceDefinition"} == {
        ("CustomResourceDefinition", f"{p}.postgresql.cnpg.io") for p in (
            "backups", "clusterimagecatalogs", "clusters", "databases", "failoverquorums", "imagecatalogs",
            "poolers", "publications", "scheduledbackups", "subscriptions")}
    for key, x in made.items():
        sent, published = as_sent(unwrap(x.inputs)), release[key]
        assert sent["apiVersion"] == published["apiVersion"], key
        assert sent["metadata"].get("namespace") == published["metadata"].get("namespace"), key
        assert sent["metadata"]["labels"]["app.kubernetes.io/part-of"] == "identity-platform", key
        body = {k: v for k, v in sent.items() if k not in ("apiVersion", "kind", "metadata")}
        if key[0] != "Deployment":
            assert body == {k: v for k, v in published.items() if k not in ("apiVersion", "kind", "metadata")}, key
    # The operator's own rules, bound to its account alone.
    binding = as_sent(unwrap(made[("ClusterRoleBinding", "cnpg-manager-rolebinding")].inputs))
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "cnpg-manager"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "cnpg-manager", "namespace": "cnpg-system"}]
    # The admission webhooks the operator serves, through its Service, failing closed.
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        (config,) = [as_sent(unwrap(x.inputs)) for k, x in made.items() if k[0] == kind]
        assert {w["name"] for w in config["webhooks"]} >= {f"{kind[0].lower()}cluster.cnpg.io"}
        for w in config["webhooks"]:
            assert w["clientConfig"]["service"] | {"path": ""} == {
                "name": "cnpg-webhook-service", "namespace": "cnpg-system", "path": ""}
            assert w["failurePolicy"] == "Fail" and w["sideEffects"] == "None"


def test_the_operator_runs_without_a_sidecar_outside_the_mesh(run: ProgramRun) -> None:
    made = operator_objects(run)
    deployment = as_sent(unwrap(made[("Deployment", "cnpg-controller-manager")].inputs))
    published = release_manifest()[("Deployment", "cnpg-controller-manager")]
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert template["metadata"]["labels"]["app.kubernetes.io/name"] == "cloudnative-pg"
    assert deployment["spec"]["selector"] == published["spec"]["selector"]
    (container,) = template["spec"]["containers"]
    assert container["image"] == "ghcr.io/cloudnative-pg/cloudnative-pg:1.27.1"
    assert {"name": "OPERATOR_IMAGE_NAME", "value": container["image"]} in container["env"]
    assert container["args"] == published["spec"]["template"]["spec"]["containers"][0]["args"]
    assert template["spec"]["serviceAccountName"] == "cnpg-manager"
    namespaces = named(run, "kubernetes:core/v1:Namespace")
    assert namespaces["/cnpg-system"]["metadata"]["labels"]["istio-injection"] == "disabled"
    assert namespaces["/cnpg-system"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespaces["/iam-system"]["metadata"]["labels"]["istio-injection"] == "enabled"
    # The Cluster waits for the whole operator: CRDs, webhooks and the Deployment pulumi-kubernetes awaits.
    (cluster,) = run.of_type(CNPG_CLUSTER)
    assert {x.urn for x in made.values()} <= set(cluster.dependencies)


# --- Istio: authorization and the way in ----------------------------------------------------------


def test_authorization_denies_all_then_admits_each_services_callers(run: ProgramRun) -> None:
    authz = named(run, AUTHZ)
    assert set(authz) == {"iam-system/deny-all", "iam-system/keycloak", "iam-system/keycloak-db"}
    assert authz["iam-system/deny-all"].get("spec") in ({}, None)
    kc = authz["iam-system/keycloak"]["spec"]
    assert kc["action"] == "ALLOW" and kc["selector"] == {"matchLabels": {"app.kubernetes.io/name": "keycloak"}}
    assert [(r["from"][0]["source"], r["to"][0]["operation"]) for r in kc["rules"]] == [
        ({"principals": ["cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]},
         {"ports": ["8080"]}),
        ({"principals": ["cluster.local/ns/iam-system/sa/keycloak"]}, {"ports": ["7800", "57800"]}),
        # The Ziti controller (kubernetes.ziti) reads the realms' public documents (its signer's JWKS).
        ({"namespaces": ["ziti"]}, {"ports": ["8080"], "methods": ["GET"], "paths": ["/realms/*"]}),
        # Prometheus (observability) reads the metrics, and nothing else of the management port.
        ({"principals": ["cluster.local/ns/observability/sa/prometheus"]},
         {"ports": ["9000"], "methods": ["GET"], "paths": ["/metrics"]}),
    ]
    db = authz["iam-system/keycloak-db"]["spec"]
    assert db["rules"] == [
        {"from": [{"source": {"principals": ["cluster.local/ns/iam-system/sa/keycloak",
                                             "cluster.local/ns/iam-system/sa/keycloak-db"]}}],
         "to": [{"operation": {"ports": ["5432"]}}]},
        # The operator has no sidecar, hence no principal: the port alone, the PERMISSIVE one.
        {"to": [{"operation": {"ports": ["8000"]}}]},
    ]


def test_the_gateway_serves_the_host_name_and_routes_to_keycloak(run: ProgramRun) -> None:
    (gw,) = named(run, GATEWAY).values()
    (vs,) = named(run, VIRTUAL_SERVICE).values()
    host = {"dev": "auth.localhost", "prod": "auth.acme-identity.net"}[environment(run)]
    assert gw["spec"]["selector"] == {"istio": "ingressgateway"}
    servers = {s["port"]["number"]: s for s in gw["spec"]["servers"]}
    assert all(s["hosts"] == [host] for s in servers.values())
    if environment(run) == "prod":
        assert servers[443]["tls"] == {"mode": "SIMPLE", "credentialName": "auth-tls", "minProtocolVersion": "TLSV1_2"}
        assert servers[443]["port"]["protocol"] == "HTTPS" and servers[80]["tls"] == {"httpsRedirect": True}
    else:
        assert set(servers) == {80} and "tls" not in servers[80]
    assert vs["spec"]["hosts"] == [host] and vs["spec"]["gateways"] == ["iam-system/keycloak"]
    (route,) = vs["spec"]["http"]
    assert route["route"] == [{"destination": {"host": "keycloak.iam-system.svc.cluster.local",
                                               "port": {"number": 8080}}}]


# --- sizes ----------------------------------------------------------------------------------------


def test_replica_counts_follow_the_environment(run: ProgramRun) -> None:
    env = environment(run)
    expected = {"dev": (1, 1), "prod": (3, 2)}[env]
    assert (REPLICAS[env].postgres, REPLICAS[env].keycloak) == expected  # type: ignore[index]
    (cluster,) = named(run, CNPG_CLUSTER).values()
    assert cluster["spec"]["instances"] == expected[0]
    assert cluster["spec"]["affinity"]["podAntiAffinityType"] == ("required" if env == "prod" else "preferred")
    deployment = named(run, "kubernetes:apps/v1:Deployment")["iam-system/keycloak"]
    assert deployment["spec"]["replicas"] == expected[1]
    pdb = named(run, "kubernetes:policy/v1:PodDisruptionBudget")["iam-system/keycloak"]["spec"]
    # prod keeps one of two pods through a drain; dev's single pod must not block one.
    assert {k: v for k, v in pdb.items() if k != "selector"} == (
        {"minAvailable": 1} if env == "prod" else {"maxUnavailable": 1})
    assert pdb["selector"] == {"matchLabels": {"app.kubernetes.io/name": "keycloak"}}


# --- Keycloak --------------------------------------------------------------------------------------


def test_keycloak_is_clustered_on_the_cnpg_primary_with_probes_on_9000(run: ProgramRun) -> None:
    spec = named(run, "kubernetes:apps/v1:Deployment")["iam-system/keycloak"]["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["KC_DB_URL"]["value"] == "jdbc:postgresql://keycloak-db-rw.iam-system.svc:5432/keycloak"
    assert env["KC_CACHE"]["value"] == "ispn" and env["KC_CACHE_STACK"]["value"] == "jdbc-ping"
    public = {"dev": "http://auth.localhost", "prod": "https://auth.acme-identity.net"}[environment(run)]
    assert env["KC_HOSTNAME"]["value"] == public and env["KC_PROXY_HEADERS"]["value"] == "xforwarded"
    for probe, path in (("startupProbe", "/health/started"), ("readinessProbe", "/health/ready"),
                        ("livenessProbe", "/health/live")):
        assert c[probe]["httpGet"] == {"path": path, "port": 9000}, probe
    assert c["args"] == ["start", "--optimized"]
    seed, build = spec["initContainers"]
    assert seed["command"] == ["cp", "-a", "/opt/keycloak/lib/quarkus/.", "/seed/"]
    assert seed["volumeMounts"] == [{"name": "quarkus", "mountPath": "/seed"}]
    assert build["args"] == ["build"]
    build_env = {e["name"]: e["value"] for e in build["env"]}
    assert build_env == {k: env[k]["value"] for k in iam_mod.BUILD_ENV}
    # The build's output is what the server starts from, on the same volume.
    quarkus = "/opt/keycloak/lib/quarkus"
    assert {"name": "quarkus", "mountPath": quarkus} in build["volumeMounts"]
    assert {"name": "quarkus", "mountPath": quarkus} in c["volumeMounts"]
    assert spec["serviceAccountName"] == "keycloak" and spec["automountServiceAccountToken"] is False


def test_credentials_are_generated_and_reach_pods_only_as_secret_references(run: ProgramRun) -> None:
    secrets = iam_objects(run, "core/v1:Secret")
    assert set(secrets) == {"iam-system/keycloak-db-credentials", "iam-system/keycloak-admin"}
    raw = {f"{x.inputs['metadata']['namespace']}/{x.inputs['metadata']['name']}": x
           for x in run.of_type("kubernetes:core/v1:Secret")}
    for key in secrets:
        data = raw[key].inputs["stringData"]
        assert is_secret(data) or is_secret(data["password"]), key
    db = secrets["iam-system/keycloak-db-credentials"]
    assert db["type"] == "kubernetes.io/basic-auth"
    if not isinstance(db["stringData"], dict):  # preview: unknown until the passwords exist
        return
    passwords = [x for x in run.of_type("random:index/randomPassword:RandomPassword") if x.name.startswith("iam-")]
    assert sorted(x.name for x in passwords) == ["iam-keycloak-admin-password", "iam-keycloak-db-password",
                                                 "iam-observability-grafana-password"]
    (cluster,) = named(run, CNPG_CLUSTER).values()
    assert cluster["spec"]["bootstrap"]["initdb"] == {"database": "keycloak", "owner": "keycloak",
                                                      "secret": {"name": "keycloak-db-credentials"}}
    assert cluster["spec"]["enableSuperuserAccess"] is False
    spec = named(run, "kubernetes:apps/v1:Deployment")["iam-system/keycloak"]["spec"]["template"]["spec"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in spec["containers"][0]["env"] if "valueFrom" in e}
    assert refs == {
        "KC_DB_USERNAME": {"name": "keycloak-db-credentials", "key": "username"},
        "KC_DB_PASSWORD": {"name": "keycloak-db-credentials", "key": "password"},
        "KC_BOOTSTRAP_ADMIN_PASSWORD": {"name": "keycloak-admin", "key": "password"},
    }


def test_every_iam_pod_spec_follows_the_security_rules(run: ProgramRun) -> None:
    specs = iam_objects(run, "apps/v1:Deployment")
    assert set(specs) == {"iam-system/keycloak", "cnpg-system/cnpg-controller-manager"}
    for key, obj in specs.items():
        spec = obj["spec"]["template"]["spec"]
        pod_ctx = spec["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True and pod_ctx["runAsUser"] > 0, key
        assert pod_ctx["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not spec.get("hostPID") and not spec.get("hostNetwork") and not spec.get("hostIPC")
        # Scratch space, and the operator's webhook certificate (a Secret it writes itself).
        assert all(set(v) in ({"name", "emptyDir"}, {"name", "secret"}) for v in spec["volumes"]), key
        for c in spec["containers"] + spec.get("initContainers", []):
            ctx = c["securityContext"]
            assert ctx["runAsNonRoot"] is True and ctx["readOnlyRootFilesystem"] is True, (key, c["name"])
            assert ctx["allowPrivilegeEscalation"] is False and ctx["privileged"] is False
            assert ctx["capabilities"] == {"drop": ["ALL"]}
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and {"cpu", "memory"} <= set(
                c["resources"]["limits"]), (key, c["name"])
            assert pin_problem(c["image"]) is None, c["image"]
    (cluster,) = named(run, CNPG_CLUSTER).values()
    assert pin_problem(cluster["spec"]["imageName"]) is None
    assert {"cpu", "memory"} <= set(cluster["spec"]["resources"]["limits"])


def test_keycloak_holds_no_token_and_only_the_operator_a_role(run: ProgramRun) -> None:
    accounts = iam_objects(run, "core/v1:ServiceAccount")
    assert set(accounts) == {"iam-system/keycloak", "cnpg-system/cnpg-manager"}
    assert accounts["iam-system/keycloak"]["automountServiceAccountToken"] is False
    bound = [(b["metadata"]["name"], s) for kind in ("RoleBinding", "ClusterRoleBinding")
             for b in named(run, f"kubernetes:rbac.authorization.k8s.io/v1:{kind}").values()
             for s in b["subjects"] if s.get("namespace") in IAM_NAMESPACES]
    assert bound == [("cnpg-manager-rolebinding",
                      {"kind": "ServiceAccount", "name": "cnpg-manager", "namespace": "cnpg-system"})]


# --- network policies -------------------------------------------------------------------------------


def _rules(policy: dict[str, Any], direction: str) -> list[tuple[str, list[int]]]:
    """(peer, ports) of each rule: peers as `ns:<name>/<app>`, `pod:<app>`, or `any`."""
    out = []
    for rule in policy["spec"].get(direction, []):
        peers = rule.get("from" if direction == "ingress" else "to") or [{}]
        for p in peers:
            ns = ((p.get("namespaceSelector") or {}).get("matchLabels") or {}).get("kubernetes.io/metadata.name")
            app = (p.get("podSelector") or {}).get("matchLabels") or {}
            app_name = app.get("app.kubernetes.io/name", ",".join(f"{k}={v}" for k, v in sorted(app.items())))
            label = "any" if not p else (f"ns:{ns}/{app_name}" if ns else f"pod:{app_name}")
            out.append((label, sorted(x["port"] for x in rule["ports"])))
    return out


def test_network_policies_deny_by_default_and_allow_exactly_the_design_flows(run: ProgramRun) -> None:
    policies = {k: v for k, v in named(run, NETPOL).items() if k.startswith(IAM_NAMESPACES)}
    assert set(policies) == {
        "iam-system/default-deny", "iam-system/allow-dns", "iam-system/allow-istiod",
        "iam-system/keycloak", "iam-system/keycloak-db",
        "cnpg-system/default-deny", "cnpg-system/allow-dns", "cnpg-system/cloudnative-pg",
    }
    for ns in IAM_NAMESPACES:
        assert policies[f"{ns}/default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        assert _rules(policies[f"{ns}/allow-dns"], "egress") == [("ns:kube-system/", [53, 53])]
    assert policies["iam-system/allow-istiod"]["spec"]["podSelector"] == {}
    assert _rules(policies["iam-system/allow-istiod"], "egress") == [("ns:istio-system/istiod", [15012])]
    kc = policies["iam-system/keycloak"]
    assert _rules(kc, "ingress") == [("ns:istio-system/istio=ingressgateway", [8080]),
                                     ("pod:keycloak", [7800, 57800]),
                                     ("ns:ziti/", [8080]),  # the Ziti controller's JWKS fetch
                                     ("ns:observability/prometheus", [9000])]
    assert _rules(named(run, NETPOL)["observability/prometheus"], "egress")[0] == ("ns:iam-system/keycloak", [9000])
    assert _rules(kc, "egress") == [("pod:keycloak-db", [5432]), ("pod:keycloak", [7800, 57800])]
    db = policies["iam-system/keycloak-db"]
    assert _rules(db, "ingress") == [("pod:keycloak", [5432]), ("pod:keycloak-db", [5432]),
                                     ("ns:cnpg-system/cloudnative-pg", [8000])]
    assert _rules(db, "egress") == [("pod:keycloak-db", [5432]), ("any", [443, 6443])]
    op = policies["cnpg-system/cloudnative-pg"]
    assert _rules(op, "ingress") == [("any", [9443])]
    assert _rules(op, "egress") == [("ns:iam-system/keycloak-db", [8000]), ("any", [443, 6443])]
    # Each flow has its reverse: what one side may send, the other may receive.
    assert ("pod:keycloak-db", [5432]) in _rules(kc, "egress") and ("pod:keycloak", [5432]) in _rules(db, "ingress")


# --- the trust chain ---------------------------------------------------------------------------------


def test_the_realm_and_client_wait_for_keycloak_and_its_route(run: ProgramRun) -> None:
    deployment = next(x for x in run.of_type("kubernetes:apps/v1:Deployment") if x.name == "iam-keycloak-keycloak")
    vs: Registered = run.of_type(VIRTUAL_SERVICE)[0]
    identity = next(x for x in run.resources if x.name == "keycloak-identity")
    assert deployment.urn in identity.dependencies and vs.urn in identity.dependencies
    realm = next(x for x in run.resources if x.name == "keycloak-identity-realm")
    assert deployment.urn in realm.dependencies
    url = {"dev": "http://auth.localhost", "prod": "https://auth.acme-identity.net"}[environment(run)]
    assert unwrap(realm.inputs["connection"])["url"] == url
    conn = realm.inputs["connection"]
    assert is_secret(conn) or is_secret(conn["password"])


def test_the_stack_exports_keycloak_with_the_admin_password_secret() -> None:
    for stack in STACKS:
        exports = program_run(stack, False).exports
        assert exports["keycloakAdminPassword"].secret
        assert exports["keycloakUrl"].value in ("http://auth.localhost", "https://auth.acme-identity.net")
        assert "keycloakIssuerUrl" in exports and "keycloakJwksUrl" in exports


# --- configuration -------------------------------------------------------------------------------------


def _config(env: str = "dev", **iam: Any) -> dict[str, Any]:
    return {
        "environment": env, "platform": "kubernetes",
        "spire": {"trustDomain": "k8s.acme-identity.net"},
        # dev: a loopback name (the Gateway serves plain http without tlsCredential, which the Keycloak
        # provider accepts only to a loopback host)
        "kubernetes": {"clusters": {"c1": {"context": "c1"}},
                       "iam": {"hostname": "auth.localhost" if env == "dev" else "auth.acme-identity.net", **iam}},
    }


def test_strict_mode_refuses_what_only_a_laptop_gets_away_with() -> None:
    with pytest.raises(ConfigError) as e:
        stack_config.parse(_config("prod", hostname="auth.example.com", adminUrl="http://10.0.0.5"))
    text = str(e.value)
    assert "identity-platform:kubernetes.iam.hostname: 'auth.example.com' is a placeholder" in text
    assert "identity-platform:kubernetes.iam.tlsCredential: the Gateway would serve Keycloak" in text
    assert "identity-platform:kubernetes.iam.adminUrl: 'http://10.0.0.5' is plain http" in text
    ok = stack_config.parse(_config("prod", tlsCredential="auth-tls"))
    assert ok.kubernetes is not None and ok.kubernetes.iam is not None


def test_keycloak_section_takes_only_what_a_deployed_keycloak_uses() -> None:
    raw = _config() | {"keycloak": {"realm": "people", "url": "https://kc.acme.net", "hostname": "kc.acme.net"}}
    with pytest.raises(ConfigError) as e:
        stack_config.parse(raw)
    assert "identity-platform:keycloak.url: not used with platform kubernetes" in str(e.value)
    assert "identity-platform:keycloak.hostname: not used with platform kubernetes" in str(e.value)
    ok = stack_config.parse(_config() | {"keycloak": {"realm": "people"}})
    assert ok.keycloak.realm == "people"


def test_bad_iam_values_are_named() -> None:
    with pytest.raises(ConfigError) as e:
        stack_config.parse(_config(databaseStorage="lots", tlsCredential="Not_A_Name"))
    text = str(e.value)
    assert "kubernetes.iam.databaseStorage" in text and "not a Kubernetes quantity" in text
    assert "kubernetes.iam.tlsCredential" in text


# --- GitOps ---------------------------------------------------------------------------------------------


def test_the_application_set_syncs_in_the_design_waves_with_prune_and_5_retries() -> None:
    """k8s-prod sets kubernetes.iam.gitops; k8s-dev does not (and renders no ApplicationSet)."""
    assert program_run("k8s-dev", False).of_type(APPLICATION_SET) == []
    (appset,) = [unwrap(x.inputs) for x in program_run("k8s-prod", False).of_type(APPLICATION_SET)]
    assert appset["metadata"]["namespace"] == "argocd"
    spec = appset["spec"]
    (generator,) = spec["generators"]
    waves = [(e["name"], int(e["wave"]), e["namespace"]) for e in generator["list"]["elements"]]
    assert waves == [("istio", 0, "istio-system"), ("gateway", 1, "iam-system"), ("cnpg", 2, "cnpg-system"),
                     ("iam", 3, "iam-system"), ("observability", 3, "observability")]
    template = spec["template"]
    assert template["metadata"]["annotations"] == {"argocd.argoproj.io/sync-wave": "{{.wave}}"}
    policy = template["spec"]["syncPolicy"]
    assert policy["automated"] == {"prune": True, "selfHeal": True}
    assert policy["retry"]["limit"] == 5
    assert template["spec"]["source"] == {"repoURL": "https://git.acme-identity.net/platform/iam-deploy",
                                          "targetRevision": "main", "path": "deploy/iam/{{.name}}"}
    assert template["spec"]["destination"] == {"server": "https://kubernetes.default.svc",
                                               "namespace": "{{.namespace}}"}
    # RollingSync would turn the automated sync off in every generated Application (ArgoCD 3.2).
    assert "strategy" not in spec


def test_the_generated_applications_name_the_programs_namespaces() -> None:
    """The waves' namespaces are the ones the Pulumi objects live in: one source of names."""
    from components.kubernetes import gitops

    run = program_run("k8s-prod", False)
    namespaces = {x.inputs["metadata"]["namespace"] for x in run.resources
                  if x.type.startswith("kubernetes:") and "namespace" in (x.inputs.get("metadata") or {})}
    assert {a.namespace for a in gitops.APPS if a.name in ("gateway", "cnpg", "iam")} <= namespaces


# --- observability -----------------------------------------------------------------------------------------


def test_observability_pods_are_restricted_but_promtails_log_reading(run: ProgramRun) -> None:
    deployments = {k: v for k, v in named(run, "kubernetes:apps/v1:Deployment").items()
                   if k.startswith("observability/")}
    assert set(deployments) == {"observability/loki", "observability/prometheus", "observability/grafana"}
    for key, obj in deployments.items():
        spec = obj["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] > 0, key
        assert all("hostPath" not in v for v in spec["volumes"]), key
        for c in spec["containers"]:
            ctx = c["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True and ctx["capabilities"] == {"drop": ["ALL"]}, key
            assert ctx["allowPrivilegeEscalation"] is False and pin_problem(c["image"]) is None
            assert {"cpu", "memory"} <= set(c["resources"]["limits"])
    (promtail,) = named(run, "kubernetes:apps/v1:DaemonSet")["observability/promtail"]["spec"]["template"]["spec"][
        "containers"]
    ctx = promtail["securityContext"]
    # uid 0 to read the kubelet's root-owned 0640 log files, and not one capability more.
    assert ctx["runAsUser"] == 0 and ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
    assert ctx["privileged"] is False
    spec = named(run, "kubernetes:apps/v1:DaemonSet")["observability/promtail"]["spec"]["template"]["spec"]
    host = [v["hostPath"] for v in spec["volumes"] if "hostPath" in v]
    assert host == [{"path": "/var/log/pods", "type": "Directory"}]
    assert {"name": "logs", "mountPath": "/var/log/pods", "readOnly": True} in promtail["volumeMounts"]


def test_grafana_has_loki_provisioned_and_prometheus_scrapes_keycloak_and_spire(run: ProgramRun) -> None:
    maps = named(run, "kubernetes:core/v1:ConfigMap")
    sources = yaml.safe_load(maps["observability/grafana"]["data"]["datasources.yaml"])["datasources"]
    assert {(d["type"], d["url"]) for d in sources} == {("loki", "http://loki.observability.svc:3100"),
                                                        ("prometheus", "http://prometheus.observability.svc:9090")}
    assert [d["name"] for d in sources if d.get("isDefault")] == ["Loki"]
    jobs = yaml.safe_load(maps["observability/prometheus"]["data"]["prometheus.yaml"])["scrape_configs"]
    assert {j["job_name"]: (j["metrics_path"], j["dns_sd_configs"][0]) for j in jobs} == {
        "keycloak": ("/metrics", {"names": ["keycloak-pods.iam-system.svc.cluster.local"], "type": "A", "port": 9000}),
        "spire-server": ("/metrics", {"names": ["spire-server-pods.spire-server.svc.cluster.local"], "type": "A",
                                      "port": 9988}),
    }
    headless = named(run, "kubernetes:core/v1:Service")["iam-system/keycloak-pods"]["spec"]
    assert headless["clusterIp" if "clusterIp" in headless else "clusterIP"] == "None"
    promtail = yaml.safe_load(maps["observability/promtail"]["data"]["promtail.yaml"])
    assert promtail["clients"] == [{"url": "http://loki.observability.svc:3100/loki/api/v1/push"}]


def test_observability_policies_allow_exactly_its_flows(run: ProgramRun) -> None:
    policies = {k: v for k, v in named(run, NETPOL).items()
                if k.startswith("observability/") or k == "spire-server/spire-server-metrics"}
    assert set(policies) == {"observability/default-deny", "observability/allow-dns", "observability/allow-istiod",
                             "observability/loki", "observability/promtail", "observability/grafana",
                             "observability/prometheus", "spire-server/spire-server-metrics"}
    assert _rules(policies["observability/loki"], "ingress") == [("pod:promtail", [3100]), ("pod:grafana", [3100])]
    assert _rules(policies["observability/promtail"], "egress") == [("pod:loki", [3100]), ("any", [443, 6443])]
    assert _rules(policies["observability/grafana"], "egress") == [("pod:loki", [3100]), ("pod:prometheus", [9090])]
    assert _rules(policies["observability/prometheus"], "egress") == [("ns:iam-system/keycloak", [9000]),
                                                                       ("ns:spire-server/spire-server", [9988])]
    assert _rules(policies["spire-server/spire-server-metrics"], "ingress") == [
        ("ns:observability/prometheus", [9988])]


def test_iam_runs_only_in_the_basic_topologys_cluster() -> None:
    raw = _config()
    raw["kubernetes"] = {**raw["kubernetes"], "topology": "crd-free"}
    with pytest.raises(ConfigError) as e:
        stack_config.parse(raw)
    assert "identity-platform:kubernetes.iam: built for the basic topology's cluster" in str(e.value)


class TestInClusterClientsOfKeycloak:
    """`http_clients` (for the Ziti controller's JWKS fetch through the cluster's service names):
    a namespace named there reaches Keycloak's HTTP port, and only the realms' public documents."""

    @staticmethod
    def _args() -> tuple[iam_mod.KeycloakOnCnpgArgs, Any]:
        from components.kubernetes.mesh import IamMeshArgs

        kc = iam_mod.KeycloakOnCnpgArgs(
            replicas=REPLICAS["dev"], public_url="https://auth.acme-identity.net", admin_user="admin",
            keycloak_image="quay.io/keycloak/keycloak:26.7.0", postgres_image="ghcr.io/cloudnative-pg/postgresql:18.0",
            database_storage="1Gi", storage_class=None, gateway_namespace="istio-system",
            gateway_selector={"istio": "ingressgateway"}, prod=False, http_clients=("ziti",),
        )
        mesh = IamMeshArgs(hostname="auth.acme-identity.net", tls_credential="auth-tls",
                           gateway_namespace="istio-system", gateway_selector={"istio": "ingressgateway"},
                           gateway_service_account="gw", mesh_namespaces=("iam-system",), http_clients=("ziti",))
        return kc, mesh

    def test_the_network_policy_admits_the_namespace_on_8080(self) -> None:
        kc, _ = self._args()
        policy = iam_mod.flows(kc)[("iam-system", "keycloak")]
        assert {"from_": [{"namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": "ziti"}}}],
                "ports": [{"protocol": "TCP", "port": 8080}]} in policy["ingress"]

    def test_the_authorization_policy_admits_only_get_on_the_realms(self) -> None:
        from components.kubernetes.mesh import authorization_policies

        _, mesh = self._args()
        rules = authorization_policies(mesh)[("iam-system", "keycloak")]["rules"]
        assert {"from": [{"source": {"namespaces": ["ziti"]}}],
                "to": [{"operation": {"ports": ["8080"], "methods": ["GET"], "paths": ["/realms/*"]}}]} in rules
