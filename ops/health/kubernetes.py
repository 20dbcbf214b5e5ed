"""The Kubernetes part of `ops status` (platform kubernetes): the readiness of the platform's
workloads, read from the API server of each cluster of `kubernetes.clusters`.

How a cluster is reached: the stack's own kubeconfig path and context (`kubernetes.clusters.<name>`;
without a path `$KUBECONFIG`'s first file, else ~/.kube/config; without a context the file's
current one), as the program's providers reach it. From that context: the server URL, its CA
(`certificate-authority-data` or `certificate-authority`, else the system's roots;
`insecure-skip-tls-verify` is honoured and said so in the row), and the user's client certificate
and key, bearer token (`token`, `tokenFile`) or exec credential plugin (`client.authentication.k8s.io`
ExecCredential: its `status.token` or client certificate), which covers the managed clusters'
login helpers. Plain httpx with that TLS: the official `kubernetes` client is not a dependency and
the checks are a few GETs (`GET /version` and the lists below).

Rows (component `kubernetes`, one per object, check `<cluster> <namespace>/<name>`):

- `<cluster> API server`: `/version` answers (ok), or fail with why (TLS, refused, 401/403);
  when it fails, every object expected there fails as not checked.
- Every StatefulSet, Deployment and DaemonSet labelled `app.kubernetes.io/part-of=identity-platform`
  (every workload this program makes), and those the topology must have even when missing (fail
  "not found"): the SPIRE server and its PostgreSQL (StatefulSets, basic/enterprise), the agents
  and the SPIFFE CSI driver (DaemonSets), Keycloak (Deployment, kubernetes.iam), the Ziti
  controller and router (StatefulSets, kubernetes.ziti):
  ready against desired replicas (StatefulSet, Deployment: `spec.replicas`, default 1, against
  `status.readyReplicas`; DaemonSet: `status.desiredNumberScheduled` against `status.numberReady`).
  ok when all are ready, warn when some are or none is desired (scaled to 0; a DaemonSet no node
  runs), fail when none is ready. A status the controller has not yet written for the current
  spec (`status.observedGeneration` < `metadata.generation`) is said so in the detail.
- The CloudNativePG `Cluster` of Keycloak's database (kubernetes.iam): `status.readyInstances`
  against `spec.instances`, and `status.phase` (ok only in "Cluster in healthy state").
- Nested enterprise stacks (`kubernetes.enterprise.nesting: spire`), in the upstream cluster: the
  Secret `spire-server/spire-server-downstream-kubeconfig` the upstream server reviews the
  downstream cluster's upstream agents with (`pulumi up` makes it with
  `kubernetes.enterprise.downstream.apiServer`, the operator otherwise): ok when present, warn when
  not found (those agents cannot attest, so the nested server gets no CA) or when the kubeconfig
  may not read it (403). Read as metadata only (`PartialObjectMetadata`): its data never reaches ops.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml

from components.kubernetes.iam import DB_CLUSTER, IAM_NAMESPACE, KEYCLOAK
from components.kubernetes.spire_agents import CSI_NAME
from components.kubernetes.spire_config import (
    AGENT_NAME,
    DATABASE_NAME,
    PEER_KUBECONFIG_SECRET,
    SERVER_NAME,
    SERVER_NAMESPACE,
    SYSTEM_NAMESPACE,
)
from components.kubernetes.ziti_controller import CONTROLLER, ZITI_NAMESPACE
from components.kubernetes.ziti_edge_router import ROUTER
from ops.health.model import Check, Status
from stack_config import KubernetesCluster, StackConfig

COMPONENT = "kubernetes"
PART_OF = "app.kubernetes.io/part-of=identity-platform"
CNPG_HEALTHY = "Cluster in healthy state"
EXEC_SECONDS = 30
Kind = Literal["StatefulSet", "Deployment", "DaemonSet", "Cluster"]
Key = tuple[Kind, str, str]  # kind, namespace, name
COLLECTIONS: dict[Kind, str] = {
    "StatefulSet": "/apis/apps/v1/statefulsets",
    "Deployment": "/apis/apps/v1/deployments",
    "DaemonSet": "/apis/apps/v1/daemonsets",
}
CNPG_CLUSTERS = "/apis/postgresql.cnpg.io/v1/namespaces/{namespace}/clusters/{name}"
SECRET_PATH = "/api/v1/namespaces/{namespace}/secrets/{name}"  # noqa: S105 - a URL path
# A Secret's metadata without its data (the API server's PartialObjectMetadata view).
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


class KubeconfigError(Exception):
    """The cluster's kubeconfig cannot be used (missing, no such context, an unsupported credential)."""


@dataclass(frozen=True)
class Workload:
    """An object the topology must have in a cluster."""

    kind: Kind
    namespace: str
    name: str
    what: str

    @property
    def key(self) -> Key:
        return self.kind, self.namespace, self.name


def expected(config: StackConfig) -> dict[str, list[Workload]]:
    """Cluster name -> what the stack's topology runs there (by the components' own names)."""
    k8s = config.kubernetes
    if k8s is None:
        return {}
    agents = [Workload("DaemonSet", SYSTEM_NAMESPACE, AGENT_NAME, "SPIRE agents"),
              Workload("DaemonSet", SYSTEM_NAMESPACE, CSI_NAME, "SPIFFE CSI driver")]
    server = [Workload("StatefulSet", SERVER_NAMESPACE, SERVER_NAME, "SPIRE server"),
              Workload("StatefulSet", SERVER_NAMESPACE, DATABASE_NAME, "SPIRE datastore (PostgreSQL)")]
    out: dict[str, list[Workload]] = {}
    for cluster in sorted(k8s.clusters):
        out[cluster] = (agents if k8s.topology == "crd-free" else server + agents).copy()
    if k8s.topology != "enterprise":
        (cluster,) = out
        if k8s.iam is not None:
            out[cluster] += [Workload("Deployment", IAM_NAMESPACE, KEYCLOAK, "Keycloak"),
                             Workload("Cluster", IAM_NAMESPACE, DB_CLUSTER, "Keycloak's CloudNativePG cluster")]
        if k8s.ziti is not None:
            out[cluster] += [Workload("StatefulSet", ZITI_NAMESPACE, CONTROLLER, "Ziti controller"),
                             Workload("StatefulSet", ZITI_NAMESPACE, ROUTER, "Ziti edge router")]
    return out


@dataclass(frozen=True)
class NeededSecret:
    """A Secret the topology needs in a cluster, which `pulumi up` may not make (a credential)."""

    namespace: str
    name: str
    what: str
    without: str  # what fails while it is missing
    fix: str  # what to do then


def needed_secrets(config: StackConfig) -> dict[str, list[NeededSecret]]:
    """Cluster name -> the Secrets to look for there: nested enterprise stacks, the upstream server's
    kubeconfig of the downstream cluster."""
    k8s = config.kubernetes
    ent = k8s.enterprise if k8s is not None and k8s.topology == "enterprise" else None
    if ent is None or not ent.nested:
        return {}
    down = ent.downstream
    fix = ("`python -m ops up` makes it (kubernetes.enterprise.downstream.apiServer is set)" if down.api_server
           else "set kubernetes.enterprise.downstream.apiServer and run `python -m ops up`, or create it by hand "
                "(docs/architecture.md, nested enterprise topology)")
    what = f"the kubeconfig the upstream server reviews the upstream agents of cluster {down.cluster} with"
    without = f"those agents cannot attest, so the nested server of {down.cluster} gets no CA"
    return {ent.upstream.cluster: [NeededSecret(SERVER_NAMESPACE, PEER_KUBECONFIG_SECRET, what, without, fix)]}


# --- reaching a cluster ---------------------------------------------------------------------------


@dataclass
class ApiAccess:
    """How to call one cluster's API server: its URL, TLS and credentials (never printed)."""

    server: str
    verify: ssl.SSLContext
    headers: dict[str, str] = field(default_factory=dict)
    note: str = ""  # what the row should say about the connection (an unverified server)

    def client(self, timeout: float) -> httpx.Client:
        return httpx.Client(base_url=self.server, verify=self.verify, headers=self.headers, timeout=timeout)


def kubeconfig_path(access: KubernetesCluster, environ: Mapping[str, str]) -> Path:
    if access.kubeconfig:
        return Path(access.kubeconfig).expanduser()
    env = environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), None)
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


def _named(doc: Mapping[str, Any], section: str, name: str, path: Path) -> dict[str, Any]:
    for item in doc.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name:
            return dict(item.get(section.rstrip("s")) or {})
    raise KubeconfigError(f"{path}: no {section.rstrip('s')} named {name!r}")


def _data(entry: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    """`<key>-data` (base64) or `<key>` (a file, relative to the kubeconfig's directory)."""
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        return (base / str(entry[key])).expanduser().read_bytes()
    return None


def load_access(name: str, access: KubernetesCluster, environ: Mapping[str, str] | None = None) -> ApiAccess:
    """The API access of cluster `name` from its kubeconfig and context; KubeconfigError otherwise."""
    env = dict(os.environ if environ is None else environ)
    path = kubeconfig_path(access, env)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise KubeconfigError(f"cannot read the kubeconfig of cluster {name} ({path}): {e}") from None
    context_name = access.context or doc.get("current-context")
    if not context_name:
        raise KubeconfigError(f"{path}: no context given (kubernetes.clusters.{name}.context) and no current-context")
    context = _named(doc, "contexts", context_name, path)
    cluster = _named(doc, "clusters", str(context.get("cluster")), path)
    user = _named(doc, "users", str(context.get("user")), path) if context.get("user") else {}
    base = path.parent
    server = str(cluster.get("server") or "")
    if not server.startswith("https://"):
        raise KubeconfigError(f"{path}: context {context_name}: the server {server!r} is not an https:// URL")
    try:
        ca = _data(cluster, "certificate-authority", base)
        note = ""
        if cluster.get("insecure-skip-tls-verify"):
            verify = ssl.create_default_context()
            verify.check_hostname = False
            verify.verify_mode = ssl.CERT_NONE
            note = "the kubeconfig skips TLS verification (insecure-skip-tls-verify)"
        else:
            verify = ssl.create_default_context(cadata=ca.decode() if ca else None)
        headers: dict[str, str] = {}
        cert, key = _data(user, "client-certificate", base), _data(user, "client-key", base)
        token = user.get("token") or (
            (base / str(user["tokenFile"])).expanduser().read_text().strip() if user.get("tokenFile") else None)
        if user.get("exec") and not (cert or token):
            cert, key, token = _exec_credential(user["exec"], env)
        if cert and key:
            _load_chain(verify, cert, key)
        if token:
            headers["Authorization"] = f"Bearer {token}"
    except (OSError, ValueError, ssl.SSLError) as e:
        raise KubeconfigError(f"{path}: context {context_name}: unusable credentials or CA: {e}") from None
    return ApiAccess(server.rstrip("/"), verify, headers, note)


def _load_chain(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """ssl loads a client certificate from files only: through a private temporary directory."""
    with tempfile.TemporaryDirectory(prefix="ops-kube-") as tmp:
        cert_path, key_path = Path(tmp) / "client.crt", Path(tmp) / "client.key"
        cert_path.write_bytes(cert)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        ctx.load_cert_chain(cert_path, key_path)


Credential = tuple[bytes | None, bytes | None, str | None]  # client certificate, its key, bearer token


def _exec_credential(spec: Mapping[str, Any], environ: Mapping[str, str]) -> Credential:
    """Run the kubeconfig's exec credential plugin, as kubectl does; its ExecCredential status."""
    command = [str(spec.get("command", "")), *[str(a) for a in spec.get("args") or []]]
    env = {**environ, **{str(e["name"]): str(e["value"]) for e in spec.get("env") or []}}
    api_version = str(spec.get("apiVersion", "client.authentication.k8s.io/v1"))
    env["KUBERNETES_EXEC_INFO"] = json.dumps({"apiVersion": api_version, "kind": "ExecCredential",
                                              "spec": {"interactive": False}})
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=EXEC_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ValueError(f"the exec credential plugin {command[0]!r} did not run: {e}") from None
    if done.returncode != 0:
        raise ValueError(f"the exec credential plugin {command[0]!r} exited {done.returncode}: "
                         f"{done.stderr.strip()[:200]}")
    try:
        status = json.loads(done.stdout).get("status") or {}
    except ValueError:
        raise ValueError(f"the exec credential plugin {command[0]!r} printed no ExecCredential") from None
    cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
    return (cert.encode() if cert else None, key.encode() if key else None, status.get("token"))


# --- readiness -------------------------------------------------------------------------------------


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) else default


def readiness(kind: Kind, obj: Mapping[str, Any]) -> tuple[Status, str]:
    """ok / warn / fail and why, for one object as the API server returned it."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "Cluster":
        return _cnpg(spec, status)
    if kind == "DaemonSet":
        desired, ready = _int(status.get("desiredNumberScheduled")), _int(status.get("numberReady"))
        unit, none = "pods ready on the nodes that should run it", "no node runs it (no node matches its selector)"
    else:
        desired, ready = _int(spec.get("replicas"), 1), _int(status.get("readyReplicas"))
        unit, none = "replicas ready", "scaled to 0 replicas"
    counts = f"{kind}: {ready}/{desired} {unit}"
    stale = _int((obj.get("metadata") or {}).get("generation")) > _int(status.get("observedGeneration"))
    if stale:
        counts += " (its controller has not yet seen the current spec)"
    why = _conditions(status)
    if desired == 0:
        return "warn", f"{kind}: {none}{why}"
    if ready >= desired and not stale:
        return "ok", counts
    if ready == 0:
        return "fail", counts + why
    return "warn", counts + why


def _conditions(status: Mapping[str, Any]) -> str:
    """The conditions that say something is wrong (`type=status: reason: message`): a False one,
    or a True `ReplicaFailure` (the one condition whose True is bad)."""
    bad = []
    for c in status.get("conditions") or []:
        if not isinstance(c, dict):
            continue
        wrong = c.get("status") == "True" if c.get("type") == "ReplicaFailure" else c.get("status") == "False"
        if wrong:
            bad.append(f"{c.get('type')}={c.get('status')}: {c.get('reason', '')}: {c.get('message', '')}".rstrip(": "))
    return f"; {'; '.join(bad)}" if bad else ""


def _cnpg(spec: Mapping[str, Any], status: Mapping[str, Any]) -> tuple[Status, str]:
    desired, ready = _int(spec.get("instances"), 1), _int(status.get("readyInstances"))
    phase = str(status.get("phase") or "no phase reported")
    detail = f"CloudNativePG Cluster: {ready}/{desired} instances ready, phase {phase!r}"
    if ready == 0:
        return "fail", detail
    if ready >= desired and phase == CNPG_HEALTHY:
        return "ok", detail
    return "warn", detail


# --- the probe -------------------------------------------------------------------------------------


def _check(cluster: str, key: tuple[str, str, str], status: Status, detail: str, target: str | None) -> Check:
    _, ns, name = key
    return Check(COMPONENT, f"{cluster} {ns}/{name}", status, detail, target)


def _secret_row(cluster: str, need: NeededSecret, code: int | None, target: str | None) -> Check:
    """ok when the Secret is there, warn otherwise (`code` None: not checked)."""
    key = ("Secret", need.namespace, need.name)
    if code == 200:
        return _check(cluster, key, "ok", f"Secret: present ({need.what})", target)
    if code == 404:
        return _check(cluster, key, "warn", f"Secret: not found: {need.what}; {need.without}: {need.fix}", target)
    if code is None:
        return _check(cluster, key, "warn", f"Secret ({need.what}): not checked: the API server did not answer",
                      target)
    why = "this kubeconfig may not get Secrets there" if code == 403 else f"HTTP {code}"
    return _check(cluster, key, "warn", f"Secret: cannot be checked ({why}): {need.what}", target)


def cluster_rows(name: str, api: ApiAccess, want: list[Workload], timeout: float,
                 secrets: list[NeededSecret] | None = None, *, stack: str = "<stack>") -> list[Check]:
    """The API server row, one row per workload and one per needed Secret of one cluster.
    `stack` names the stack in the fix for an object deleted out of band."""
    target = api.server
    secrets = secrets or []
    codes: dict[NeededSecret, int] = {}
    try:
        with api.client(timeout) as c:
            version = c.get("/version")
            if version.status_code != 200:
                raise httpx.HTTPStatusError(f"HTTP {version.status_code}: {version.text[:160].strip()}",
                                            request=version.request, response=version)
            found: dict[Key, dict[str, Any]] = {}
            for kind, path in COLLECTIONS.items():
                listed = c.get(path, params={"labelSelector": PART_OF})
                listed.raise_for_status()
                for item in listed.json().get("items") or []:
                    meta = item.get("metadata") or {}
                    found[(kind, str(meta.get("namespace")), str(meta.get("name")))] = item
            for w in want:
                if w.kind == "Cluster":
                    got = c.get(CNPG_CLUSTERS.format(namespace=w.namespace, name=w.name))
                    if got.status_code == 200:
                        found[w.key] = got.json()
                    elif got.status_code != 404:
                        got.raise_for_status()
            for need in secrets:
                path = SECRET_PATH.format(namespace=need.namespace, name=need.name)
                codes[need] = c.get(path, headers={"Accept": METADATA_ONLY}).status_code
    except httpx.HTTPError as e:
        reason = str(e) or type(e).__name__
        rows = [Check(COMPONENT, f"{name} API server", "fail", f"the API server did not answer: {reason}", target)]
        return rows + [_check(name, w.key, "fail", f"{w.what}: not checked: the API server did not answer", target)
                       for w in want] + [_secret_row(name, need, None, target) for need in secrets]
    v = version.json() if version.headers.get("content-type", "").startswith("application/json") else {}
    said = f"answers: Kubernetes {v.get('gitVersion', '?')}" + (f"; {api.note}" if api.note else "")
    rows = [Check(COMPONENT, f"{name} API server", "warn" if api.note else "ok", said, target)]
    whats = {w.key: w.what for w in want}
    for w in want:
        if w.key not in found:
            rows.append(_check(name, w.key, "fail", f"{w.kind} {w.what}: not found in the cluster (not deployed, or "
                               f"deleted out of band: `python -m ops up --stack {stack} --refresh` makes it again)",
                               target))
    for key in sorted(found):
        status, detail = readiness(key[0], found[key])
        what = whats.get(key)
        rows.append(_check(name, key, status, f"{what}: {detail}" if what else detail, target))
    rows += [_secret_row(name, need, codes[need], target) for need in secrets]
    return rows


def rows(config: StackConfig, timeout: float, environ: Mapping[str, str] | None = None, *,
         stack: str = "<stack>") -> list[Check]:
    """Every cluster's rows (platform kubernetes); nothing for the other platforms."""
    k8s = config.kubernetes
    if config.platform != "kubernetes" or k8s is None:
        return []
    out: list[Check] = []
    secrets = needed_secrets(config)
    for name, want in expected(config).items():
        try:
            api = load_access(name, k8s.clusters[name], environ)
        except KubeconfigError as e:
            out.append(Check(COMPONENT, f"{name} API server", "fail", str(e)))
            out += [_check(name, w.key, "fail", f"{w.what}: not checked: no usable kubeconfig", None) for w in want]
            out += [_secret_row(name, need, None, None) for need in secrets.get(name, [])]
            continue
        out += cluster_rows(name, api, want, timeout, secrets.get(name), stack=stack)
    return out
