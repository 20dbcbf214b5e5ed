"""kubernetes.ziti under the mock engine, for `Pulumi.k8s-dev.yaml` and `Pulumi.k8s-prod.yaml`
(preview and update): the OpenZiti controller and edge router in the namespace `ziti`, and the
trust chain's Ziti side wired to them.

Asserted on the objects the program registers: the controller runs the Swarm stack's wrapper and
environment with the pinned image, its PKI root and admin password only in Secrets projected at
the Swarm secrets' paths; the router enrolls with the edge-router resource's JWT delivered as a
Secret and reaches the controller under its advertised name; the signer's issuer is the realm's
and its JWKS Keycloak's cluster Service; the CA, identities, signer and policies talk to this
controller and wait for its StatefulSet and Service (not a whole component); every Ziti pod spec
is restricted; the network policies allow exactly the design's flows; Istio leaves Ziti's ports
alone; and the configuration rules of the section.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
import yaml

import stack_config
from components import ziti_router, ziti_stack
from policy.image_ref import pin_problem
from stack_config import ConfigError, ZitiSettings, versions
from tests.components._platform import is_secret, unwrap
from tests.components.test_kubernetes_iam import _rules, named
from tests.conftest import program_run
from tests.harness.mock_engine import ROOT, SECRET_PREFIX, ProgramRun, Registered, mock_cert_pem, run_program

STACKS = {"k8s-dev": "dev", "k8s-prod": "prod"}
ADDRESSES = {"k8s-dev": ("ziti.localhost", "ziti-router.localhost"),
             "k8s-prod": ("ziti.acme-identity.net", "router.acme-identity.net")}
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
ZITI_DYNAMIC = "pulumi-python:dynamic/ziti:"
SECRETS_DIR = "/run/secrets"


@pytest.fixture(params=[pytest.param((s, p), id=f"{s}-{'preview' if p else 'update'}")
                        for s in STACKS for p in (True, False)])
def run(request: pytest.FixtureRequest) -> ProgramRun:
    stack, preview = request.param
    return program_run(stack, preview)


def ziti(r: ProgramRun, kind: str) -> dict[str, dict[str, Any]]:
    """`name` -> unwrapped inputs of every object of `kind` in the namespace `ziti`."""
    return {k.split("/", 1)[1]: v for k, v in named(r, f"kubernetes:{kind}").items() if k.startswith("ziti/")}


def resource(r: ProgramRun, name: str) -> Registered:
    (found,) = [x for x in r.resources if x.name == name]
    return found


def container(r: ProgramRun, app: str) -> dict[str, Any]:
    (c,) = ziti(r, "apps/v1:StatefulSet")[app]["spec"]["template"]["spec"]["containers"]
    return c


def env(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c["env"]}


def projected(spec: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """File name under /run/secrets -> (Secret, key), from the pod's projected `secrets` volume."""
    (vol,) = [v for v in spec["volumes"] if v["name"] == "secrets"]
    return {item["path"]: (src["secret"]["name"], item["key"])
            for src in vol["projected"]["sources"] for item in src["secret"]["items"]}


def stack_ziti(stack: str) -> ZitiSettings:
    """The stack file's `ziti` section, as the Swarm side's env builders take it."""
    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    return ZitiSettings.model_validate(doc["config"]["identity-platform:ziti"])


def cert(name: str) -> str:
    """The mock engine's certificate of the pulumi-tls resource `name`."""
    return mock_cert_pem(name)


# --- what runs ------------------------------------------------------------------------------------


def test_controller_and_router_run_the_pinned_images_with_the_swarm_wrappers(run: ProgramRun) -> None:
    sets = ziti(run, "apps/v1:StatefulSet")
    assert set(sets) == {"ziti-controller", "ziti-router"}
    for app, image, wrapper in (("ziti-controller", "ziti-controller", ziti_stack.CONTROLLER_WRAPPER),
                                ("ziti-router", "ziti-router", ziti_router.ROUTER_WRAPPER)):
        assert sets[app]["spec"]["replicas"] == 1
        c = container(run, app)
        assert c["image"] == f"docker.io/openziti/{image}:1.7.2" and versions.ZITI == "1.7.2"
        assert c["command"] == ["/bin/bash", "-c", wrapper, "entrypoint"] and c["args"] == ["run", "config.yml"]
        # Its home is the claim `data`: the database (controller) or the enrolled identity (router).
        (claim,) = sets[app]["spec"]["volumeClaimTemplates"]
        assert claim["metadata"]["name"] == "data"
        assert {"name": "data", "mountPath": f"/{image}"} in c["volumeMounts"]
        assert sets[app]["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    storage = {"k8s-dev": ("2Gi", "256Mi", None), "k8s-prod": ("5Gi", "256Mi", "do-block-storage")}[run.stack]
    got = [sets[a]["spec"]["volumeClaimTemplates"][0]["spec"] for a in ("ziti-controller", "ziti-router")]
    assert (got[0]["resources"]["requests"]["storage"], got[1]["resources"]["requests"]["storage"],
            got[0].get("storageClassName")) == storage


def test_the_controller_gets_the_swarm_environment_and_files(run: ProgramRun) -> None:
    advertised, _ = ADDRESSES[run.stack]
    c = container(run, "ziti-controller")
    assert env(c) == {**ziti_stack.controller_env(stack_ziti(run.stack)), "HOME": "/tmp"}
    assert env(c)["ZITI_CTRL_ADVERTISED_ADDRESS"] == advertised
    assert env(c)["ZITI_CTRL_ADVERTISED_PORT"] == "1280"
    spec = ziti(run, "apps/v1:StatefulSet")["ziti-controller"]["spec"]["template"]["spec"]
    # The wrapper reads these three files: the Swarm secrets' names, from the two Secrets.
    assert projected(spec) == {
        "ziti-admin-password": ("ziti-controller-admin", "password"),
        "ziti-pki-root.cert": ("ziti-controller-pki-root", "cert"),
        "ziti-pki-root.key": ("ziti-controller-pki-root", "key"),
    }
    for name in projected(spec):
        assert f"{SECRETS_DIR}/{name}" in ziti_stack.CONTROLLER_WRAPPER
    assert {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True} in c["volumeMounts"]


def test_the_pki_root_and_password_are_generated_and_only_in_secrets(run: ProgramRun) -> None:
    secrets = ziti(run, "core/v1:Secret")
    assert set(secrets) == {"ziti-controller-admin", "ziti-controller-pki-root", "ziti-router-enrollment"}
    for s in (x for x in run.of_type("kubernetes:core/v1:Secret") if x.inputs["metadata"]["name"].startswith("ziti")):
        assert is_secret(s.inputs["stringData"]) or all(is_secret(v) for v in s.inputs["stringData"].values())
    root = resource(run, "ziti-pki-root")
    # The controller's own root: its trust domain as URI SAN, not SPIRE's root.
    domain = {"k8s-dev": "ctrl.k8s-dev.zt.internal", "k8s-prod": "ctrl.k8s.acme-identity.net"}[run.stack]
    assert root.inputs["uris"] == [f"spiffe://{domain}"] and root.inputs["isCaCertificate"] is True
    assert resource(run, "ziti-admin-password").type == "random:index/randomPassword:RandomPassword"
    if not run.preview:
        pki = secrets["ziti-controller-pki-root"]["stringData"]
        assert pki["cert"] == cert("ziti-pki-root")
        assert f"{SECRET_PREFIX}tls-key-ziti-pki-root-key" in pki["key"]


def test_the_router_enrolls_with_the_edge_router_jwt_and_dials_the_controller_by_name(run: ProgramRun) -> None:
    advertised, router_advertised = ADDRESSES[run.stack]
    c = container(run, "ziti-router")
    assert env(c) == {**ziti_router.router_env(stack_ziti(run.stack)), "HOME": "/tmp"}
    assert env(c)["ZITI_ENROLL_TOKEN"] == f"{SECRETS_DIR}/{ziti_router.ENROLLMENT_JWT_FILE}"  # a path, not the JWT
    assert env(c)["ZITI_ROUTER_ADVERTISED_ADDRESS"] == router_advertised
    spec = ziti(run, "apps/v1:StatefulSet")["ziti-router"]["spec"]["template"]["spec"]
    assert projected(spec) == {ziti_router.ENROLLMENT_JWT_FILE: ("ziti-router-enrollment", "jwt")}
    secret = next(x for x in run.of_type("kubernetes:core/v1:Secret")
                  if x.inputs["metadata"]["name"] == "ziti-router-enrollment")
    router_entity = resource(run, "ziti-trust-router")
    assert router_entity.urn in secret.dependencies  # the JWT is the entity's output
    assert is_secret(secret.inputs["stringData"]) or is_secret(secret.inputs["stringData"]["jwt"])
    service = resource(run, "ziti-service")
    assert service.urn in resource(run, "ziti-router-statefulset").dependencies
    if not run.preview:
        assert unwrap(secret.inputs["stringData"])["jwt"] == f"{SECRET_PREFIX}router-jwt-ziti-trust-router"
        # The controller Service's cluster IP (the mock API server allocates one in 10.96.0.0/12).
        (alias,) = spec["hostAliases"]
        assert alias["hostnames"] == [advertised]
        assert ipaddress.ip_address(alias["ip"]) in ipaddress.ip_network("10.96.0.0/12")


def test_the_services_expose_the_edge_api_and_the_router_as_configured(run: ProgramRun) -> None:
    services = ziti(run, "core/v1:Service")
    assert set(services) == {"ziti-controller", "ziti-router"}
    ctrl, router = services["ziti-controller"]["spec"], services["ziti-router"]["spec"]
    if run.stack == "k8s-dev":  # kind: NodePorts behind extraPortMappings
        assert ctrl["type"] == router["type"] == "NodePort"
        assert ctrl["ports"] == [{"name": "tls-ctrl", "port": 1280, "targetPort": 1280, "protocol": "TCP",
                                  "nodePort": 31280}]
        assert router["ports"] == [{"name": "tls-edge", "port": 3022, "targetPort": 3022, "protocol": "TCP",
                                    "nodePort": 31022}]
    else:
        assert ctrl["type"] == router["type"] == "LoadBalancer"
        assert [p["port"] for p in ctrl["ports"]] == [1280] and [p["port"] for p in router["ports"]] == [3022]
        assert "nodePort" not in ctrl["ports"][0]
    assert ctrl["selector"] == {"app.kubernetes.io/name": "ziti-controller"}
    assert router["selector"] == {"app.kubernetes.io/name": "ziti-router"}


# --- security -------------------------------------------------------------------------------------


def test_every_ziti_pod_spec_follows_the_security_rules(run: ProgramRun) -> None:
    namespace = named(run, "kubernetes:core/v1:Namespace")["/ziti"]["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"
    for app, obj in ziti(run, "apps/v1:StatefulSet").items():
        spec = obj["spec"]["template"]["spec"]
        pod_ctx = spec["securityContext"]
        assert pod_ctx == {"runAsNonRoot": True, "runAsUser": 2171, "runAsGroup": 2171, "fsGroup": 2171,
                           "seccompProfile": {"type": "RuntimeDefault"}}, app
        assert not spec.get("hostPID") and not spec.get("hostNetwork") and not spec.get("hostIPC")
        assert spec["serviceAccountName"] == app and spec["automountServiceAccountToken"] is False
        for v in spec["volumes"]:
            assert set(v) in ({"name", "emptyDir"}, {"name", "projected"}), (app, v)
        (c,) = spec["containers"]
        assert c["securityContext"] == {"runAsNonRoot": True, "readOnlyRootFilesystem": True,
                                        "allowPrivilegeEscalation": False, "privileged": False,
                                        "capabilities": {"drop": ["ALL"]},
                                        "seccompProfile": {"type": "RuntimeDefault"}}, app
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]  # the only writable path but the claim
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and {"cpu", "memory"} <= set(
            c["resources"]["limits"])
        assert pin_problem(c["image"]) is None
        assert c["startupProbe"]["exec"]["command"] == ["ziti", "agent", "stats"]
        assert c["livenessProbe"]["exec"]["command"] == ["ziti", "agent", "stats"]
        assert "envFrom" not in c and not any("PWD" in e["name"] and "value" in e for e in c["env"])


def test_service_accounts_hold_no_token_and_no_role(run: ProgramRun) -> None:
    accounts = ziti(run, "core/v1:ServiceAccount")
    assert set(accounts) == {"ziti-controller", "ziti-router"}
    assert all(a["automountServiceAccountToken"] is False for a in accounts.values())
    for kind in ("rbac.authorization.k8s.io/v1:RoleBinding", "rbac.authorization.k8s.io/v1:ClusterRoleBinding"):
        for binding in named(run, f"kubernetes:{kind}").values():
            assert all(s.get("namespace") != "ziti" for s in binding["subjects"]), binding


def test_each_pod_has_a_disruption_budget_that_lets_a_drain_move_it(run: ProgramRun) -> None:
    budgets = ziti(run, "policy/v1:PodDisruptionBudget")
    assert {k: v["spec"] for k, v in budgets.items()} == {
        app: {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": app}}}
        for app in ("ziti-controller", "ziti-router")
    }


def test_network_policies_deny_by_default_and_allow_exactly_the_ziti_flows(run: ProgramRun) -> None:
    policies = ziti(run, "networking.k8s.io/v1:NetworkPolicy")
    assert set(policies) == {"default-deny", "allow-dns", "allow-istiod", "ziti-controller", "ziti-router"}
    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert _rules(policies["allow-dns"], "egress") == [("ns:kube-system/", [53, 53])]
    # Only the controller has a sidecar, so only it talks to istiod.
    assert policies["allow-istiod"]["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name":
                                                                              "ziti-controller"}}
    assert _rules(policies["allow-istiod"], "egress") == [("ns:istio-system/istiod", [15012])]
    ctrl, router = policies["ziti-controller"], policies["ziti-router"]
    assert _rules(ctrl, "ingress") == [("any", [1280])]  # clients, the router and the program: Ziti's own TLS
    assert _rules(ctrl, "egress") == [("ns:iam-system/keycloak", [8080])]  # the realm's JWKS
    assert _rules(router, "ingress") == [("any", [3022])]
    assert _rules(router, "egress") == [("pod:ziti-controller", [1280])]
    # The reverse of the JWKS flow: Keycloak admits the namespace on 8080 (and Istio on GET /realms/* only).
    keycloak = named(run, NETPOL)["iam-system/keycloak"]
    assert ("ns:ziti/", [8080]) in _rules(keycloak, "ingress")


def test_istio_leaves_zitis_own_tls_alone(run: ProgramRun) -> None:
    labels = named(run, "kubernetes:core/v1:Namespace")["/ziti"]["metadata"]["labels"]
    assert labels["istio-injection"] == "enabled"  # the controller's sidecar reaches Keycloak (STRICT)
    sets = ziti(run, "apps/v1:StatefulSet")
    ctrl_annotations = sets["ziti-controller"]["spec"]["template"]["metadata"]["annotations"]
    assert ctrl_annotations["traffic.sidecar.istio.io/excludeInboundPorts"] == "1280"
    router_annotations = sets["ziti-router"]["spec"]["template"]["metadata"]["annotations"]
    assert router_annotations == {"sidecar.istio.io/inject": "false"}
    peer = named(run, "kubernetes:security.istio.io/v1:PeerAuthentication")["ziti/default"]["spec"]
    assert peer == {"mtls": {"mode": "STRICT"}}
    authz = named(run, "kubernetes:security.istio.io/v1:AuthorizationPolicy")["iam-system/keycloak"]["spec"]
    assert {"from": [{"source": {"namespaces": ["ziti"]}}],
            "to": [{"operation": {"ports": ["8080"], "methods": ["GET"], "paths": ["/realms/*"]}}]} in authz["rules"]


# --- the trust chain against this controller ------------------------------------------------------


def test_the_signer_takes_the_realms_issuer_and_its_jwks_through_the_cluster_service(run: ProgramRun) -> None:
    signer = resource(run, "ziti-trust-keycloak-signer")
    assert unwrap(signer.inputs["jwks_endpoint"]) == (
        "http://keycloak.iam-system.svc:8080/realms/platform/protocol/openid-connect/certs")
    realm = resource(run, "keycloak-identity-realm")
    assert realm.urn in signer.dependencies
    if not run.preview:  # the realm's own issuer (its discovery document's), which every token carries
        public = {"k8s-dev": "http://auth.localhost", "k8s-prod": "https://auth.acme-identity.net"}[run.stack]
        assert unwrap(signer.inputs["issuer"]) == f"{public}/realms/platform"
        client = resource(run, "keycloak-identity-ziti-client")
        assert unwrap(signer.inputs["audience"]) == "openziti" == unwrap(signer.inputs["client_id"])
        assert client.urn in signer.dependencies


def test_the_ziti_resources_talk_to_this_controller_and_wait_for_its_pod_and_service(run: ProgramRun) -> None:
    advertised, _ = ADDRESSES[run.stack]
    stateful_set = next(x for x in run.of_type(STATEFUL_SET) if x.name == "ziti-statefulset")
    service = next(x for x in run.resources if x.name == "ziti-service")
    component = next(x for x in run.resources if x.name == "ziti" and not x.custom)
    made = [x for x in run.resources if x.type.startswith(ZITI_DYNAMIC)]
    assert {x.type.removeprefix(ZITI_DYNAMIC) for x in made} == {
        "CertificateAuthority", "AuthPolicy", "ExternalJwtSigner", "Identity", "EdgeRouter", "EdgeRouterPolicy",
        "ServiceEdgeRouterPolicy"}
    root = resource(run, "ziti-pki-root")
    for x in made:
        assert stateful_set.urn in x.dependencies and service.urn in x.dependencies, x.name
        assert component.urn not in x.dependencies, x.name  # the service it talks to, not the whole component
        assert root.urn in x.dependencies
        if run.preview:  # the password is unknown until pulumi-random makes it
            continue
        conn = x.inputs["connection"]
        assert is_secret(conn) or is_secret(conn["password"])
        conn = unwrap(conn)
        assert conn["url"] == f"https://{advertised}:1280" and conn["username"] == "admin"
        assert conn["ca_bundle_pem"] == cert("ziti-pki-root")  # the controller's own root


def test_spires_root_is_the_verified_ca_and_each_workload_an_identity_by_spiffe_id(run: ProgramRun) -> None:
    ca = resource(run, "ziti-trust-spire-ca")
    root_cert = run.get("tls:index/selfSignedCert:SelfSignedCert", "root-ca")
    assert root_cert.urn in ca.dependencies
    assert unwrap(ca.inputs["external_id_claim"])["location"] == "SAN_URI" and ca.inputs["is_auth_enabled"] is True
    assert is_secret(ca.inputs["ca_key_pem"])  # the key verifies the CA; it stays a secret
    if not run.preview:
        assert unwrap(ca.inputs["cert_pem"]) == cert("root-ca")
    identities = {x.name: x for x in run.of_type(f"{ZITI_DYNAMIC}Identity")}
    expected = {
        "k8s-dev": {w: f"spiffe://k8s-dev.zt.internal/ns/production/sa/{w}"
                    for w in ("user-service", "payment-api", "inventory-service")},
        "k8s-prod": {"payments-api": "spiffe://k8s.acme-identity.net/ns/payments/sa/api"},
    }[run.stack]
    assert set(identities) == {f"ziti-trust-identity-{w}" for w in expected}
    for w, spiffe_id in expected.items():
        identity = identities[f"ziti-trust-identity-{w}"]
        assert ca.urn in identity.dependencies  # logins through the CA need it verified first
        entry = resource(run, f"spire-entries-entry-{w}")
        assert unwrap(entry.inputs["spiffe_id"]) == spiffe_id  # the SPIFFE ID the workload's entry issues
        if not run.preview:
            assert unwrap(identity.inputs["external_id"]) == spiffe_id
            assert unwrap(identity.inputs["auth_policy_id"]) == "ziti-trust-workload-policy-id"


def test_the_stack_exports_the_ziti_side_with_the_admin_password_secret() -> None:
    for stack in STACKS:
        exports = program_run(stack, False).exports
        assert exports["zitiAdminPassword"].secret
        assert exports["zitiControllerUrl"].value == f"https://{ADDRESSES[stack][0]}:1280"
        for key in ("zitiCaId", "zitiExtJwtSignerId", "zitiAuthPolicyId", "zitiRouterId", "zitiIdentityIds"):
            assert exports[key].value, key


# --- configuration -----------------------------------------------------------------------------------


def _config(env: str = "dev", *, ziti: dict[str, Any] | None = None, **k8s_ziti: Any) -> dict[str, Any]:
    return {
        "environment": env, "platform": "kubernetes",
        "spire": {"trustDomain": "k8s.acme-identity.net"},
        "kubernetes": {"clusters": {"c1": {"context": "c1"}},
                       "iam": {"hostname": "auth.localhost" if env == "dev" else "auth.acme-identity.net"},
                       "ziti": k8s_ziti},
        "ziti": ziti if ziti is not None else {"advertisedAddress": "ziti.acme-identity.net",
                                               "routerAdvertisedAddress": "router.acme-identity.net",
                                               "clusterTrustDomain": "ctrl.acme-identity.net"},
    }


def test_the_section_parses_with_its_defaults() -> None:
    zk = stack_config.parse(_config()).kubernetes
    assert zk is not None and zk.ziti is not None
    assert (zk.ziti.service_type, zk.ziti.database_storage, zk.ziti.router_storage) == ("LoadBalancer", "2Gi", "256Mi")


def test_ziti_needs_keycloak_in_the_cluster() -> None:
    raw = _config()
    del raw["kubernetes"]["iam"]
    with pytest.raises(ConfigError) as e:
        stack_config.parse(raw)
    assert "identity-platform:kubernetes.ziti: needs kubernetes.iam" in str(e.value)


def test_the_names_the_controller_and_router_run_under_are_required() -> None:
    with pytest.raises(ConfigError) as e:
        stack_config.parse(_config(ziti={"controllerUrl": "https://ziti.acme.net:1280"}))
    message = str(e.value)
    for key in ("advertisedAddress", "clusterTrustDomain", "routerAdvertisedAddress"):
        assert f"identity-platform:ziti.{key}: required with kubernetes.ziti" in message
    assert "identity-platform:ziti.controllerUrl: not used with platform kubernetes" in message


def test_node_ports_only_with_node_port_services_and_distinct() -> None:
    with pytest.raises(ConfigError) as e:
        stack_config.parse(_config(controllerNodePort=31280))
    assert "kubernetes.ziti.controllerNodePort: only used with serviceType NodePort, not LoadBalancer" in str(e.value)
    with pytest.raises(ConfigError) as e:
        stack_config.parse(_config(serviceType="NodePort", controllerNodePort=31280, routerNodePort=31280))
    assert "kubernetes.ziti.routerNodePort: the same as controllerNodePort" in str(e.value)
    with pytest.raises(ConfigError) as e:
        stack_config.parse(_config(serviceType="NodePort", controllerNodePort=1280))
    assert "kubernetes.ziti.controllerNodePort" in str(e.value)


def test_a_ziti_section_without_kubernetes_ziti_is_refused() -> None:
    raw = _config()
    del raw["kubernetes"]["ziti"]
    with pytest.raises(ConfigError) as e:
        stack_config.parse(raw)
    assert "identity-platform:ziti: platform kubernetes deploys no OpenZiti without kubernetes.ziti" in str(e.value)


def test_strict_mode_refuses_local_ziti_names() -> None:
    raw = _config("prod", ziti={"advertisedAddress": "ziti.localhost", "routerAdvertisedAddress": "router.localhost",
                                "clusterTrustDomain": "ctrl.acme-identity.net"})
    raw["kubernetes"]["iam"]["tlsCredential"] = "auth-tls"
    with pytest.raises(ConfigError) as e:
        stack_config.parse(raw)
    assert "identity-platform:ziti.advertisedAddress: 'ziti.localhost'" in str(e.value)
    assert "identity-platform:ziti.routerAdvertisedAddress: 'router.localhost'" in str(e.value)


# --- Keycloak users and `imports`: the Ziti side of the chain is the same as on Swarm ---------------

USERS = {"bob": {"email": "bob.ops@acme-identity.net", "zitiRoleAttributes": ["oncall"]}}


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "update"])
def test_keycloak_users_get_a_ziti_identity_that_logs_in_through_the_realms_signer(preview: bool) -> None:
    r = run_program("k8s-dev", preview, config={"identity-platform:users": json.dumps(USERS)})
    user = resource(r, "ziti-trust-user-bob")
    assert user.type == f"{ZITI_DYNAMIC}Identity"
    assert resource(r, "ziti-trust-user-policy").urn in user.dependencies
    assert unwrap(user.inputs["role_attributes"]) == ["oncall"]
    if not preview:
        assert unwrap(user.inputs["external_id"]) == "bob.ops@acme-identity.net"
        assert set(r.exports["zitiUserIdentityIds"].value) == {"bob"}


def test_an_existing_ziti_object_can_be_taken_over() -> None:
    r = run_program("k8s-dev", False, config={"identity-platform:imports": json.dumps({"ziti-trust-spire-ca": "ca-1"})})
    assert {x.name: x.inputs["import_id"] for x in r.resources if "import_id" in x.inputs} == {
        "ziti-trust-spire-ca": "ca-1"}


def test_users_and_imports_are_refused_without_kubernetes_ziti() -> None:
    raw = _config()
    del raw["kubernetes"]["ziti"], raw["ziti"]
    raw["users"], raw["imports"] = USERS, {"ziti-trust-spire-ca": "ca-1"}
    with pytest.raises(ConfigError) as e:
        stack_config.parse(raw)
    message = str(e.value)
    assert ("identity-platform:users: not used with platform kubernetes (no Ziti identities for users "
            "without kubernetes.ziti)") in message
    assert ("identity-platform:imports: not used with platform kubernetes (no Ziti object to take over "
            "without kubernetes.ziti)") in message
