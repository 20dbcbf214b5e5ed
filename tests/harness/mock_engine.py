"""Run `__main__.py` (or any component code) under Pulumi's own mock engine.

The program is evaluated exactly as `pulumi preview` / `pulumi up` would run it, except that the
resource monitor is `pulumi.runtime.mocks.MockMonitor`: every RegisterResource request is recorded
(type, name, parent, inputs, dependencies, options) and answered with a fake id and state.

Configuration comes from the real `Pulumi.<stack>.yaml` plus the project defaults in
`Pulumi.yaml`; `secure:` values are replaced by recognisable test values (`MOCK_SECRETS`), so a
test can look for them anywhere they must not appear (environment variables, plain outputs).
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import json
import runpy
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pulumi.runtime import mocks as pmocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.sync_await import _sync_await

ROOT = Path(__file__).resolve().parents[2]
PROJECT = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["name"]

# Value substituted for every `secure:` entry; the key is appended so each one is distinct.
SECRET_PREFIX = "mock-secret-value-"


# What an operator sets with `pulumi config set --secret` before the first preview, per the
# stack file's own comments (platform external: the admin passwords of their servers; prod: the
# DigitalOcean credentials). Stack files hold no placeholder for them.
OPERATOR_SECRETS = {
    "platform external": (f"{PROJECT}:keycloakAdminPassword", f"{PROJECT}:zitiAdminPassword"),
    "environment prod": ("digitalocean:token", "digitalocean:spacesAccessId", "digitalocean:spacesSecretKey"),
}


def stack_files() -> list[str]:
    """Names of every stack with a `Pulumi.<stack>.yaml` file in the project."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))


def stack_platform(stack: str) -> str:
    """The `platform` a stack file selects (swarm when unset)."""
    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}
    return str((doc.get("config") or {}).get(f"{PROJECT}:platform", "swarm"))


def swarm_stack_files() -> list[str]:
    """The stacks whose program runs the servers as Swarm stacks."""
    return [s for s in stack_files() if stack_platform(s) == "swarm"]


def stack_config(stack: str) -> tuple[dict[str, str], list[str]]:
    """The config map the CLI would hand the program for `stack`, and its secret keys.

    Project-level defaults from `Pulumi.yaml` apply first; object and list values are
    JSON-encoded, as the CLI does; `secure:` values become `SECRET_PREFIX + key`.
    """
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    values: dict[str, str] = {}
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, dict) and "default" in decl:
            values[f"{PROJECT}:{key}"] = _encode(decl["default"])
    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}
    secret_keys: list[str] = []
    for key, value in (doc.get("config") or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[full] = SECRET_PREFIX + full.replace(":", "-")
            secret_keys.append(full)
        else:
            values[full] = _encode(value)
    environment = str((doc.get("config") or {}).get(f"{PROJECT}:environment", ""))
    platform = stack_platform(stack)
    needed = [*OPERATOR_SECRETS.get(f"platform {platform}", ())]
    if platform == "swarm":
        needed += OPERATOR_SECRETS.get(f"environment {environment}", ())
    for full in needed:
        if full not in values:
            values[full] = SECRET_PREFIX + full.replace(":", "-")
            secret_keys.append(full)
    return values, secret_keys


def _encode(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


@dataclass(frozen=True)
class Registered:
    """One RegisterResource call, as the engine received it."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    provider: str
    dependencies: tuple[str, ...]
    additional_secret_outputs: tuple[str, ...]
    delete_before_replace: bool
    protect: bool
    ignore_changes: tuple[str, ...]
    # What this resource's `aliases` name: earlier parents' URNs and earlier names.
    alias_parents: tuple[str, ...] = ()
    alias_names: tuple[str, ...] = ()
    alias_urns: tuple[str, ...] = ()  # aliases given as whole URNs


@dataclass(frozen=True)
class Export:
    value: Any
    secret: bool


@dataclass
class ProgramRun:
    """What one evaluation of the program registered and exported."""

    stack: str
    preview: bool
    resources: list[Registered]
    exports: dict[str, Export]
    secret_values: list[str] = field(default_factory=list)

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def get(self, type_: str, name: str) -> Registered:
        found = [r for r in self.resources if r.type == type_ and r.name == name]
        if len(found) != 1:
            names = sorted(r.name for r in self.of_type(type_))
            raise KeyError(f"{type_} {name!r}: found {len(found)}; registered names of that type: {names}")
        return found[0]

    def by_urn(self, urn: str) -> Registered:
        for r in self.resources:
            if r.urn == urn:
                return r
        raise KeyError(urn)

    def children(self, parent: Registered) -> list[Registered]:
        return [r for r in self.resources if r.parent == parent.urn]

    def ancestors(self, r: Registered) -> list[Registered]:
        out = []
        while r.parent and not r.parent.endswith("pulumi:pulumi:Stack::" + f"{PROJECT}-{self.stack}"):
            try:
                r = self.by_urn(r.parent)
            except KeyError:
                break
            out.append(r)
        return out


class DefaultMocks(pmocks.Mocks):
    """Answers every resource with its inputs plus a few computed fields real providers return."""

    def __init__(self, preview: bool) -> None:
        self.preview = preview

    def new_resource(self, args: pmocks.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        state = dict(args.inputs)
        computed = COMPUTED.get(args.typ)
        if computed is not None and not self.preview:
            state.update(computed(args))
        rid = None if self.preview else f"{args.name}-id"
        return rid, state

    def call(self, args: pmocks.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        # An empty failure list, not None: MockMonitor.Invoke iterates it.
        answer = CALLS.get(args.token)
        return (answer(args) if answer is not None else {}), []


def _tls_private_key(args: pmocks.MockResourceArgs) -> dict[str, Any]:
    return {
        "privateKeyPem": (
            f"-----BEGIN PRIVATE KEY-----\n{SECRET_PREFIX}tls-key-{args.name}\n-----END PRIVATE KEY-----\n"
        ),
        "publicKeyPem": f"-----BEGIN PUBLIC KEY-----\npub-{args.name}\n-----END PUBLIC KEY-----\n",
    }


@functools.cache
def mock_cert_pem(name: str) -> str:
    """The certificate the mock engine gives the pulumi-tls resource `name`: a real self-signed CA
    certificate (CN = name, one per name and process), so program code that reads certificates
    (the enterprise topology's seed bundles) runs on it as on pulumi-tls's."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big"))
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _tls_cert(args: pmocks.MockResourceArgs) -> dict[str, Any]:
    return {"certPem": mock_cert_pem(args.name)}


def _random_password(args: pmocks.MockResourceArgs) -> dict[str, Any]:
    return {"result": f"{SECRET_PREFIX}password-{args.name}"}


def _spaces_key(args: pmocks.MockResourceArgs) -> dict[str, Any]:
    return {"accessKey": f"AKMOCK{args.name.upper()[:10]}", "secretKey": f"{SECRET_PREFIX}spaces-key-{args.name}"}


def _spaces_bucket(args: pmocks.MockResourceArgs) -> dict[str, Any]:
    region = args.inputs.get("region", "fra1")
    name = args.inputs.get("name", args.name)
    return {
        "bucketDomainName": f"{name}.{region}.digitaloceanspaces.com",
        "endpoint": f"{region}.digitaloceanspaces.com",
        "urn": f"do:space:{name}",
    }


def unwrap_secret(value: Any) -> Any:
    """The plain value of a recorded input that the SDK serialized as a secret."""
    if isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig:
        return value.get("value")
    return value


# Dynamic resources: the outputs our providers compute on create (the mock never runs them; the
# engine-path tests in tests/dynamic_providers/ do).
def _keycloak_realm(args: pmocks.MockResourceArgs) -> dict[str, Any]:
    conn = unwrap_secret(args.inputs.get("connection") or {})
    issuer = f"{conn.get('url', 'https://keycloak')}{conn.get('base_path') or ''}/realms/{args.inputs.get('realm')}"
    return {"issuer_url": issuer, "jwks_url": f"{issuer}/protocol/openid-connect/certs"}


def _ziti_ca(args: pmocks.MockResourceArgs) -> dict[str, Any]:
    digest = hashlib.sha256(str(args.inputs.get("cert_pem")).encode()).hexdigest()
    return {
        "fingerprint": digest,
        "is_verified": True,
        "enrollment_jwt": f"{SECRET_PREFIX}ziti-ca-jwt-{args.name}",
    }


def _ziti_router(args: pmocks.MockResourceArgs) -> dict[str, Any]:
    return {"enrollment_jwt": f"{SECRET_PREFIX}router-jwt-{args.name}", "is_verified": False}


def _spire_entry(args: pmocks.MockResourceArgs) -> dict[str, Any]:
    digest = hashlib.sha256(str(args.inputs.get("spiffe_id")).encode()).hexdigest()[:16]
    return {"entry_id": f"pulumi.{PROJECT}.mock.{digest}", "revision_number": 0, "created_at": 1_700_000_000}


def _k8s_service(args: pmocks.MockResourceArgs) -> dict[str, Any]:
    """The cluster IP the API server allocates to a Service (from its default 10.96.0.0/12 range)."""
    spec = dict(args.inputs.get("spec") or {})
    index = zlib.crc32(args.name.encode()) % 65000 + 10
    spec.setdefault("clusterIP", f"10.96.{index // 250}.{index % 250}")  # "None": headless, kept
    return {"spec": spec}


def mock_sa_token(name: str) -> str:
    """The token the mock engine's token controller puts in the service-account-token Secret `name`."""
    return f"{SECRET_PREFIX}sa-token-{name}"


def _k8s_secret(args: pmocks.MockResourceArgs) -> dict[str, Any]:
    """A `kubernetes.io/service-account-token` Secret as pulumi-kubernetes returns it once the
    cluster's token controller filled it (the provider waits for that): `data` with the token,
    the cluster CA and the namespace, base64. Other Secrets: their inputs."""
    if args.inputs.get("type") != "kubernetes.io/service-account-token":
        return {}
    meta = args.inputs.get("metadata") or {}
    plain = {"token": mock_sa_token(args.name), "ca.crt": mock_cert_pem(f"{args.name}-cluster-ca"),
             "namespace": str(meta.get("namespace", ""))}
    return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in plain.items()}}


COMPUTED: dict[str, Callable[[pmocks.MockResourceArgs], dict[str, Any]]] = {
    "kubernetes:core/v1:Service": _k8s_service,
    "kubernetes:core/v1:Secret": _k8s_secret,
    "pulumi-python:dynamic/keycloak:Realm": _keycloak_realm,
    "pulumi-python:dynamic/ziti:CertificateAuthority": _ziti_ca,
    "pulumi-python:dynamic/ziti:EdgeRouter": _ziti_router,
    "pulumi-python:dynamic/spire:Entry": _spire_entry,
    "tls:index/privateKey:PrivateKey": _tls_private_key,
    "tls:index/selfSignedCert:SelfSignedCert": _tls_cert,
    "tls:index/locallySignedCert:LocallySignedCert": _tls_cert,
    "random:index/randomPassword:RandomPassword": _random_password,
    "digitalocean:index/spacesKey:SpacesKey": _spaces_key,
    "digitalocean:index/spacesBucket:SpacesBucket": _spaces_bucket,
}


def _get_network(args: pmocks.MockCallArgs) -> dict[str, Any]:
    name = args.args.get("name", "network")
    return {"id": f"{name}-id", "name": name, "driver": "overlay", "scope": "swarm"}


# Data-source invokes answered like the real provider would (by token).
CALLS: dict[str, Callable[[pmocks.MockCallArgs], dict[str, Any]]] = {
    "docker:index/getNetwork:getNetwork": _get_network,
}


class RecordingMonitor(pmocks.MockMonitor):
    """MockMonitor that also keeps each request's parent, dependencies and options."""

    def __init__(self, mocks: pmocks.Mocks) -> None:
        super().__init__(mocks)
        self.registered: list[Registered] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registered.append(
                Registered(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    parent=request.parent,
                    custom=bool(request.custom),
                    inputs=rpc.deserialize_properties(request.object),
                    provider=request.provider,
                    dependencies=tuple(request.dependencies),
                    additional_secret_outputs=tuple(request.additionalSecretOutputs),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    protect=bool(request.protect),
                    ignore_changes=tuple(request.ignoreChanges),
                    alias_parents=tuple(
                        a.spec.parentUrn for a in request.aliases if a.HasField("spec") and a.spec.parentUrn
                    ),
                    alias_names=tuple(a.spec.name for a in request.aliases if a.HasField("spec") and a.spec.name),
                    alias_urns=tuple(a.urn for a in request.aliases if a.HasField("urn")),
                )
            )
        return response


@contextmanager
def mocked_engine(
    stack: str = "dev",
    preview: bool = False,
    mocks: pmocks.Mocks | None = None,
    config: dict[str, str] | None = None,
    secret_keys: list[str] | None = None,
) -> Iterator[RecordingMonitor]:
    """Install the mock engine with `stack`'s config; restore the previous settings afterwards."""
    old_settings = settings.SETTINGS
    old_config = pulumi.runtime.config.CONFIG.get()
    old_secret = pulumi.runtime.config._SECRET_KEYS.get()
    old_root = settings.ROOT.get()
    values, secrets = stack_config(stack)
    values.update(config or {})
    monitor = RecordingMonitor(mocks or DefaultMocks(preview))
    # A fresh root Stack per run: otherwise exports of an earlier run leak into this one.
    settings.ROOT.set(None)
    pmocks.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(values, secret_keys=secrets + list(secret_keys or []))
    try:
        yield monitor
    finally:
        settings.configure(old_settings)
        settings.ROOT.set(old_root)
        pulumi.runtime.config.CONFIG.set(old_config)
        pulumi.runtime.config._SECRET_KEYS.set(old_secret)


def run(
    body: Callable[[], Any],
    stack: str = "dev",
    preview: bool = False,
    mocks: pmocks.Mocks | None = None,
    config: dict[str, str] | None = None,
) -> ProgramRun:
    """Evaluate `body` (program code) under the mock engine and collect resources and exports. An
    error the program fails with carries `registered`: what the engine was sent all the same."""
    with mocked_engine(stack, preview, mocks, config) as monitor:
        settings.SETTINGS.rpc_manager.clear()
        settings.SETTINGS.outputs.clear()
        exports: dict[str, Export] = {}

        async def collect() -> None:
            root = settings.get_root_resource()
            outputs: dict[str, Any] = getattr(root, "outputs", {}) or {}
            for key, value in outputs.items():
                out = pulumi.Output.from_input(value)
                exports[key] = Export(await out.future(with_unknowns=True), bool(await out.is_secret()))

        def program() -> Any:
            body()
            from pulumi.runtime.stack import wait_for_rpcs

            async def finish() -> None:
                await wait_for_rpcs()
                await collect()

            return finish()

        from pulumi.runtime.stack import run_pulumi_func

        try:
            _sync_await(run_pulumi_func(program))
        except Exception as e:
            e.registered = list(monitor.registered)  # type: ignore[attr-defined]  # what reached the engine anyway
            raise
        _, secret_keys = stack_config(stack)
        secret_values = [SECRET_PREFIX + k.replace(":", "-") for k in secret_keys]
        return ProgramRun(stack, preview, list(monitor.registered), exports, secret_values)


def run_program(stack: str = "dev", preview: bool = False, config: dict[str, str] | None = None) -> ProgramRun:
    """Evaluate the project's real `__main__.py` for `stack`."""

    def body() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

    return run(body, stack=stack, preview=preview, config=config)
