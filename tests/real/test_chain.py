"""The platform's identity chain against the REAL servers, at provider level.

1. Workload -> Ziti with an SVID: a process of this uid, attested by the real SPIRE agent (`unix`
   workload attestor) under an entry made as `SpireRegistrations` makes it (selector
   `unix:uid:<uid>`, parent = the agent), fetches its X.509 SVID with the real `spire-agent api
   fetch x509` and logs in to the real Ziti controller with it (`method=cert`), trusted through
   SPIRE's upstream root registered, verified and claim-mapped as `ZitiTrust` does it.
2. Keycloak user -> Ziti with a token: a user of the realm `KeycloakIdentity` makes logs in
   through its public PKCE client as a browser does, and the access token logs in to Ziti
   (`method=ext-jwt`) through the signer and user auth policy `ZitiTrust` makes. Once per
   platform (`PLATFORMS`: Swarm's dev stack, Kubernetes's k8s-dev): the realm and client are the
   ones that stack's `__main__.py` registers, only pointed at this session's server; on
   Kubernetes they also wait for a Keycloak still starting, as behind the Gateway while the
   Deployment rolls out (`test_the_platforms_realm_waits_for_a_keycloak_still_starting`).

How the resources are made: each component is evaluated under Pulumi's mock engine
(tests/harness/mock_engine.py) with inputs that point at this session's servers, and the dynamic
resources it registers (type, name, inputs and the serialized provider it carries) are then
created for real through `python -m pulumi.dynamic` (tests/harness/dynamic_host.py), in
registration order, every mock id in a later input (`auth_policy_id`, `allowed_signers`)
replaced by the real id. The settings are therefore the components' own, not a copy that could
drift from them. Only the user's Ziti identity is made by hand: the program makes none (users are
the operator's).

Each flow has a negative that proves the positive is not vacuous, next to a control login that
succeeds under the same conditions. Everything made is deleted through its provider (try/finally
by an ExitStack), newest first.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dill
import httpx
import pytest
from cryptography import x509
from pulumi.dynamic import ResourceProvider

from components.keycloak_identity import DEFAULT_ZITI_REDIRECT_URIS
from components.spire_registrations import Registration, SpireRegistrations, SpireRegistrationsArgs
from components.ziti_trust import SPIFFE_CLAIM, ZitiTrust, ZitiTrustArgs, ZitiWorkload
from dynamic_providers.ziti import provider as zp
from tests.conftest import program_run
from tests.harness import chain, mock_engine
from tests.harness.dynamic_host import PROVIDER_KEY, DynamicProviderHost, State
from tests.harness.mock_engine import Registered
from tests.real._ziti import connection, owner, unique, ziti_section
from tests.real.conftest import RealServers
from tests.real.keycloak_support import PLATFORMS

ziti = pytest.fixture(scope="module")(ziti_section)

DYNAMIC = "pulumi-python:dynamic/"
IDENTITY_TYPE = f"{DYNAMIC}ziti:Identity"
WORKLOAD_SIDE = ("-spire-ca", "-workload-policy", "-identity-")  # ZitiTrust's names, workload half
USER_SIDE = ("-keycloak-signer", "-user-policy")  # ... and the Keycloak half
UNUSED = "unused-by-this-test"
LOGIN_SETTLE_SECONDS = 30.0
"""How long a control login may be refused (401) right after its CA, signer or identity was made:
the controller loads them from change events (see chain.ziti_jwt_login)."""
REDIRECT_URI = next(u for u in DEFAULT_ZITI_REDIRECT_URIS if u.startswith("http://127.0.0.1:"))


@pytest.fixture(scope="module")
def spire(real_servers: RealServers) -> dict[str, Any]:
    return real_servers("spire")


@pytest.fixture(scope="module")
def keycloak(real_servers: RealServers) -> dict[str, Any]:
    return real_servers("keycloak")


@pytest.fixture
def made(dynamic_host: Callable[..., DynamicProviderHost]) -> Iterator[Made]:
    with ExitStack() as cleanup:
        yield Made(dynamic_host, cleanup)


# --- components under the mock engine, their resources made for real ------------------------------


def plain(value: Any) -> Any:
    """A recorded input with every Pulumi secret unwrapped (the engine hands providers plain values)."""
    value = mock_engine.unwrap_secret(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def registered(build: Callable[[], object]) -> list[Registered]:
    """The dynamic resources `build` (component code) registers, with their inputs, in order."""
    return [r for r in mock_engine.run(build).resources if r.type.startswith(DYNAMIC)]


@dataclass
class Made:
    """Resources created for real, each deleted through its provider when the test ends."""

    dynamic_host: Callable[..., DynamicProviderHost]
    cleanup: ExitStack

    def __post_init__(self) -> None:
        self.states: dict[str, State] = {}
        self.real_ids: dict[str, str] = {}  # mock id ("<name>-id") -> the server's id
        self.hosts: dict[tuple[str, type], DynamicProviderHost] = {}

    def create(self, provider: ResourceProvider, type_: str, name: str, props: dict[str, Any]) -> State:
        key = (type_, type(provider))
        if key not in self.hosts:
            self.hosts[key] = self.dynamic_host(provider, resource_type=type_)
        host = self.hosts[key]
        state = host.up(name, props)
        self.cleanup.callback(host.delete, name, state.id, state.outputs)
        self.states[name] = state
        self.real_ids[f"{name}-id"] = state.id
        return state

    def realize(self, resources: Iterable[Registered], *, only: tuple[str, ...] = (), suffix: str = "",
                each: Mapping[str, Mapping[str, Any]] | None = None, **overrides: Any) -> list[State]:
        """Create the recorded resources (those whose name contains one of `only`, if given) with
        the provider each one carries; `overrides` replace inputs (of the resource named so in
        `each`: only its), `suffix` extends the names."""
        resources = list(resources)
        mock_ids = {f"{r.name}-id" for r in resources}
        out = []
        for r in resources:
            if only and not any(part in r.name for part in only):
                continue
            props = self._real_ids(plain({k: v for k, v in r.inputs.items() if k != PROVIDER_KEY}), mock_ids)
            provider = dill.loads(base64.b64decode(plain(r.inputs[PROVIDER_KEY])))  # noqa: S301 (our own recording)
            own = (each or {}).get(r.name, {})
            out.append(self.create(provider, r.type, r.name + suffix, {**props, **overrides, **own}))
        return out

    def _real_ids(self, value: Any, mock_ids: set[str]) -> Any:
        if isinstance(value, dict):
            return {k: self._real_ids(v, mock_ids) for k, v in value.items()}
        if isinstance(value, list):
            return [self._real_ids(v, mock_ids) for v in value]
        if isinstance(value, str) and value in mock_ids:
            assert value in self.real_ids, f"an input refers to {value}, which this test has not made (yet)"
            return self.real_ids[value]
        return value


def register_workloads(made: Made, spire: Mapping[str, Any], paths: Mapping[str, str]) -> dict[str, str]:
    """SPIRE entries as `SpireRegistrations` makes them: one per workload (name -> SPIFFE path),
    selector `unix:uid:<this uid>`, parented to the real agent, over the admin socket (grpc).
    Returns name -> SPIFFE ID."""
    entries = {
        n: Registration(f"spiffe://{spire['trust_domain']}{p}", spire["agent_spiffe_id"], (f"unix:uid:{os.getuid()}",))
        for n, p in paths.items()
    }
    connection = {"transport": "grpc", "socket_path": spire["admin_socket"], "trust_domain": spire["trust_domain"]}
    ids: dict[str, str] = {}

    def build() -> None:
        regs = SpireRegistrations("chain-entries", SpireRegistrationsArgs(entries=entries, connection=connection))
        ids.update(regs.spiffe_ids)

    for state in made.realize(registered(build)):
        assert state.outputs["parent_id"] == spire["agent_spiffe_id"]
    return ids


def ziti_trust(name: str, ziti: dict[str, Any], *, spire: Mapping[str, Any] | None = None,
               issuer: str = UNUSED, jwks_url: str = UNUSED, audience: str = UNUSED, client_id: str = UNUSED,
               workloads: Mapping[str, str] | None = None) -> list[Registered]:
    """What `ZitiTrust` registers for the session's controller (inputs a test does not use are
    placeholders; it realizes only its half, see WORKLOAD_SIDE / USER_SIDE)."""
    root_cert = Path(spire["x509pop"]["root_cert"]).read_text() if spire else UNUSED
    root_key = Path(spire["x509pop"]["root_key"]).read_text() if spire else UNUSED

    def build() -> None:
        ZitiTrust(name, ZitiTrustArgs(connection=connection(ziti), root_ca_cert_pem=root_cert, root_ca_key_pem=root_key,
                                      keycloak_issuer=issuer, keycloak_jwks_url=jwks_url, keycloak_audience=audience,
                                      keycloak_client_id=client_id, router_name=f"{name}-router",
                                      workloads={k: ZitiWorkload(v) for k, v in (workloads or {}).items()}))

    return registered(build)


# --- 1. workload -> Ziti with an SVID ------------------------------------------------------------


def kubernetes_trust() -> list[Registered]:
    """The Ziti resources the k8s-dev program registers (platform kubernetes with kubernetes.ziti,
    `assembly.build_kubernetes_ziti`), in registration order."""
    return [r for r in program_run("k8s-dev", False).resources
            if r.type.startswith(f"{DYNAMIC}ziti:") and r.parent.endswith("::ziti-trust")]


def kubernetes_workload_side(made: Made, spire: Mapping[str, Any], ziti: dict[str, Any], name: str,
                             known: str, spiffe_id: str) -> list[State]:
    """ZitiTrust's workload half as the k8s-dev program registers it (the CA, the cert-only policy,
    the identity of its first workload), made on the session's controller with this test's names,
    the session SPIRE's root (its cert and key) and `known`'s SPIFFE ID in place of k8s-dev's."""
    recorded = kubernetes_trust()
    (identity,) = [r for r in recorded if r.name == "ziti-trust-identity-user-service"]
    assert plain(identity.inputs["external_id"]) == "spiffe://k8s-dev.zt.internal/ns/production/sa/user-service"
    common = {"connection": connection(ziti)}
    return made.realize([r for r in recorded if r.name in ("ziti-trust-spire-ca", "ziti-trust-workload-policy")]
                        + [identity], each={
        "ziti-trust-spire-ca": {**common, "name": f"{name}-spire", "owner": owner(f"{name}-ca"),
                                "cert_pem": Path(spire["x509pop"]["root_cert"]).read_text(),
                                "ca_key_pem": Path(spire["x509pop"]["root_key"]).read_text()},
        "ziti-trust-workload-policy": {**common, "name": f"{name}-workloads", "owner": owner(f"{name}-policy")},
        identity.name: {**common, "name": known, "owner": owner(known), "external_id": spiffe_id},
    })


def workload_chain(made: Made, spire: Mapping[str, Any], ziti: dict[str, Any], name: str,
                   known: str, stranger: str | None = None, platform: str = "swarm") -> tuple[dict[str, str], State]:
    """SPIRE entries for `known` (and `stranger`, which gets no Ziti identity) and ZitiTrust's
    workload half: the root as a verified third-party CA, the cert-only policy, `known`'s identity
    (for `platform` kubernetes, the k8s-dev program's: kubernetes_workload_side). Returns the
    SPIFFE IDs and `known`'s identity."""
    paths = {known: f"/chain/{name}/{known}", **({stranger: f"/chain/{name}/{stranger}"} if stranger else {})}
    spiffe_ids = register_workloads(made, spire, paths)
    if platform == "kubernetes":
        states = kubernetes_workload_side(made, spire, ziti, name, known, spiffe_ids[known])
        ca, identity = made.states["ziti-trust-spire-ca"], made.states["ziti-trust-identity-user-service"]
    else:
        trust = ziti_trust(name, ziti, spire=spire, workloads={known: spiffe_ids[known]})
        states = made.realize(trust, only=WORKLOAD_SIDE)
        ca, identity = made.states[f"{name}-spire-ca"], made.states[f"{name}-identity-{known}"]
    assert ca.outputs["is_verified"] is True
    assert ca.inputs["external_id_claim"] == SPIFFE_CLAIM
    assert len(states) == 3
    return spiffe_ids, identity


class ControllerLog:
    """The controller's own account of why it refused a login (its API only says INVALID_AUTH):
    the JSON log lines written after this object was made."""

    def __init__(self, ziti: Mapping[str, Any]) -> None:
        self.path = Path(ziti["log"])
        self.offset = self.path.stat().st_size

    def reasons(self) -> list[str]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            lines = f.read().decode(errors="replace").splitlines()
        out = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") == "error":
                out.append(f"{entry.get('msg', '')} {entry.get('error', '')}".strip())
        return out

    def says(self, reason: str) -> bool:
        return any(reason in r for r in self.reasons())


def refused(login: Callable[[], object], ziti: Mapping[str, Any], reason: str) -> None:
    """`login` is answered 401 and the controller logs `reason` for it: refused for that reason,
    not for another (a refusal for any reason would make the positive look right too)."""
    log = ControllerLog(ziti)
    with pytest.raises(chain.LoginRefusedError) as err:
        login()
    assert err.value.status == 401, err.value
    assert log.says(reason), f"the controller refused, but not with {reason!r}: {log.reasons()}"


def svid_of(spire: Mapping[str, Any], out_dir: Path, spiffe_id: str) -> chain.Svid:
    """The SVID the real agent issues to this process for `spiffe_id` (files under `out_dir`)."""
    return chain.fetch_x509_svid(spire["bin_dir"], spire["agent_socket"], out_dir, spiffe_id=spiffe_id)


@pytest.mark.parametrize("platform", ["swarm", "kubernetes"])
def test_a_workload_logs_in_to_ziti_with_the_svid_spire_issued_to_it(
    spire: dict[str, Any], ziti: dict[str, Any], made: Made, tmp_path: Path, platform: str
) -> None:
    name = unique("chain")
    api = f"{name}-api"
    spiffe_ids, identity = workload_chain(made, spire, ziti, name, api, platform=platform)

    svid = svid_of(spire, tmp_path / "svid", spiffe_ids[api])

    # What the agent handed the workload: leaf <- SPIRE's server CA <- the upstream ("disk") root.
    root = x509.load_pem_x509_certificate(Path(spire["x509pop"]["root_cert"]).read_bytes())
    leaf, *intermediates = svid.certificates
    assert chain.spiffe_id_of(leaf) == spiffe_ids[api]
    assert len(intermediates) == 1, [c.subject.rfc4514_string() for c in intermediates]
    leaf.verify_directly_issued_by(intermediates[0])
    intermediates[0].verify_directly_issued_by(root)
    assert x509.load_pem_x509_certificates(svid.bundle_pem.encode()) == [root]

    data = chain.ziti_cert_login(ziti["url"], ziti["ca_pem"], svid, within=LOGIN_SETTLE_SECONDS)
    assert data["identity"]["id"] == identity.id
    assert data["identity"]["name"] == api
    assert data["authQueries"] == []  # the certificate alone completes the login: no secondary factor


def test_an_svid_without_a_ziti_identity_or_without_its_chain_is_refused(
    spire: dict[str, Any], ziti: dict[str, Any], made: Made, tmp_path: Path
) -> None:
    name = unique("chain")
    api, other = f"{name}-api", f"{name}-stranger"
    spiffe_ids, identity = workload_chain(made, spire, ziti, name, api, stranger=other)
    known = svid_of(spire, tmp_path / "known", spiffe_ids[api])
    stranger = svid_of(spire, tmp_path / "stranger", spiffe_ids[other])
    assert stranger.spiffe_id != known.spiffe_id and stranger.chain_path != known.chain_path

    # The control: same CA, same process, same moment -> in.
    assert chain.ziti_cert_login(ziti["url"], ziti["ca_pem"], known,
                                 within=LOGIN_SETTLE_SECONDS)["identity"]["id"] == identity.id
    # A valid SVID of the same trust domain whose SPIFFE ID no identity has: nowhere.
    refused(lambda: chain.ziti_cert_login(ziti["url"], ziti["ca_pem"], stranger), ziti,
            "failed to find identity by externalId")
    # The known SVID without SPIRE's intermediate: the chain does not reach the registered root.
    leaf_only = known.leaf_only(tmp_path / "leaf-only")
    refused(lambda: chain.ziti_cert_login(ziti["url"], ziti["ca_pem"], leaf_only), ziti,
            "failed to verify client via all pools, no valid roots")


# --- 2. Keycloak user -> Ziti with a token ---------------------------------------------------------


def platform_keycloak(stack: str) -> list[Registered]:
    """`KeycloakIdentity`'s realm and client of `stack`, recorded by `__main__.py` under the mock
    engine: their inputs and the providers they carry (with the readiness wait), in order."""
    run = program_run(stack, False)
    return [r for r in run.resources
            if r.type.startswith(f"{DYNAMIC}keycloak:") and r.name.startswith("keycloak-identity-")]


def on_this_server(recorded: Registered, keycloak: Mapping[str, Any], realm: str) -> dict[str, Any]:
    """What points a recorded realm or client at this session's Keycloak, under its own realm: the
    connection's address and admin credentials; every other input stays the platform's."""
    connection = {**plain(recorded.inputs["connection"]), "url": keycloak["url"],
                  "username": keycloak["admin_user"], "password": keycloak["admin_password"]}
    return {"realm": realm, "connection": connection}


@dataclass(frozen=True)
class UserSide:
    realm: str
    client_id: str
    issuer: str
    user_policy_id: str
    client: Registered  # the recorded Ziti client, to make a look-alike with another audience
    overrides: dict[str, Any]  # what points the recorded resources at this server and realm


def kubernetes_jwks(recorded: str, realm: str, keycloak_url: str) -> str:
    """The JWKS URL the k8s-dev program gives its signer (Keycloak's cluster Service, realm
    `platform`) for this test's realm, its Service authority standing for the session's Keycloak
    as the cluster's DNS and Service stand for the Keycloak pod."""
    service = "http://keycloak.iam-system.svc:8080"  # kubernetes.iam's Service, asserted in the mock tests
    assert recorded == f"{service}/realms/platform/protocol/openid-connect/certs", recorded
    return recorded.replace(service, keycloak_url).replace("/realms/platform/", f"/realms/{realm}/")


def kubernetes_user_side(made: Made, ziti: dict[str, Any], name: str, realm_out: Mapping[str, Any],
                         client_out: Mapping[str, Any], keycloak_url: str) -> str:
    """ZitiTrust's Keycloak half as the k8s-dev program registers it (platform kubernetes with
    kubernetes.ziti: `build_kubernetes_ziti`), made on the session's controller for this test's
    realm; returns the user policy's id."""
    recorded = kubernetes_trust()
    (signer,) = [r for r in recorded if r.name == "ziti-trust-keycloak-signer"]
    realm = realm_out["issuer_url"].rsplit("/", 1)[1]
    jwks = kubernetes_jwks(plain(signer.inputs["jwks_endpoint"]), realm, keycloak_url)
    assert jwks == realm_out["jwks_url"]  # the same document the realm advertises
    common = {"name": name, "connection": connection(ziti)}
    made.realize(recorded, only=USER_SIDE, each={
        "ziti-trust-keycloak-signer": {**common, "owner": owner(f"{name}-signer"), "jwks_endpoint": jwks,
                                       "issuer": realm_out["issuer_url"], "external_auth_url": realm_out["issuer_url"],
                                       "audience": client_out["audience"], "client_id": client_out["client_id"]},
        "ziti-trust-user-policy": {**common, "owner": owner(f"{name}-policy")},
    })
    return made.states["ziti-trust-user-policy"].id


def user_chain(made: Made, keycloak: Mapping[str, Any], ziti: dict[str, Any], name: str,
               stack: str = "dev") -> UserSide:
    """The platform's realm and Ziti client (`platform_keycloak`), then ZitiTrust's Keycloak half
    (signer from the realm's discovery outputs, audience and client id from the client) as the
    assembly wires them; on a Kubernetes stack that half is the one k8s-dev registers
    (kubernetes_user_side)."""
    kc_resources = platform_keycloak(stack)
    assert [r.name for r in kc_resources] == ["keycloak-identity-realm", "keycloak-identity-ziti-client"]
    overrides = on_this_server(kc_resources[0], keycloak, name)
    made.realize(kc_resources, suffix=f"-{name}", **overrides)
    realm_out = made.states[f"keycloak-identity-realm-{name}"].outputs
    client_out = made.states[f"keycloak-identity-ziti-client-{name}"].outputs
    discovery = httpx.get(f"{keycloak['url']}/realms/{name}/.well-known/openid-configuration", timeout=30).json()
    assert (realm_out["issuer_url"], realm_out["jwks_url"]) == (discovery["issuer"], discovery["jwks_uri"])

    if stack.startswith("k8s-"):
        policy_id = kubernetes_user_side(made, ziti, name, realm_out, client_out, keycloak["url"])
        return UserSide(name, client_out["client_id"], realm_out["issuer_url"], policy_id, kc_resources[1], overrides)
    trust = ziti_trust(name, ziti, issuer=realm_out["issuer_url"], jwks_url=realm_out["jwks_url"],
                       audience=client_out["audience"], client_id=client_out["client_id"])
    made.realize(trust, only=USER_SIDE)
    return UserSide(name, client_out["client_id"], realm_out["issuer_url"], made.states[f"{name}-user-policy"].id,
                    kc_resources[1], overrides)


def user(made: Made, keycloak: Mapping[str, Any], ziti: dict[str, Any], side: UserSide, login: str,
         *, with_identity: bool) -> tuple[str, str, str | None]:
    """A realm user (username, password) as an operator makes it, and, if asked, the Ziti identity
    an operator gives it: externalId = its email, under ZitiTrust's user policy. Returns
    (username, password, identity id)."""
    username, password = unique(login), secrets.token_urlsafe(18)
    email = f"{username}@example.org"
    chain.create_keycloak_user(keycloak["url"], keycloak["admin_user"], keycloak["admin_password"], side.realm,
                               username, email, password)
    if not with_identity:
        return username, password, None
    state = made.create(zp.IdentityProvider(), IDENTITY_TYPE, f"{side.realm}-{login}", {
        "name": username, "type": "Default", "is_admin": False, "external_id": email,
        "auth_policy_id": side.user_policy_id, "connection": connection(ziti), "owner": owner(username)})
    return username, password, state.id


@pytest.mark.parametrize("stack", PLATFORMS)
def test_a_keycloak_user_logs_in_to_ziti_with_the_token_of_a_browser_login(
    keycloak: dict[str, Any], ziti: dict[str, Any], made: Made, stack: str
) -> None:
    side = user_chain(made, keycloak, ziti, unique("chain"), stack)
    username, password, identity_id = user(made, keycloak, ziti, side, "alice", with_identity=True)

    token = chain.keycloak_pkce_login(keycloak["url"], side.realm, side.client_id, REDIRECT_URI, username, password)
    claims = chain.jwt_claims(token)
    assert claims["iss"] == side.issuer
    assert side.client_id in ([claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"])
    assert (claims["azp"], claims["email"]) == (side.client_id, f"{username}@example.org")

    data = chain.ziti_jwt_login(ziti["url"], ziti["ca_pem"], token, within=LOGIN_SETTLE_SECONDS)
    assert data["identity"]["id"] == identity_id
    assert data["authQueries"] == []


@pytest.mark.parametrize("stack", PLATFORMS)
def test_a_token_of_a_user_without_identity_or_for_another_audience_is_refused(
    keycloak: dict[str, Any], ziti: dict[str, Any], made: Made, stack: str
) -> None:
    side = user_chain(made, keycloak, ziti, unique("chain"), stack)
    alice, alice_pw, alice_identity = user(made, keycloak, ziti, side, "alice", with_identity=True)
    bob, bob_pw, _ = user(made, keycloak, ziti, side, "bob", with_identity=False)
    # Another app of the same realm: the Ziti client's exact settings, its own id as audience.
    other = f"{side.client_id}-other-app"
    made.realize([side.client], suffix=f"-{side.realm}-other", client_id=other, audience=other, **side.overrides)

    # The control: alice through the Ziti client -> her identity.
    token = chain.keycloak_pkce_login(keycloak["url"], side.realm, side.client_id, REDIRECT_URI, alice, alice_pw)
    data = chain.ziti_jwt_login(ziti["url"], ziti["ca_pem"], token, within=LOGIN_SETTLE_SECONDS)
    assert data["identity"]["id"] == alice_identity

    # bob's token is as good as alice's, but no identity has his email: refused.
    bob_token = chain.keycloak_pkce_login(keycloak["url"], side.realm, side.client_id, REDIRECT_URI, bob, bob_pw)
    refused(lambda: chain.ziti_jwt_login(ziti["url"], ziti["ca_pem"], bob_token), ziti,
            "identity not found by externalId")

    # alice's token from the other app: same issuer, keys and email, audience not the signer's.
    other_token = chain.keycloak_pkce_login(keycloak["url"], side.realm, other, REDIRECT_URI, alice, alice_pw)
    claims = chain.jwt_claims(other_token)
    assert claims["azp"] == other and side.client_id not in claims["aud"], claims["aud"]
    refused(lambda: chain.ziti_jwt_login(ziti["url"], ziti["ca_pem"], other_token), ziti,
            "audience validation failed")


class LateListener:
    """A loopback port that refuses connections for `delay` seconds, then forwards each one to
    `target` (host, port): a Keycloak that is not up yet, then is."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target, self.delay = target, delay
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        if self._stop.wait(self.delay):
            return
        with socket.create_server(("127.0.0.1", self.port)) as server:
            server.settimeout(0.2)
            while not self._stop.is_set():
                try:
                    client, _ = server.accept()
                except TimeoutError:
                    continue
                upstream = socket.create_connection(self.target)
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()


def test_the_platforms_realm_waits_for_a_keycloak_still_starting(keycloak: dict[str, Any], made: Made) -> None:
    """k8s-dev's realm, with the provider it carries, against a Keycloak that answers only after
    8 s: the create waits (the provider's readiness wait) instead of failing, then makes the realm."""
    (realm,) = [r for r in platform_keycloak("k8s-dev") if r.name == "keycloak-identity-realm"]
    url = httpx.URL(keycloak["url"])
    late = LateListener((url.host, url.port or 80), delay=8.0)
    try:
        name = unique("late")
        overrides = on_this_server(realm, keycloak, name)
        overrides["connection"]["url"] = f"http://127.0.0.1:{late.port}"
        started = time.monotonic()
        (state,) = made.realize([realm], suffix=f"-{name}", **overrides)
        waited = time.monotonic() - started
    finally:
        late.close()
    assert waited >= 8.0, waited
    found = httpx.get(f"{keycloak['url']}/realms/{name}/.well-known/openid-configuration", timeout=30)
    assert found.status_code == 200 and state.outputs["realm"] == name, found.status_code
