"""The probes of `ops status`: each asks one server something and returns its rows, never raises.

Every network call carries `Options.timeout`; the clients are the providers' own
(`dynamic_providers`), built with a single attempt and no readiness wait, so a dead server costs
one timeout, not a retry budget. What each row means is in `ops/health/__init__.py`.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from cryptography import x509

from components.kubernetes.basic import alias_registration, kubectl_connection
from components.kubernetes.enterprise import downstream_entry
from components.kubernetes.enterprise_config import enterprise_sides
from components.kubernetes.spire_config import AGENT_NAME, UPSTREAM_AGENT_NAME
from components.spire_connection import spire_connection as program_spire_connection
from dynamic_providers._transport import RetryPolicy, ssl_context
from dynamic_providers.keycloak.client import KeycloakAdmin, KeycloakApiError
from dynamic_providers.keycloak.models import Connection as KeycloakConnection
from dynamic_providers.spire._proto import entry_pb2, types_pb2
from dynamic_providers.spire.client import ExecEntryClient, GrpcEntryClient, SpireError
from dynamic_providers.spire.models import GrpcConnection, entry_id_for, owner_prefix, parse_connection
from dynamic_providers.ziti.client import ZitiApiError, ZitiClient
from dynamic_providers.ziti.models import ZitiConnection
from ops.health.inputs import Options, Target
from ops.health.kubernetes import rows as kube_rows
from ops.health.model import Check, Status
from ops.health.swarm import SwarmError, SwarmSnapshot
from stack_config import ConfigError

KEYCLOAK_MANAGEMENT_PORT = 9000  # Keycloak's default management interface (health, metrics)
ZITI_HEALTH_PATH = "/health-checks"  # the controller's `health-checks` web binding
ZITI_VERSION_PATH = "/edge/management/v1/version"  # unauthenticated, served by every controller

Probe = Callable[[Target, Options, "Context"], list[Check]]


class Context:
    """What probes of one run share: the Swarm snapshot, fetched once (lazily, thread-safe)."""

    def __init__(self, swarm: Callable[[], SwarmSnapshot] | None = None) -> None:
        self._lock = threading.Lock()
        self._fetch = swarm
        self._swarm: SwarmSnapshot | SwarmError | None = None

    def swarm(self) -> SwarmSnapshot:
        """The snapshot, or SwarmError (the same one for every caller)."""
        with self._lock:
            if self._swarm is None:
                if self._fetch is None:
                    self._swarm = SwarmError("no Swarm to ask (platform external)")
                else:
                    try:
                        self._swarm = self._fetch()
                    except SwarmError as e:
                        self._swarm = e
            if isinstance(self._swarm, SwarmError):
                raise self._swarm
            return self._swarm


def public_url(url: str) -> str:
    """`url` without user info (a URL is printed as the row's target)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ssl.SSLError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def _reason(exc: BaseException) -> str:
    tls = _tls_error(exc)
    if tls is not None:
        return f"TLS verification failed: {getattr(tls, 'verify_message', None) or tls}"
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


# --- SPIRE ---------------------------------------------------------------------------------------


class _GrpcLister(GrpcEntryClient):
    def entry_ids(self) -> list[str]:
        ids: list[str] = []
        token = ""
        while True:
            # An empty output mask: the server sends each entry's id only.
            request = entry_pb2.ListEntriesRequest(page_size=500, page_token=token, output_mask=types_pb2.EntryMask())
            resp = self._call("ListEntries", request)
            ids += [e.id for e in resp.entries]
            token = resp.next_page_token
            if not token or not resp.entries:
                return ids


class _ExecLister(ExecEntryClient):
    def entry_ids(self) -> list[str]:
        return [str(e.get("id", "")) for e in self._cli("entry", "show").get("entries") or []]


@dataclass(frozen=True)
class SpireServer:
    """One SPIRE server the stack registers entries on, and what it must hold there."""

    cluster: str | None  # the enterprise topology's cluster; None: the stack's one server
    connection: Any  # the provider's connection, owned by the stack
    workloads: tuple[str, ...]  # the `spireEntryIds` whose entries live here
    topology: Mapping[str, str]  # id -> what: entries the topology itself registers here (node aliases)

    def label(self, check: str) -> str:
        return f"{self.cluster} {check}" if self.cluster else check


def spire_servers(t: Target, timeout: float) -> list[SpireServer]:
    """The servers `pulumi up` writes entries to, reached as it reaches them: `spire.transport`; on
    Kubernetes the program's `kubectl exec` into each cluster's `spire-server-0` (crd-free: the
    external server, through `spire.transport`). Entry ids are derived from the triple
    (`entry_id_for`), so the topology's own entries are known without the state."""
    config, k8s, prefix = t.config, t.config.kubernetes, owner_prefix(t.project, t.stack)
    every = tuple(t.outputs.spire_entry_ids)

    def connection(raw: Mapping[str, Any]) -> Any:
        return parse_connection({**raw, "project": t.project, "stack": t.stack, "timeout_seconds": timeout})

    def registered(*entries: tuple[str, str, Sequence[str], str]) -> dict[str, str]:
        return {entry_id_for(prefix, spiffe_id, parent, selectors): what
                for spiffe_id, parent, selectors, what in entries}

    def alias(td: str, cluster: str, agent: str = AGENT_NAME) -> tuple[str, str, list[str], str]:
        return (*alias_registration(td, cluster, agent), f"node alias of cluster {cluster}'s agents")

    if t.platform != "kubernetes" or k8s is None:
        return [SpireServer(None, connection(program_spire_connection(config)), every, {})]
    td = config.spire.trust_domain
    ent = k8s.enterprise
    if k8s.topology != "enterprise" or ent is None:
        (cluster, access), = k8s.clusters.items()
        raw = kubectl_connection(td, access) if k8s.topology == "basic" else program_spire_connection(config)
        return [SpireServer(None, connection(raw), every, registered(alias(td, cluster)))]
    sides = enterprise_sides(td, ent)
    # A workload the config no longer names (removed since the last `up`) is looked for upstream.
    node = {w: config.workloads[w].node if w in config.workloads else ent.upstream.cluster for w in every}
    servers = []
    for role, side in sides.items():
        entries = [alias(side.trust_domain, side.cluster)]
        if ent.nested and role == "upstream":
            nested = alias(td, ent.nested_cluster, UPSTREAM_AGENT_NAME)
            spiffe_id, selectors = downstream_entry(td, sides["downstream"])
            entries += [nested, (spiffe_id, nested[0], selectors, "the nested downstream server's entry")]
        here = tuple(w for w in every if node[w] == side.cluster)
        raw = kubectl_connection(side.trust_domain, k8s.clusters[side.cluster])
        servers.append(SpireServer(side.cluster, connection(raw), here, registered(*entries)))
    return servers


def spire_connection(t: Target, timeout: float) -> Any:
    """The connection of the stack's first SPIRE server (the only one outside the enterprise topology)."""
    return spire_servers(t, timeout)[0].connection


def _spire_where(conn: Any) -> str:
    if isinstance(conn, GrpcConnection):
        return f"unix:{conn.socket_path}"
    if conn.transport == "docker-exec":
        target = conn.container or f"service {conn.service}"
        return f"docker exec {target} on {conn.docker_host or 'the current Docker context'}"
    return f"kubectl exec {conn.namespace}/{conn.pod}" + (f" (context {conn.context})" if conn.context else "")


def spire_rows(t: Target, o: Options, ctx: Context) -> list[Check]:
    """Per server (`spire_servers`), `server ready`: the Entry API answers a full listing through
    the stack's own transport; `entries`: the entries carrying this stack's ownership prefix
    against `spireEntryIds` and the topology's own. The enterprise topology's rows carry the
    cluster's name (`hq server ready`)."""
    try:
        servers = spire_servers(t, o.timeout)
    except (ConfigError, ValueError) as e:  # a transport the provider would refuse too: name it
        return [Check("spire", "server ready", "fail", f"no usable spire.transport: {e}"),
                Check("spire", "entries", "fail", "not checked: no usable spire.transport")]
    return [row for server in servers for row in _server_rows(t, server)]


def _server_rows(t: Target, server: SpireServer) -> list[Check]:
    conn = server.connection
    where = _spire_where(conn)
    client = _GrpcLister(conn) if isinstance(conn, GrpcConnection) else _ExecLister(conn)
    try:
        ids = client.entry_ids()
    except SpireError as e:
        return [Check("spire", server.label("server ready"), "fail", f"the Entry API did not answer: {e}", where),
                Check("spire", server.label("entries"), "fail", "not checked: the Entry API did not answer", where)]
    finally:
        client.close()
    ready = Check("spire", server.label("server ready"), "ok",
                  f"Entry API answers; entries on the server: {len(ids)}", where)
    return [ready, _entries_row(t, server, set(ids), conn.owner_prefix, where)]


def _recreate(stack: str) -> str:
    """The command that makes an object deleted out of band again: the state still has it, so a
    plain `up` reports no changes; a refresh first drops it from the state (what `ops drift` says)."""
    return f"`python -m ops up --stack {stack} --refresh`"


def _entries_row(t: Target, server: SpireServer, ids: set[str], prefix: str, where: str) -> Check:
    program = {w: t.outputs.spire_entry_ids[w] for w in server.workloads}
    owned = {i for i in ids if i.startswith(prefix)}
    missing = sorted(w for w, i in program.items() if i not in ids)
    missing += sorted(what for i, what in server.topology.items() if i not in ids)
    extra = sorted(owned - set(program.values()) - set(server.topology))
    counts = f"entries owned by this stack ({prefix}*): {len(owned)}; in spireEntryIds: {len(program)}"
    if server.topology:
        counts += f"; the topology's own: {len(server.topology)}"
    row = server.label("entries")
    if missing:
        return Check("spire", row, "fail",
                     f"{counts}; missing on the server: {', '.join(missing)} (deleted out of band? "
                     f"{_recreate(t.stack)} makes them again)", where)
    if extra:
        return Check("spire", row, "warn",
                     f"{counts}; {len(extra)} owned entries the stack does not know (left by an interrupted "
                     f"run?): {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}", where)
    return Check("spire", row, "ok", counts, where)


T = TypeVar("T")


def need(value: T | None) -> T:
    """An output the probe's component always has where it is checked (`deployed`)."""
    if value is None:
        raise ValueError("the stack does not export it")
    return value


def deployed(t: Target, component: str) -> bool:
    """Keycloak and Ziti are checked where the stack exports them: always on swarm and external,
    with kubernetes.iam and kubernetes.ziti on platform kubernetes."""
    if component == "keycloak":
        return t.outputs.keycloak_url is not None
    if component == "ziti":
        return t.outputs.ziti_controller_url is not None
    return True


# --- Keycloak -------------------------------------------------------------------------------------


def _health_candidates(t: Target, o: Options) -> list[str]:
    if o.keycloak_health_url:
        return [o.keycloak_health_url]
    base = need(t.outputs.keycloak_url).rstrip("/")
    parts = urlsplit(base)
    management = urlunsplit((parts.scheme, f"{parts.hostname}:{KEYCLOAK_MANAGEMENT_PORT}", "/health/ready", "", ""))
    if t.platform == "swarm":
        return [management]  # the stack never serves health on the public URL
    return [f"{base}/health/ready", management]


def keycloak_health(t: Target, o: Options, ctx: Context) -> list[Check]:
    """`/health/ready`: `--keycloak-health-url`, else the public URL (external) and the management
    port 9000 of its host; on swarm, when that port is not reachable, the Swarm healthcheck of the
    `keycloak` service (which probes the same endpoint inside the task)."""
    tried: list[str] = []
    verify = ssl_context(t.keycloak_ca_pem)
    for url in _health_candidates(t, o):
        try:
            resp = httpx.get(url, timeout=o.timeout, verify=verify, follow_redirects=False)
        except httpx.TransportError as e:
            if _tls_error(e) is not None or o.keycloak_health_url:
                return [Check("keycloak", "health", "fail", _reason(e), public_url(url))]
            tried.append(f"{public_url(url)} ({_reason(e)})")
            continue
        if resp.status_code == 404:
            tried.append(f"{public_url(url)} (HTTP 404)")
            continue
        return [_health_row(resp, public_url(url))]
    if t.platform == "swarm":
        fallback = _swarm_health("keycloak", "keycloak", "/health/ready on the management port", ctx)
        if fallback is not None:
            return [fallback]
    return [Check("keycloak", "health", "warn",
                  f"/health/ready is not exposed where tried: {'; '.join(tried)}. Keycloak serves it on its "
                  f"management interface (port {KEYCLOAK_MANAGEMENT_PORT} by default): name it with "
                  "--keycloak-health-url")]


def _health_row(resp: httpx.Response, url: str) -> Check:
    try:
        body = resp.json()
    except ValueError:
        body = {}
    state = str(body.get("status", "")) if isinstance(body, dict) else ""
    checks = body.get("checks") if isinstance(body, dict) else None
    down = [str(c.get("name")) for c in checks or [] if isinstance(c, dict) and c.get("status") != "UP"]
    if resp.status_code == 200 and state == "UP":
        return Check("keycloak", "health", "ok", f"UP, checks: {len(checks or [])}", url)
    detail = f"HTTP {resp.status_code} {state or resp.text[:120].strip()}"
    if down:
        detail += f"; failing: {', '.join(down)}"
    return Check("keycloak", "health", "fail", detail, url)


def _swarm_health(component: str, service: str, what: str, ctx: Context) -> Check | None:
    try:
        state = ctx.swarm().services.get(service)
    except SwarmError:
        return None
    if state is None:
        return None
    row = state.row()
    status: Status = row.status
    return Check(component, "health", status,
                 f"{what} is not reachable from here (not published); the Swarm healthcheck that probes it: "
                 f"{row.detail}", row.target)


def keycloak_endpoints(t: Target, o: Options, ctx: Context) -> list[Check]:
    """`issuer`: the realm's discovery document names the stack's `keycloakIssuerUrl`;
    `jwks`: `keycloakJwksUrl` serves at least one key."""
    realm = t.config.keycloak.realm
    url = f"{need(t.outputs.keycloak_url).rstrip('/')}/realms/{realm}/.well-known/openid-configuration"
    verify = ssl_context(t.keycloak_ca_pem)
    rows = [_json_row("keycloak", "issuer", url, o.timeout, verify, lambda doc: _issuer(t, realm, doc))]
    rows.append(_json_row("keycloak", "jwks", need(t.outputs.keycloak_jwks_url), o.timeout, verify, _jwks))
    return rows


def _json_row(component: str, check: str, url: str, timeout: float, verify: ssl.SSLContext,
              judge: Callable[[Any], tuple[Status, str]]) -> Check:
    target = public_url(url)
    try:
        resp = httpx.get(url, timeout=timeout, verify=verify, follow_redirects=False)
    except httpx.TransportError as e:
        return Check(component, check, "fail", f"not reachable: {_reason(e)}", target)
    if resp.status_code != 200:
        return Check(component, check, "fail", f"HTTP {resp.status_code}: {resp.text[:160].strip()}", target)
    try:
        doc = resp.json()
    except ValueError:
        return Check(component, check, "fail", "the answer is not JSON", target)
    status, detail = judge(doc)
    return Check(component, check, status, detail, target)


def _issuer(t: Target, realm: str, doc: Any) -> tuple[Status, str]:
    issuer = doc.get("issuer") if isinstance(doc, dict) else None
    want = t.outputs.keycloak_issuer_url
    if issuer == want:
        return "ok", f"realm {realm} answers; its issuer is the stack's ({want})"
    return "fail", (f"realm {realm} names issuer {issuer!r}, the stack's is {want!r}: tokens carry an `iss` the Ziti "
                    "signer does not expect (Keycloak's hostname changed? `python -m ops up` reads it again)")


def _jwks(doc: Any) -> tuple[Status, str]:
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if isinstance(keys, list) and keys:
        return "ok", f"signing keys published: {len(keys)}"
    return "fail", "no keys published: the Ziti signer cannot verify any token"


def keycloak_realm(t: Target, o: Options, ctx: Context) -> list[Check]:
    """`realm` (admin API): the realm has the id the stack made and is enabled, and the Ziti OIDC
    client (`keycloakZitiClientId`) exists and is enabled."""
    realm, target = t.config.keycloak.realm, public_url(need(t.outputs.keycloak_url))
    if t.keycloak_admin_password is None:
        return [Check("keycloak", "realm", "fail", "not checked: the stack has no Keycloak admin password", target)]
    try:
        conn = KeycloakConnection(url=t.outputs.keycloak_url, username=t.outputs.keycloak_admin_user,
                                  password=t.keycloak_admin_password, ca_bundle_pem=t.keycloak_ca_pem,
                                  timeout=o.timeout)
        with KeycloakAdmin(conn, retry=RetryPolicy(attempts=1)) as kc:
            rep = kc.get_realm(realm)
            if rep is None:
                return [Check("keycloak", "realm", "fail", f"realm {realm} does not exist", target)]
            problems = []
            if rep.id != t.outputs.keycloak_realm_id:
                problems.append(f"its id is {rep.id}, the stack made {t.outputs.keycloak_realm_id} "
                                "(deleted and made again out of band?)")
            if rep.enabled is False:
                problems.append("it is disabled")
            client = kc.get_client(realm, need(t.outputs.keycloak_ziti_client_id))
            if client is None:
                problems.append(f"the Ziti client {t.outputs.keycloak_ziti_client_id} is gone")
            elif client.enabled is False:
                problems.append(f"the Ziti client {client.client_id} is disabled")
    except (KeycloakApiError, httpx.HTTPError, ValueError) as e:
        return [Check("keycloak", "realm", "fail", f"admin API: {_reason(e)}", target)]
    if problems:
        return [Check("keycloak", "realm", "fail", f"realm {realm}: {'; '.join(problems)}", target)]
    name = client.client_id if client is not None else "?"
    return [Check("keycloak", "realm", "ok", f"realm {realm} enabled, id as made; Ziti client {name} enabled", target)]


# --- OpenZiti -------------------------------------------------------------------------------------


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def ziti_health(t: Target, o: Options, ctx: Context) -> list[Check]:
    """`health`: the controller's health-checks API (`/health-checks`), verified with the
    controller's CA; a controller without that binding is asked for its management API version."""
    origin = _origin(need(t.outputs.ziti_controller_url))
    verify = ssl_context(t.ziti_ca_pem, system_roots=False)
    url = origin + ZITI_HEALTH_PATH
    try:
        resp = httpx.get(url, timeout=o.timeout, verify=verify, follow_redirects=False)
        if resp.status_code == 404:
            url = origin + ZITI_VERSION_PATH
            version = httpx.get(url, timeout=o.timeout, verify=verify, follow_redirects=False)
    except httpx.TransportError as e:
        return [Check("ziti", "health", "fail", _reason(e), url)]
    if resp.status_code == 404:
        if version.status_code != 200:
            return [Check("ziti", "health", "fail", f"HTTP {version.status_code} from the management API", url)]
        try:
            v = version.json()["data"]["version"]
        except (ValueError, KeyError, TypeError):
            v = "?"
        return [Check("ziti", "health", "ok",
                      f"management API answers (OpenZiti {v}); the health-checks API is not bound on this controller "
                      "(no `health-checks` binding in its web listener, as `ziti create config controller` "
                      "writes it)", url)]
    try:
        data = resp.json()["data"]
        healthy = data["healthy"]
        checks = data.get("checks") or []
    except (ValueError, KeyError, TypeError):
        return [Check("ziti", "health", "fail", f"HTTP {resp.status_code}, not a health-checks answer", url)]
    failing = [str(c.get("id")) for c in checks if isinstance(c, dict) and not c.get("healthy")]
    if resp.status_code == 200 and healthy is True and not failing:
        return [Check("ziti", "health", "ok", f"healthy, checks: {len(checks)}", url)]
    return [Check("ziti", "health", "fail", f"unhealthy: failing {', '.join(failing) or '(none named)'}", url)]


def ziti_management(t: Target, o: Options, ctx: Context) -> list[Check]:
    """Through the Edge Management API as the admin: `ca`, `ext-jwt signer`, `auth policy`,
    `identities`, and `edge router` when the stack made one."""
    names = ["ca", "ext-jwt signer", "auth policy", "identities"]
    if t.outputs.ziti_router_id:
        names.append("edge router")
    target = public_url(need(t.outputs.ziti_controller_url))
    if t.ziti_admin_password is None:
        return [Check("ziti", n, "fail", "not checked: the stack has no Ziti admin password", target) for n in names]
    try:
        conn = ZitiConnection(url=t.outputs.ziti_controller_url, username=t.outputs.ziti_admin_user,
                              password=t.ziti_admin_password, ca_bundle_pem=t.ziti_ca_pem, timeout=o.timeout,
                              ready_timeout=0)
        with ZitiClient(conn, retry=RetryPolicy(attempts=1)) as client:
            try:
                client.authenticate()
            except ZitiApiError as e:
                return [Check("ziti", n, "fail", f"not checked: cannot log in: {e}", target) for n in names]
            rows = []
            for name in names:
                try:
                    status, detail = _ZITI_ROWS[name](t, client)
                except ZitiApiError as e:
                    status, detail = "fail", str(e)
                rows.append(Check("ziti", name, status, detail, target))
            return rows
    except (ValueError, ssl.SSLError) as e:  # the connection or its CA bundle is unusable
        return [Check("ziti", n, "fail", f"not checked: {_reason(e)}", target) for n in names]


def _entity(z: ZitiClient, collection: str, id_: str, what: str, problems: Callable[[dict[str, Any]], list[str]],
            harm: str, fine: str) -> tuple[Status, str]:
    """fail when the object is gone or `problems` finds any (saying what that breaks), else ok."""
    obj = z.get_or_none(collection, id_)
    if obj is None:
        return "fail", f"{what} {id_} is not on the controller (deleted out of band?)"
    name = obj.get("name", id_)
    found = problems(obj)
    if found:
        return "fail", f"{what} {name}: {', '.join(found)}{harm}"
    return "ok", f"{what} {name} {fine}"


def _ca(t: Target, z: ZitiClient) -> tuple[Status, str]:
    want = t.outputs.ziti_ca_fingerprint

    def problems(ca: dict[str, Any]) -> list[str]:
        return [text for bad, text in (
            (ca.get("isVerified") is not True, "not verified"),
            (ca.get("isAuthEnabled") is not True, "authentication disabled"),
            (bool(ca.get("fingerprint")) and ca.get("fingerprint") != want,
             f"fingerprint {ca.get('fingerprint')} is not the stack's {want}"),
        ) if bad]

    return _entity(z, "cas", need(t.outputs.ziti_ca_id), "CA", problems, ": workloads cannot log in with their SVIDs",
                   "registered, verified, authentication enabled")


def _signer(t: Target, z: ZitiClient) -> tuple[Status, str]:
    issuer = t.outputs.keycloak_issuer_url

    def problems(signer: dict[str, Any]) -> list[str]:
        return [text for bad, text in (
            (signer.get("enabled") is not True, "disabled"),
            (signer.get("issuer") != issuer, f"issuer {signer.get('issuer')!r} is not Keycloak's {issuer!r}"),
        ) if bad]

    return _entity(z, "external-jwt-signers", need(t.outputs.ziti_ext_jwt_signer_id), "signer", problems,
                   ": Keycloak users cannot log in", "present, enabled, issuer is Keycloak's")


def _policy(t: Target, z: ZitiClient) -> tuple[Status, str]:
    return _entity(z, "auth-policies", need(t.outputs.ziti_auth_policy_id), "auth policy", lambda _: [], "", "present")


def _identities(t: Target, z: ZitiClient) -> tuple[Status, str]:
    workloads, users = need(t.outputs.ziti_identity_ids), need(t.outputs.ziti_user_identity_ids)
    expected = {f"workload {w}": i for w, i in workloads.items()}
    expected |= {f"user {u}": i for u, i in users.items()}
    if not expected:
        return "ok", "no workloads or users: no identities to look for"
    missing = [name for name, id_ in sorted(expected.items()) if z.get_or_none("identities", id_) is None]
    if missing:
        present = len(expected) - len(missing)
        return "fail", f"identities present: {present}/{len(expected)}; missing: {', '.join(missing)}"
    w, u = len(workloads), len(users)
    return "ok", f"identities present: all {len(expected)} (workloads: {w}, users: {u})"


def _router(t: Target, z: ZitiClient) -> tuple[Status, str]:
    router_id = t.outputs.ziti_router_id or ""
    router = z.get_or_none("edge-routers", router_id)
    if router is None:
        return "fail", f"edge router {router_id} is not on the controller"
    name = router.get("name", router_id)
    if router.get("isOnline") is True:
        return "ok", f"edge router {name} online"
    if router.get("isVerified") is not True:
        return "warn", f"edge router {name} not enrolled yet: enroll it with the stack's zitiRouterEnrollmentJwt"
    return "warn", f"edge router {name} enrolled but offline"


_ZITI_ROWS: dict[str, Callable[[Target, ZitiClient], tuple[Status, str]]] = {
    "ca": _ca, "ext-jwt signer": _signer, "auth policy": _policy, "identities": _identities, "edge router": _router,
}


# --- certificates ---------------------------------------------------------------------------------


def expiry(certs: list[x509.Certificate], warn_days: int, now: datetime.datetime) -> tuple[Status, str]:
    """The earliest end of validity among `certs` against `now`: fail once expired (or not yet
    valid), warn within `warn_days`."""
    if not certs:
        return "fail", "no certificate"
    cert = min(certs, key=lambda c: c.not_valid_after_utc)
    end, start = cert.not_valid_after_utc, max(c.not_valid_before_utc for c in certs)
    subject = cert.subject.rfc4514_string() or "(no subject)"
    if end <= now:
        return "fail", f"{subject} expired on {end:%Y-%m-%d %H:%M} UTC"
    if start > now:
        return "fail", f"{subject} is not valid before {start:%Y-%m-%d %H:%M} UTC"
    left = end - now
    if left < datetime.timedelta(days=warn_days):
        return "warn", f"{subject} expires in {left.days} days ({end:%Y-%m-%d}): renew it"
    return "ok", f"{subject} valid until {end:%Y-%m-%d} ({left.days} days)"


def peer_certificate(url: str, timeout: float) -> x509.Certificate:
    """The TLS certificate `url`'s server presents. Read only, to see its dates: the handshake is
    not verified and nothing is sent over it (the `health` row verifies the server)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as sock, \
            ctx.wrap_socket(sock, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("the server presented no certificate")
    return x509.load_der_x509_certificate(der)


def certificate_rows(t: Target, o: Options, ctx: Context) -> list[Check]:
    """`root CA`: `spireBundlePem`; `controller TLS`: the Ziti controller's serving certificate."""
    now = datetime.datetime.now(datetime.UTC)
    try:
        roots = x509.load_pem_x509_certificates(t.outputs.spire_bundle_pem.encode())
        status, detail = expiry(roots, o.expiry_warning_days, now)
    except ValueError as e:
        status, detail = "fail", f"spireBundlePem is not PEM certificates: {e}"
    rows = [Check("certificates", "root CA", status, detail, "spireBundlePem")]
    controller = t.outputs.ziti_controller_url
    if controller is None:  # kubernetes without kubernetes.ziti
        return rows
    url = public_url(controller)
    try:
        leaf = peer_certificate(controller, o.timeout)
        status, detail = expiry([leaf], o.expiry_warning_days, now)
    except (OSError, ValueError) as e:
        status, detail = "fail", f"could not read the certificate: {_reason(e)}"
    rows.append(Check("certificates", "controller TLS", status, detail, _origin(url)))
    return rows


# --- Swarm ----------------------------------------------------------------------------------------


def swarm_rows(t: Target, o: Options, ctx: Context) -> list[Check]:
    """`engine` (the manager's Docker engine) and one row per Swarm service the stack deployed."""
    if t.platform != "swarm":
        return []
    try:
        snapshot = ctx.swarm()
    except SwarmError as e:
        return [Check("swarm", "engine", "fail", str(e), e.target)]
    rows = [Check("swarm", "engine", "ok", snapshot.describe(), snapshot.target)]
    for name in t.swarm_services:
        state = snapshot.services.get(name)
        if state is None:
            rows.append(Check("swarm", name, "fail", "service not found on the Swarm (removed out of band?)",
                              snapshot.target))
        else:
            rows.append(state.row())
    return rows


# --- Kubernetes ------------------------------------------------------------------------------------


def kubernetes_rows(t: Target, o: Options, ctx: Context) -> list[Check]:
    """platform kubernetes: each cluster's API server and the readiness of the platform's workloads
    (`ops.health.kubernetes`)."""
    return kube_rows(t.config, o.timeout, stack=t.stack)


PROBES: tuple[tuple[str, str, Probe], ...] = (
    ("spire", "server ready", spire_rows),
    ("keycloak", "health", keycloak_health),
    ("keycloak", "issuer", keycloak_endpoints),
    ("keycloak", "realm", keycloak_realm),
    ("ziti", "health", ziti_health),
    ("ziti", "management API", ziti_management),
    ("certificates", "expiry", certificate_rows),
    ("swarm", "engine", swarm_rows),
    ("kubernetes", "workloads", kubernetes_rows),
)
"""(component, check, probe): the component and check name label a probe that crashed."""
