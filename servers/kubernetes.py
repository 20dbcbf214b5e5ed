"""A real Kubernetes API server on loopback, without nodes: kube-apiserver and etcd built from their
Go modules at the pinned versions, started the way controller-runtime's envtest starts them.

Why a real API server and not a schema check: it is what refuses an object in production. It
runs every admission plugin of its version (PodSecurity on labelled namespaces, the
ServiceAccount plugin, the validation of every field and of RBAC escalation), authorizes every
request with RBAC, and answers TokenReview and SubjectAccessReview, so the platform's manifests,
its least-privilege roles and its pod security can be checked against what a cluster enforces. No
kubelet, scheduler or controller manager runs: objects are stored and admitted, pods are never
scheduled (a StatefulSet makes no pods), which is all the tests need.

Builds (`scripts/servers install kubernetes`, part of `install` without names):

- `kube-apiserver` from `k8s.io/kubernetes/cmd/kube-apiserver` (tools module `servers/go/kubernetes`;
  the staging modules `k8s.io/*` that k8s.io/kubernetes replaces with paths inside its own
  repository are replaced there by their published releases of the same version), stamped with its
  version as Kubernetes' release build does, so `/version` answers v1.37.2;
- `etcd` from `go.etcd.io/etcd/server/v3` (tools module `servers/go/etcd`).

`start` makes the PKI with `cryptography`: a CA, the serving certificate (127.0.0.1, localhost
and the in-cluster names), an admin client certificate (group `system:masters`) and the
service-account signing key; starts etcd (`--unsafe-no-fsync`, a throwaway store) and the API
server with RBAC authorization; waits for `/readyz`; and writes a kubeconfig (mode 0600: it
holds the admin key) with one context. The state section names that kubeconfig, never the key.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from servers import crds, spire, toolchain
from servers.errors import ServerError
from servers.process import Run
from stack_config import versions

NAME = "kubernetes"
MODULE = "kubernetes"
PACKAGE = "k8s.io/kubernetes/cmd/kube-apiserver"
ETCD_MODULE = "etcd"
ETCD_PACKAGE = "go.etcd.io/etcd/server/v3"
_MAJOR, _MINOR, _ = versions.KUBERNETES.split(".")
# What Kubernetes' release build stamps (hack/lib/version.sh), so clients see the real version.
LDFLAGS = " ".join(
    ["-s", "-w"]
    + [
        f"-X {pkg}.{var}={value}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for var, value in (("gitVersion", f"v{versions.KUBERNETES}"), ("gitMajor", _MAJOR), ("gitMinor", _MINOR),
                           ("gitTreeState", "clean"))
    ]
)
ETCD_LDFLAGS = "-s -w"
CONTEXT = "identity-platform-loopback"
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"  # the first address of SERVICE_CIDR: the `kubernetes` Service
ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "identity-platform-admin"
CERT_HOURS = 24 * 7
ETCD_READY_SECONDS = 60
APISERVER_READY_SECONDS = 240  # RBAC bootstrap and every post-start hook, on two busy cores


def apiserver_bin_dir() -> Path:
    return toolchain.go_build(NAME, versions.KUBERNETES, MODULE, (PACKAGE,), LDFLAGS)


def etcd_bin_dir() -> Path:
    return toolchain.go_build("etcd", versions.ETCD, ETCD_MODULE, (ETCD_PACKAGE,), ETCD_LDFLAGS, binary="etcd")


# --- PKI ---------------------------------------------------------------------------------------


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _issue(
    subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey,
    *, ca: bool, usage: list[x509.ObjectIdentifier], sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    """A certificate valid for a week (a test run's server lives minutes), made with the same
    builder as the SPIRE test PKI (`servers.spire`)."""
    b = spire._builder(subject, issuer, key, CERT_HOURS, ca=ca, usage=spire._usage(signs=ca))
    if usage:
        b = b.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_pki(home: Path) -> dict[str, Path]:
    """CA, serving and admin certificates and the service-account key pair, as files in `home`."""
    home.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("identity-platform loopback Kubernetes CA")
    ca = _issue(ca_name, ca_key, ca_name, ca_key, ca=True, usage=[])
    serving_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [
        x509.DNSName(n) for n in ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                  "kubernetes.default.svc.cluster.local")
    ]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", SERVICE_IP)]
    serving = _issue(_name("kube-apiserver"), serving_key, ca_name, ca_key, ca=False,
                     usage=[ExtendedKeyUsageOID.SERVER_AUTH], sans=sans)
    admin_key = ec.generate_private_key(ec.SECP256R1())
    # system:masters is bound to cluster-admin by the bootstrap policy.
    admin = _issue(_name(ADMIN_USER, "system:masters"), admin_key, ca_name, ca_key, ca=False,
                   usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = serialization.Encoding.PEM
    files = {
        "ca": home / "ca.pem",
        "serving_cert": home / "apiserver.pem",
        "serving_key": home / "apiserver-key.pem",
        "admin_cert": home / "admin.pem",
        "admin_key": home / "admin-key.pem",
        "sa_key": home / "sa-key.pem",
        "sa_pub": home / "sa.pub",
    }
    files["ca"].write_bytes(ca.public_bytes(pem))
    files["serving_cert"].write_bytes(serving.public_bytes(pem))
    spire._write_key(files["serving_key"], serving_key)
    files["admin_cert"].write_bytes(admin.public_bytes(pem))
    spire._write_key(files["admin_key"], admin_key)
    _write_private(files["sa_key"], sa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    files["sa_pub"].write_bytes(
        sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return files


def write_kubeconfig(path: Path, url: str, pki: dict[str, Path], context: str = CONTEXT) -> Path:
    """A kubeconfig with one cluster, user and context (the admin credential inline; mode 0600)."""
    import base64

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": url, "certificate-authority-data": b64(pki["ca"])}}],
        "users": [{"name": ADMIN_USER, "user": {"client-certificate-data": b64(pki["admin_cert"]),
                                                "client-key-data": b64(pki["admin_key"])}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": ADMIN_USER}}],
        "current-context": context,
    }
    _write_private(path, yaml.safe_dump(doc, sort_keys=False).encode())
    return path


def admin_client(section: dict[str, Any], timeout: float = 30) -> httpx.Client:
    """An httpx client for the API server of a state section, as the admin (verifies its CA)."""
    tls = ssl.create_default_context(cafile=section["ca_file"])
    tls.load_cert_chain(section["admin_cert"], section["admin_key"])
    return httpx.Client(base_url=section["url"], verify=tls, timeout=timeout)


# --- the server ------------------------------------------------------------------------------------


class Kubernetes:
    name: ClassVar[str] = NAME
    version: ClassVar[str] = versions.KUBERNETES
    requires: ClassVar[tuple[str, ...]] = ()

    def install(self) -> None:
        for bins, exe in ((apiserver_bin_dir(), "kube-apiserver"), (etcd_bin_dir(), "etcd")):
            if not (bins / exe).is_file():
                raise ServerError(NAME, f"the build reported success but {bins / exe} is missing")
        crds.install()  # the IAM design's CRDs (CNPG, Istio, ArgoCD), for the tests to create

    def path_entries(self) -> list[Path]:
        return [
            toolchain.go_build_entry(NAME, versions.KUBERNETES, MODULE, (PACKAGE,), LDFLAGS) / "bin",
            toolchain.go_build_entry("etcd", versions.ETCD, ETCD_MODULE, (ETCD_PACKAGE,), ETCD_LDFLAGS, "etcd")
            / "bin",
        ]

    def reported_version(self) -> str:
        """`kube-apiserver --version` (Kubernetes v1.37.2), without the v; etcd's must match its pin."""
        api, etcd = (p / exe for p, exe in zip(self.path_entries(), ("kube-apiserver", "etcd"), strict=True))
        for exe in (api, etcd):
            if not exe.is_file():
                raise ServerError(NAME, f"{exe} is missing: run `scripts/servers install kubernetes`")
        out = _version_output(api)
        m = re.search(r"Kubernetes v(\S+)", out)
        if m is None:
            raise ServerError(NAME, f"{api} --version printed {out!r}")
        etcd_out = _version_output(etcd)
        e = re.search(r"etcd Version: (\S+)", etcd_out)
        if e is None or e.group(1) != versions.ETCD:
            raise ServerError(NAME, f"{etcd} reports {etcd_out!r}, not etcd {versions.ETCD}")
        return m.group(1)

    def start(self, run: Run, deps: dict[str, dict[str, Any]]) -> dict[str, Any]:
        api_bins, etcd_bins = apiserver_bin_dir(), etcd_bin_dir()
        home = run.dir(NAME)
        pki = make_pki(home / "pki")
        client_port, peer_port = run.port(NAME), run.port(NAME)
        etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        etcd = run.spawn(NAME, "etcd", [
            str(etcd_bins / "etcd"), "--name", "default", "--data-dir", str(home / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"default={peer_url}", "--unsafe-no-fsync", "--log-level", "warn",
        ])

        def etcd_ready() -> bool:
            return bool(httpx.get(f"{etcd_url}/health", timeout=2).json().get("health") == "true")

        run.wait_ready(etcd, etcd_ready, timeout=ETCD_READY_SECONDS, what=f"/health on {etcd_url}")
        port = run.port(NAME)
        url = f"https://127.0.0.1:{port}"
        api = run.spawn(NAME, "kube-apiserver", [
            str(api_bins / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
            # Loopback cannot be the `kubernetes` Service's endpoint; no pod here needs that Service.
            "--endpoint-reconciler-type=none",
            f"--cert-dir={home / 'certs'}",
            f"--tls-cert-file={pki['serving_cert']}", f"--tls-private-key-file={pki['serving_key']}",
            f"--client-ca-file={pki['ca']}",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={pki['sa_pub']}", f"--service-account-signing-key-file={pki['sa_key']}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC",
            # The SPIRE agent DaemonSet runs with hostPID: the API server refuses such pods otherwise.
            "--allow-privileged=true",
            # Admission webhooks (the CNPG operator's) reach their Service through its endpoints, not
            # its cluster IP: nothing routes cluster IPs here, so each call would leave the machine and
            # wait out the webhook's timeout where nothing answers; with no pod behind it, it fails at once.
            "--enable-aggregator-routing=true",
        ])
        section: dict[str, Any] = {
            "url": url,
            "ca_file": str(pki["ca"]),
            "admin_cert": str(pki["admin_cert"]),
            "admin_key": str(pki["admin_key"]),
        }

        def api_ready() -> bool:
            with admin_client(section, timeout=5) as c:
                return c.get("/readyz").status_code == 200

        run.wait_ready(api, api_ready, timeout=APISERVER_READY_SECONDS, what=f"/readyz on {url}", interval=1)
        kubeconfig = write_kubeconfig(home / "kubeconfig", url, pki)
        return {
            **section,
            "kubeconfig": str(kubeconfig),
            "context": CONTEXT,
            "etcd_url": etcd_url,
            "service_account_issuer": ISSUER,
            "bin_dirs": [str(api_bins), str(etcd_bins)],
            "pids": {"etcd": etcd.pid, "kube-apiserver": api.pid},
            "logs": {"etcd": etcd.log, "kube-apiserver": api.log},
        }


def _version_output(exe: Path) -> str:
    try:
        done = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError as e:
        raise ServerError(NAME, f"{exe} does not run: {e}") from e
    return (done.stdout + done.stderr).strip()


SERVER = Kubernetes()
