"""SPIRE server and agent, built from the Go module `github.com/spiffe/spire` at the pinned version.

`start` runs the server from the `server.conf` the program renders for the dev stack
(`components.spire_stack.build_server_conf`, the same model the Swarm service ships) and one agent
from its `agent.conf` (`build_agent_conf`), with every container path remapped into the run
directory and every port onto a free loopback port (`remap`). The PKI is made as `SpireStack`
makes it with pulumi-tls, here with `cryptography`: a P-384 root CA that the server uses as
`UpstreamAuthority "disk"` (and the agent as its bootstrap bundle), a separate P-384 x509pop CA,
and a P-256 node certificate (CN = the node's name) signed by it, so the agent attests as
`spiffe://<td>/spire/agent/x509pop/<node>` exactly as in the stack.

`prepare` (the files, no processes) and `start_server` / `start_agent` are public so tests can
start further servers from the same rendering (a restored datastore, the prod stack's config).
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel

from servers import toolchain
from servers.errors import ServerError
from servers.process import Proc, Run, free_port
from stack_config import versions

NAME = "spire"
MODULE = "spire"
PACKAGES = ("github.com/spiffe/spire/cmd/spire-server", "github.com/spiffe/spire/cmd/spire-agent")
# What SPIRE's own Makefile passes for a release build (`version.gittag` without the "v").
LDFLAGS = f"-s -w -X github.com/spiffe/spire/pkg/common/version.gittag={versions.SPIRE}"
SERVER_READY_SECONDS = 90
AGENT_READY_SECONDS = 90
UNIX_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL
REPO = Path(__file__).resolve().parent.parent
NOT_FILES = frozenset({"live_path", "ready_path", "agent_path_template"})  # URL and SPIFFE ID paths

M = TypeVar("M", bound=BaseModel)


def bin_dir() -> Path:
    """The cache entry's bin dir (builds on first use; seconds when it is there)."""
    return toolchain.go_build(NAME, versions.SPIRE, MODULE, PACKAGES, LDFLAGS)


# --- the stack's configuration, as `pulumi` would hand it to the program ----------------------


def stack_config(stack: str = "dev") -> Any:
    """`stack_config.StackConfig` of `Pulumi.<stack>.yaml` with the `Pulumi.yaml` defaults.

    Only this project's keys (the program reads nothing else); `secure:` values are not needed
    for SPIRE's configs and are left out."""
    import stack_config as sc

    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    prefix = f"{project['name']}:"
    raw: dict[str, Any] = {}
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, dict) and "default" in decl:
            raw[key.removeprefix(prefix)] = decl["default"]
    doc = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text()) or {}
    for key, value in (doc.get("config") or {}).items():
        if ":" in key and not key.startswith(prefix):
            continue
        if isinstance(value, dict) and set(value) == {"secure"}:
            continue
        raw[key.removeprefix(prefix)] = value
    return sc.parse(raw)


# --- remapping container paths and ports onto this machine ------------------------------------


def remap(model: M, paths: Mapping[str, Path], values: Mapping[str, Any], root: Path) -> M:
    """`model` with every string under a container directory of `paths` moved to its local
    directory and each dotted key of `values` (`server.bind_port`) set; validated again.

    Fails when an absolute path is left outside `root`: a path the stack added without a
    mapping here would otherwise point the local server at `/etc/...` or `/run/...`."""
    data = model.model_dump()

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            for container, local in paths.items():
                if value == container or value.startswith(container + "/"):
                    return str(local) + value[len(container) :]
        return value

    data = walk(data)
    for dotted, value in values.items():
        *parents, last = dotted.split(".")
        node = data
        for p in parents:
            node = node[p]
        node[last] = value
    out = type(model).model_validate(data)

    def stray(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k not in NOT_FILES:
                    stray(v, f"{where}.{k}" if where else k)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                stray(v, f"{where}[{i}]")
        elif isinstance(value, str) and value.startswith("/") and not value.startswith(str(root)):
            raise ServerError(NAME, f"{type(model).__name__} {where} = {value!r}: no local mapping in servers/spire.py")

    stray(out.model_dump(), "")
    return out


# --- PKI, made like SpireStack makes it (components/spire_stack.py, docker_helpers.self_signed_ca)


def _name(common_name: str) -> x509.Name:
    from stack_config import PROJECT

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, PROJECT)])


def _usage(*, key_encipherment: bool = False, signs: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=key_encipherment,
                         data_encipherment=False, key_agreement=False, key_cert_sign=signs, crl_sign=signs,
                         encipher_only=False, decipher_only=False)


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey,
             validity_hours: int, *, ca: bool, usage: x509.KeyUsage) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=validity_hours))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
    )


def self_signed_ca(common_name: str, validity_hours: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """pulumi-tls `SelfSignedCert` as `self_signed_ca` asks for it: ECDSA P-384, CA, subject key
    id, cert_signing + crl_signing + digital_signature."""
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (
        _builder(_name(common_name), _name(common_name), key, validity_hours, ca=True, usage=_usage(signs=True))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def intermediate_ca(common_name: str, root_key: ec.EllipticCurvePrivateKey, root: x509.Certificate,
                    validity_hours: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """`components.intermediate_ca.IntermediateCa` (pulumi-tls `LocallySignedCert`, CA): ECDSA
    P-384 signed by the root, cert_signing + crl_signing + digital_signature."""
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (
        _builder(_name(common_name), root.subject, key, validity_hours, ca=True, usage=_usage(signs=True))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    return key, cert


def node_certificate(node: str, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate,
                     validity_hours: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The agent's x509pop certificate as `SpireStack._agent` makes it: ECDSA P-256, CN = node,
    digital_signature + key_encipherment, client_auth."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(_name(node), ca.subject, key, validity_hours, ca=False, usage=_usage(key_encipherment=True))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class Pki:
    root_cert: Path
    root_key: Path
    x509pop_ca_cert: Path
    x509pop_ca_key: Path
    node_cert: Path
    node_key: Path
    node: str


def make_pki(directory: Path, config: Any, node: str) -> Pki:
    from components import spire_stack as stack

    directory.mkdir(parents=True, exist_ok=True)
    td, hours = config.spire.trust_domain, config.spire.root_ca_validity_hours
    root_key, root = self_signed_ca(stack.ROOT_CA_CN.format(trust_domain=td), hours)
    pop_key, pop = self_signed_ca(stack.X509POP_CA_CN.format(trust_domain=td), hours)
    node_key, node_cert = node_certificate(node, pop_key, pop, stack.NODE_CERT_HOURS)
    pki = Pki(directory / "root-ca.pem", directory / "root-ca.key", directory / "x509pop-ca.pem",
              directory / "x509pop-ca.key", directory / "node.pem", directory / "node.key", node)
    for path, cert in ((pki.root_cert, root), (pki.x509pop_ca_cert, pop), (pki.node_cert, node_cert)):
        path.write_text(_pem(cert))
    for path, key in ((pki.root_key, root_key), (pki.x509pop_ca_key, pop_key), (pki.node_key, node_key)):
        _write_key(path, key)
    return pki


# --- one server + agent layout -------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """The files of one SPIRE server (and its agent) under `home`, rendered and remapped."""

    home: Path
    stack: str
    trust_domain: str
    server_conf: Path
    agent_conf: Path
    server_port: int
    admin_socket: Path
    agent_socket: Path
    server_data: Path
    agent_data: Path
    server_health_port: int
    agent_health_port: int
    agent_spiffe_id: str
    pki: Pki


def prepare(home: Path, stack: str = "dev", *, port: Callable[[], int] = free_port, pki: Pki | None = None,
            datastore: Any = None) -> Layout:
    """Render the stack's server.conf and agent.conf into `home`, paths and ports remapped.

    `pki` reuses another layout's CAs and node certificate (a restored server must keep its
    upstream root); otherwise a new PKI is made. `datastore` (a `spire_conf.Plugin`, already
    pointing at this machine) replaces the stack's SQLite one, e.g. the PostgreSQL variant."""
    from components import spire_stack as stack_mod
    from components.docker_helpers import SECRETS_DIR

    config = stack_config(stack)
    home.mkdir(parents=True, exist_ok=True)
    node = sorted(config.nodes)[0]
    if pki is None:
        pki = make_pki(home / "pki", config, node)
    server_dir, agent_dir = home / "server", home / "agent"
    dirs = {
        "server_conf": server_dir / "conf", "server_data": server_dir / "data",
        "server_private": server_dir / "private", "secrets": server_dir / "secrets",
        "agent_conf": agent_dir / "conf", "agent_data": agent_dir / "data", "agent_sockets": agent_dir / "sockets",
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(dirs["secrets"], 0o700)
    # The files the stack mounts, at the remapped paths (configs, Swarm secrets, container uploads).
    _link(pki.x509pop_ca_cert, dirs["server_conf"] / Path(stack_mod.X509POP_CA_PATH).name)
    _link(pki.root_cert, dirs["secrets"] / stack_mod.UPSTREAM_CERT)
    _link(pki.root_key, dirs["secrets"] / stack_mod.UPSTREAM_KEY)
    _link(pki.root_cert, dirs["agent_conf"] / "bootstrap.pem")
    _link(pki.node_cert, dirs["agent_conf"] / "node.pem")
    _link(pki.node_key, dirs["agent_conf"] / "node.key")

    server_port, server_health, agent_health = port(), port(), port()
    if datastore is None:
        if config.spire.datastore != "sqlite3":
            raise ServerError(NAME, f"Pulumi.{stack}.yaml: spire.datastore {config.spire.datastore!r}: pass the "
                                    "datastore plugin for this machine (prepare(datastore=...))")
        datastore = stack_mod.sqlite_datastore()
    server = remap(
        stack_mod.build_server_conf(config.spire, datastore),
        {
            stack_mod.SERVER_DATA: dirs["server_data"],
            stack_mod.SERVER_SOCKET_DIR: dirs["server_private"],
            str(Path(stack_mod.SERVER_CONF_PATH).parent): dirs["server_conf"],
            SECRETS_DIR: dirs["secrets"],
        },
        {
            "server.bind_address": "127.0.0.1",
            "server.bind_port": str(server_port),
            "health_checks.bind_address": "127.0.0.1",
            "health_checks.bind_port": str(server_health),
            "telemetry.prometheus.host": "127.0.0.1",
            "telemetry.prometheus.port": port(),
        },
        home,
    )
    agent = remap(
        stack_mod.build_agent_conf(config.spire.trust_domain),
        {
            "/var/lib/spire/agent": dirs["agent_data"],
            stack_mod.AGENT_SOCKET_DIR: dirs["agent_sockets"],
            stack_mod.AGENT_CONF_DIR: dirs["agent_conf"],
        },
        {
            "agent.server_address": "127.0.0.1",
            "agent.server_port": str(server_port),
            "health_checks.bind_address": "127.0.0.1",
            "health_checks.bind_port": str(agent_health),
            "telemetry.prometheus.host": "127.0.0.1",
            "telemetry.prometheus.port": port(),
        },
        home,
    )
    for sock in (server.server.socket_path, agent.agent.socket_path):
        if len(sock.encode()) > UNIX_PATH_MAX:
            raise ServerError(NAME, f"socket path {sock} is longer than the {UNIX_PATH_MAX}-byte Unix limit: "
                                    "use a shorter run directory (scripts/servers start --dir)")
    server_conf_path = dirs["server_conf"] / Path(stack_mod.SERVER_CONF_PATH).name
    server_conf_path.write_text(server.render())
    agent_conf_path = dirs["agent_conf"] / "agent.conf"
    agent_conf_path.write_text(agent.render())
    return Layout(
        home=home,
        stack=stack,
        trust_domain=config.spire.trust_domain,
        server_conf=server_conf_path,
        agent_conf=agent_conf_path,
        server_port=server_port,
        admin_socket=Path(server.server.socket_path),
        agent_socket=Path(agent.agent.socket_path),
        server_data=dirs["server_data"],
        agent_data=dirs["agent_data"],
        server_health_port=server_health,
        agent_health_port=agent_health,
        agent_spiffe_id=f"spiffe://{config.spire.trust_domain}/spire/agent/x509pop/{node}",
        pki=pki,
    )


def _link(src: Path, dst: Path) -> None:
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    dst.symlink_to(src)


def _ok(argv: list[str]) -> bool:
    return subprocess.run(argv, capture_output=True, timeout=15, check=False).returncode == 0


def start_server(run: Run, layout: Layout, bins: Path, name: str = "server") -> Proc:
    """`spire-server run` from the layout; ready when `spire-server healthcheck` passes."""
    proc = run.spawn(NAME, name, [str(bins / "spire-server"), "run", "-config", str(layout.server_conf)],
                     cwd=layout.home)
    run.wait_ready(
        proc,
        lambda: _ok([str(bins / "spire-server"), "healthcheck", "-socketPath", str(layout.admin_socket)]),
        timeout=SERVER_READY_SECONDS,
        what=f"spire-server healthcheck on {layout.admin_socket}",
    )
    return proc


def start_agent(run: Run, layout: Layout, bins: Path, name: str = "agent") -> Proc:
    """`spire-agent run` from the layout; ready when it has attested (its healthcheck passes)
    and the Workload API socket exists."""
    proc = run.spawn(NAME, name, [str(bins / "spire-agent"), "run", "-config", str(layout.agent_conf)],
                     cwd=layout.home)
    run.wait_ready(
        proc,
        lambda: layout.agent_socket.is_socket()
        and _ok([str(bins / "spire-agent"), "healthcheck", "-socketPath", str(layout.agent_socket)]),
        timeout=AGENT_READY_SECONDS,
        what=f"attested to the server (spire-agent healthcheck on {layout.agent_socket})",
    )
    return proc


def bundle_pem(bins: Path, socket: Path) -> str:
    out = subprocess.run([str(bins / "spire-server"), "bundle", "show", "-socketPath", str(socket)],
                         capture_output=True, text=True, timeout=30, check=False)
    if out.returncode != 0:
        raise ServerError(NAME, f"spire-server bundle show failed: {out.stderr.strip()}")
    return out.stdout


class Spire:
    name: ClassVar[str] = NAME
    version: ClassVar[str] = versions.SPIRE
    requires: ClassVar[tuple[str, ...]] = ()

    def install(self) -> None:
        bins = bin_dir()
        for b in ("spire-server", "spire-agent"):
            if not (bins / b).is_file():
                raise ServerError(NAME, f"the build reported success but {bins / b} is missing")

    def path_entries(self) -> list[Path]:
        return [toolchain.go_build_entry(NAME, versions.SPIRE, MODULE, PACKAGES, LDFLAGS) / "bin"]

    def reported_version(self) -> str:
        exe = self.path_entries()[0] / "spire-server"
        if not exe.is_file():
            raise ServerError(NAME, f"{exe} is missing: run `scripts/servers install spire`")
        try:
            done = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30, check=False)
        except OSError as e:
            raise ServerError(NAME, f"{exe} does not run: {e}") from e
        text = (done.stdout + done.stderr).strip()
        m = re.search(r"\d+\.\d+\.\d+\S*", text)
        return m.group(0) if m else text

    def start(self, run: Run, deps: dict[str, dict[str, Any]]) -> dict[str, Any]:
        bins = bin_dir()
        layout = prepare(run.dir(NAME), "dev", port=lambda: run.port(NAME))
        server = start_server(run, layout, bins)
        agent = start_agent(run, layout, bins)
        return {
            "stack": layout.stack,
            "trust_domain": layout.trust_domain,
            "server_address": "127.0.0.1",
            "server_port": layout.server_port,
            "admin_socket": str(layout.admin_socket),
            "agent_socket": str(layout.agent_socket),
            "agent_spiffe_id": layout.agent_spiffe_id,
            "health": {"server": f"http://127.0.0.1:{layout.server_health_port}/ready",
                       "agent": f"http://127.0.0.1:{layout.agent_health_port}/ready"},
            "bundle_pem": bundle_pem(bins, layout.admin_socket),
            "server_conf": str(layout.server_conf),
            "agent_conf": str(layout.agent_conf),
            "server_data": str(layout.server_data),
            "x509pop": {k: str(v) for k, v in asdict(layout.pki).items()},
            "bin_dir": str(bins),
            "pids": {"server": server.pid, "agent": agent.pid},
            "logs": {"server": server.log, "agent": agent.log},
        }


SERVER = Spire()
