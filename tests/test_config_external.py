"""The config rules of `platform: external` and of the secret keys, through `stack_config.load()`
under the mock engine: values arrive as the CLI hands them to the program, and secrets are
secret only when the stack set them with `--secret`. Every refusal names its
`identity-platform:` key and says how to fix it; a broken stack is refused in one message, and
no message repeats a secret value."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest

import stack_config
from stack_config import ConfigError, StackConfig
from tests.fakes import ziti as fake_ziti
from tests.harness import mock_engine

P = "identity-platform"
ADMIN_PASSWORDS = ("keycloakAdminPassword", "zitiAdminPassword")
SECRET_KEYS = (*ADMIN_PASSWORDS, "rootCaKey")
TD = "zt.acme-identity.net"
GRPC = {"kind": "grpc", "socketPath": "/run/user/1000/spire-admin.sock"}
AGENT = f"spiffe://{TD}/spire/agent/x509pop/worker-1"
KC_URL = "https://auth.zt.acme-identity.net"
ZT_URL = "https://ziti.zt.acme-identity.net:1280"


# --- PEMs, made here ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pem:
    cert: str
    key: str


def make_pem(*, ca: bool = True, valid_days: int = 30) -> Pem:
    """A self-signed P-256 certificate (a CA unless `ca=False`) and its unencrypted PKCS#8 key.
    The certificate as `pulumi config set --path 'rootCa.certificate' "$(cat ca.pem)"` stores it:
    without the trailing newline."""
    cert, key = fake_ziti.make_ca("acme root" if ca else "api.acme-identity.net", is_ca=ca, valid_days=valid_days)
    return Pem(cert.rstrip("\n"), key)


def expired_pem() -> Pem:
    """A CA that expired at 2021-03-16 12:00 UTC (made as if it were 2021-03-15 12:00)."""
    then = datetime.datetime(2021, 3, 15, 12, 0, tzinfo=datetime.UTC)
    with mock.patch.object(fake_ziti, "now_utc", return_value=then):
        return make_pem(valid_days=1)


ROOT = make_pem()
OTHER = make_pem()  # another CA: its key is not ROOT's
LEAF = make_pem(ca=False)
EXPIRED = expired_pem()


# --- loading a stack as the CLI hands it over --------------------------------------------------


@contextmanager
def engine(
    stack: str,
    config: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    operator: tuple[str, ...] = ADMIN_PASSWORDS,
) -> Iterator[None]:
    """The mock engine with `stack`'s file, `config` (plain values, as `pulumi config set`) and
    `secrets` (set with `--secret`). `operator`: what the operator of an external stack already
    set with `--secret` (the harness's OPERATOR_SECRETS)."""
    values = {f"{P}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in (config or {}).items()}
    values |= {f"{P}:{k}": v for k, v in (secrets or {}).items()}
    with (
        # The harness names the operator's secrets with their namespace (mock_engine.OPERATOR_SECRETS).
        mock.patch.dict(mock_engine.OPERATOR_SECRETS, {"platform external": tuple(f"{P}:{k}" for k in operator)}),
        mock_engine.mocked_engine(stack, config=values, secret_keys=[f"{P}:{k}" for k in secrets or {}]),
    ):
        yield


def load(stack: str, config: dict[str, Any] | None = None, secrets: dict[str, str] | None = None) -> StackConfig:
    with engine(stack, config, secrets):
        return stack_config.load()


def spire(**overrides: Any) -> dict[str, Any]:
    """Pulumi.external.yaml's spire section with `overrides`."""
    return {"trustDomain": TD, "transport": GRPC, "agents": {"worker-1": AGENT}, **overrides}


def transport(**fields: Any) -> dict[str, Any]:
    """This SPIRE transport and no workloads (so no agents are needed)."""
    return {"spire": {"trustDomain": TD, "transport": fields}, "workloads": {}}


def urls(keycloak: str = KC_URL, ziti: str = ZT_URL) -> dict[str, Any]:
    return {"keycloak": {"url": keycloak}, "ziti": {"controllerUrl": ziti}}


SWARM_KEYCLOAK = {"hostname": "auth.zt.acme-identity.net", "realm": "platform"}
SWARM_ZITI = {
    "advertisedAddress": "ziti.zt.acme-identity.net",
    "clusterTrustDomain": "ctrl.zt.acme-identity.net",
    "routerAdvertisedAddress": "router.zt.acme-identity.net",
}
SWARM_TRANSPORT = {"kind": "docker-exec", "node": "manager-1"}


# --- stacks that load --------------------------------------------------------------------------


class TestStacksThatLoad:
    def test_pulumi_external_yaml_loads_with_the_operators_secrets(self) -> None:
        with engine("external"):
            cfg = stack_config.load()
            secrets = stack_config.load_secrets(cfg)
        assert cfg.platform == "external"
        assert cfg.environment == "prod" and cfg.is_strict is True
        assert cfg.keycloak.url == "https://auth.zt.acme-identity.net"
        assert cfg.ziti.controller_url == "https://ziti.zt.acme-identity.net:1280"
        assert cfg.spire.agents == {"worker-1": "spiffe://zt.acme-identity.net/spire/agent/x509pop/worker-1"}
        assert cfg.spire.transport.kind == "grpc"
        assert cfg.spire.transport.socket_path == "/run/user/1000/spire-admin.sock"
        assert cfg.workloads["payments-api"].node == "worker-1"
        assert cfg.users["alice"].email == "alice@acme-identity.net"
        assert cfg.nodes == {} and cfg.root_ca is None and cfg.makes_router is False
        assert secrets.keycloak_admin_password is not None and secrets.ziti_admin_password is not None
        assert secrets.root_ca_key is None

    @pytest.mark.parametrize("stack", ["external", "dev"])
    def test_a_brought_root_loads_on_both_platforms(self, stack: str) -> None:
        with engine(stack, {"rootCa": {"certificate": ROOT.cert}}, {"rootCaKey": ROOT.key}):
            cfg = stack_config.load()
            secrets = stack_config.load_secrets(cfg)
        assert cfg.root_ca is not None and cfg.root_ca.certificate == ROOT.cert
        assert secrets.root_ca_key is not None

    @pytest.mark.parametrize(
        "config",
        [
            pytest.param(urls(keycloak="http://localhost:8080"), id="keycloak-http-localhost"),
            pytest.param(urls(ziti="https://127.0.0.1:1280"), id="ziti-https-loopback"),
            pytest.param(urls(keycloak="https://auth.example.com", ziti="https://ziti.example.net"), id="example"),
        ],
    )
    def test_strict_false_allows_what_strict_refuses(self, config: dict[str, Any]) -> None:
        cfg = load("external", {**config, "strict": "false"})
        assert cfg.keycloak.url == config["keycloak"]["url"]
        assert cfg.ziti.controller_url == config["ziti"]["controllerUrl"]

    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            ({"kind": "docker-exec", "dockerHost": "ssh://root@10.1.0.5", "container": "spire-server"},
             ("ssh://root@10.1.0.5", "spire-server", None, None)),
            ({"kind": "docker-exec", "dockerHost": "ssh://root@10.1.0.5", "service": "spire_server"},
             ("ssh://root@10.1.0.5", None, "spire_server", None)),
            ({"kind": "kubectl-exec", "namespace": "spire", "pod": "spire-server-0"}, (None, None, None, "spire")),
        ],
        ids=["docker-exec-container", "docker-exec-service", "kubectl-exec"],
    )  # fmt: skip
    def test_transports_of_your_server(self, fields: dict[str, str], expected: tuple[str | None, ...]) -> None:
        t = load("external", transport(**fields)).spire.transport
        assert (t.docker_host, t.container, t.service, t.namespace) == expected


# --- stacks that are refused: every problem, in one message ------------------------------------


@dataclass(frozen=True)
class Refused:
    """A stack `load` refuses with exactly `problems`: (key, what is wrong, the start of the fix)."""

    stack: str
    config: dict[str, Any]
    problems: list[tuple[str, str, str]]
    secrets: dict[str, str] | None = None
    operator: tuple[str, ...] = ADMIN_PASSWORDS


def case(id_: str, *args: Any, **kwargs: Any) -> Any:
    return pytest.param(Refused(*args, **kwargs), id=id_)


def set_(key: str) -> str:
    return f"pulumi config set --path '{key}' <value>`"


def rm(key: str) -> str:
    return f"pulumi config rm --path '{key}'`"


def secret(key: str) -> str:
    return f"pulumi config set --secret {key}`"


BROKEN = {
    "nodes": {"n1": {"dockerHost": "ssh://root@10.0.0.1"}},
    "keycloak": {"realm": "platform"},
    "ziti": {"controllerUrl": ZT_URL, "advertisedAddress": "ziti.zt.acme-identity.net"},
    "spire": spire(agents={"worker-1": AGENT, "worker-9": "spiffe://elsewhere.net/spire/agent/x/w9"}),
    "workloads": {"api": {"spiffePath": "/ns/a/sa/api", "node": "ghost", "selectors": ["unix:uid:1"]}},
}
NOT_IN_TD = "'spiffe://elsewhere.net/spire/agent/x/w9' is not a SPIFFE ID in the trust domain 'zt.acme-identity.net'"
PLAIN = "set in plain text; it is a secret"
HELPER = {"spiffePath": "/ns/a/sa/api", "node": "worker-1", "selectors": ["docker:label:app:api"], "svidHelper": True}
CA_FIX = "pulumi config set --path 'rootCa.certificate'"
STRICT_LOCAL = "points at localhost: set a name reachable by clients (strict mode)"
STRICT_EXAMPLE = "is a placeholder (example.*): set your real domain (strict mode)"

REFUSED = [
    # -- one message for a broken external stack
    case("broken-external-stack", "external", BROKEN, [
        ("nodes", "the program deploys nothing with platform external", "pulumi config rm nodes`"),
        ("keycloak.url", "required with platform external: your Keycloak's base URL", set_("keycloak.url")),
        ("ziti.advertisedAddress", "not used with platform external", rm("ziti.advertisedAddress")),
        ("workloads.api.node", "'ghost' is not a key of `spire.agents` (['worker-1', 'worker-9'])",
         set_("workloads.api.node")),
        ("spire.agents.worker-9", NOT_IN_TD, set_("spire.agents.worker-9")),
        ("zitiAdminPassword", "required with platform external", secret("zitiAdminPassword")),
    ], operator=("keycloakAdminPassword",)),
    # A bad field and a cross-section problem: both, so the user does not fix one to meet the next.
    case("field-error-with-cross-check", "external",
         {"rootCa": {"certificate": LEAF.cert}, "nodes": {"n1": {"dockerHost": "ssh://root@10.0.0.1"}}}, [
             ("rootCa.certificate", "is not a CA certificate", CA_FIX),
             ("nodes", "the program deploys nothing with platform external", "pulumi config rm nodes`"),
         ], {"rootCaKey": LEAF.key}),
    # -- secrets
    case("no-admin-passwords", "external", {}, [
        ("keycloakAdminPassword", "required with platform external: the password of keycloak.adminUser",
         secret("keycloakAdminPassword")),
        ("zitiAdminPassword", "required with platform external: the password of ziti.adminUser",
         secret("zitiAdminPassword")),
    ], operator=()),
    case("keycloak-password-in-plain-text", "external", {"keycloakAdminPassword": "plain-Kc-Pa55"},
         [("keycloakAdminPassword", PLAIN, secret("keycloakAdminPassword"))], operator=("zitiAdminPassword",)),
    case("ziti-password-in-plain-text", "external", {"zitiAdminPassword": "plain-Zt-Pa55"},
         [("zitiAdminPassword", PLAIN, secret("zitiAdminPassword"))], operator=("keycloakAdminPassword",)),
    case("root-key-in-plain-text", "external", {"rootCa": {"certificate": ROOT.cert}, "rootCaKey": ROOT.key},
         [("rootCaKey", PLAIN, secret("rootCaKey"))]),
    case("admin-passwords-on-swarm", "dev", {}, [
        ("keycloakAdminPassword", "not used with platform swarm: the program generates this password",
         "pulumi config rm keycloakAdminPassword`"),
        ("zitiAdminPassword", "not used with platform swarm: the program generates this password",
         "pulumi config rm zitiAdminPassword`"),
    ], {"keycloakAdminPassword": "kc-Pa55-1", "zitiAdminPassword": "zt-Pa55-1"}),
    case("root-key-without-root-ca", "external", {},
         [("rootCaKey", "set without rootCa.certificate: bring both, or neither", CA_FIX)], {"rootCaKey": ROOT.key}),
    case("root-ca-without-root-key", "external", {"rootCa": {"certificate": ROOT.cert}},
         [("rootCaKey", "required with rootCa: the PEM private key of the CA", secret("rootCaKey"))]),
    case("root-key-of-another-ca", "external", {"rootCa": {"certificate": ROOT.cert}},
         [("rootCaKey", "is not the private key of rootCa.certificate", secret("rootCaKey"))],
         {"rootCaKey": OTHER.key}),
    case("root-key-not-pem", "external", {"rootCa": {"certificate": ROOT.cert}},
         [("rootCaKey", "not an unencrypted PEM private key", secret("rootCaKey"))], {"rootCaKey": "hunter2-no-key"}),
    # -- the brought certificate
    case("root-ca-leaf", "external", {"rootCa": {"certificate": LEAF.cert}}, [
        ("rootCa.certificate",
         "is not a CA certificate (basicConstraints CA:TRUE is missing): bring the CA, not a leaf", CA_FIX),
    ], {"rootCaKey": LEAF.key}),
    case("root-ca-expired", "external", {"rootCa": {"certificate": EXPIRED.cert}},
         [("rootCa.certificate", "expired on 2021-03-16: bring a valid CA certificate", CA_FIX)],
         {"rootCaKey": EXPIRED.key}),
    case("root-ca-not-pem", "external", {"rootCa": {"certificate": "my root CA"}},
         [("rootCa.certificate", "not one PEM certificate: paste the CA certificate", CA_FIX)],
         {"rootCaKey": ROOT.key}),
    # -- strict mode on the connection URLs
    case("keycloak-http", "external", urls(keycloak="http://auth.zt.acme-identity.net"),
         [("keycloak.url", "'http://auth.zt.acme-identity.net' is plain http to a host other than this machine, "
                           "which the Keycloak provider refuses", set_("keycloak.url"))]),
    case("ziti-http", "external", urls(ziti="http://ziti.zt.acme-identity.net:1280"),
         [("ziti.controllerUrl", "'http://ziti.zt.acme-identity.net:1280' must be an https:// URL with a host "
                                 "(the controller only serves TLS)", set_("ziti.controllerUrl"))]),
    case("strict-keycloak-localhost", "external", urls(keycloak="https://localhost:8443"),
         [("keycloak.url", f"'https://localhost:8443' {STRICT_LOCAL}", set_("keycloak.url"))]),
    case("strict-ziti-loopback", "external", urls(ziti="https://127.0.0.1:1280"),
         [("ziti.controllerUrl", f"'https://127.0.0.1:1280' {STRICT_LOCAL}", set_("ziti.controllerUrl"))]),
    case("strict-keycloak-example", "external", urls(keycloak="https://auth.example.com"),
         [("keycloak.url", f"'https://auth.example.com' {STRICT_EXAMPLE}", set_("keycloak.url"))]),
    case("strict-ziti-example", "external", urls(ziti="https://ziti.example.net:1280"),
         [("ziti.controllerUrl", f"'https://ziti.example.net:1280' {STRICT_EXAMPLE}", set_("ziti.controllerUrl"))]),
    # -- SPIRE transport and workloads on external
    case("docker-exec-without-host-or-target", "external", transport(kind="docker-exec"), [
        ("spire.transport.dockerHost", "required for docker-exec with platform external",
         set_("spire.transport.dockerHost")),
        ("spire.transport.container", "set exactly one of container or service (docker-exec)", "pulumi config "),
    ]),
    case("docker-exec-container-and-service", "external",
         transport(kind="docker-exec", dockerHost="ssh://root@10.1.0.5", container="spire-server", service="spire"),
         [("spire.transport.container", "set exactly one of container or service (docker-exec)", "pulumi config ")]),
    case("transport-names-a-swarm-node", "external",
         transport(kind="docker-exec", node="manager-1", dockerHost="ssh://root@10.1.0.5", container="spire-server"),
         [("spire.transport.node", "names a Swarm node; with platform external use dockerHost",
           rm("spire.transport.node"))]),
    case("svid-helper-on-external", "external", {"workloads": {"api": HELPER}},
         [("workloads.api.svidHelper", "run spiffe-helper next to your workload", rm("workloads.api.svidHelper"))]),
    case("workloads-without-agents", "external", {"spire": {"trustDomain": TD, "transport": GRPC}}, [
        ("spire.agents", "required for workloads with platform external", set_("spire.agents")),
        ("workloads.payments-api.node", "'worker-1' is not a key of `spire.agents` ([])",
         set_("workloads.payments-api.node")),
    ]),
    case("spire-datastore-on-external", "external", {"spire": spire(datastore="postgres")},
         [("spire.datastore", "not used with platform external", rm("spire.datastore"))]),
    case("keycloak-hostname-on-external", "external", {"keycloak": {"url": KC_URL, "hostname": "auth.acme.net"}},
         [("keycloak.hostname", "not used with platform external", rm("keycloak.hostname"))]),
    # -- swarm refuses what only external uses
    case("swarm-spire-agents", "prod",
         {"spire": {"trustDomain": TD, "transport": SWARM_TRANSPORT, "agents": {"worker-1": AGENT}}},
         [("spire.agents", "swarm runs one agent per node (keys of `nodes`): remove it",
           rm("spire.agents"))]),
    case("swarm-keycloak-url", "prod", {"keycloak": {**SWARM_KEYCLOAK, "url": KC_URL}},
         [("keycloak.url", "not used with platform swarm", rm("keycloak.url"))]),
    case("swarm-keycloak-jwks-url", "prod", {"keycloak": {**SWARM_KEYCLOAK, "jwksUrl": f"{KC_URL}/realms/p/certs"}},
         [("keycloak.jwksUrl", "not used with platform swarm", rm("keycloak.jwksUrl"))]),
    case("swarm-ziti-controller-url", "prod", {"ziti": {**SWARM_ZITI, "controllerUrl": ZT_URL}},
         [("ziti.controllerUrl", "not used with platform swarm", rm("ziti.controllerUrl"))]),
    case("swarm-docker-exec-docker-host", "prod",
         {"spire": {"trustDomain": TD, "transport": {**SWARM_TRANSPORT, "dockerHost": "ssh://root@10.114.0.2"}}},
         [("spire.transport.dockerHost", "not used with platform swarm", rm("spire.transport.dockerHost"))]),
]  # fmt: skip


def secret_texts(case_: Refused) -> list[str]:
    """What no message may contain: each secret value, and a line of each key's base64 body."""
    values = [v for k, v in {**case_.config, **(case_.secrets or {})}.items() if k in SECRET_KEYS]
    return [v.splitlines()[1] if v.startswith("-----BEGIN") else v for v in values]


class TestRefused:
    @pytest.mark.parametrize("refused", REFUSED)
    def test_every_problem_in_one_message_with_its_key_and_fix(self, refused: Refused) -> None:
        with engine(refused.stack, refused.config, refused.secrets, refused.operator), pytest.raises(ConfigError) as e:
            stack_config.load()
        head, *lines = str(e.value).split("\n  ")
        assert head == "invalid stack configuration:", str(e.value)
        for key, hint, fix in refused.problems:
            found = [ln for ln in lines if ln.startswith(f"{P}:{key}: ")]
            assert len(found) == 1, f"expected one line for {P}:{key} in:\n" + "\n".join(lines)
            assert hint in found[0], found[0]
            assert f"(fix: `{fix}" in found[0], found[0]
        assert len(lines) == len(refused.problems), "\n".join(lines)
        for text in secret_texts(refused):
            assert text not in str(e.value), "the message repeats a secret value"
