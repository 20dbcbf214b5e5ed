"""The stack configuration, parsed once from the config the CLI hands the program into a frozen
pydantic tree: the single gate every value passes before any resource exists.

`load()` is the only place the program reads configuration; `python -m ops` feeds a stack file
through the same `parse_stack_values`, so both agree. Every key of the `identity-platform`
namespace is read, so a misspelt key is refused instead of ignored. Environment defaults apply
(dev: one local engine, localhost URLs; prod: strict mode on), and every problem becomes one
line naming its `identity-platform:<key>` and the `pulumi config` command that fixes it, all in
one ConfigError: what a provider's `check` or a server would refuse later is refused here.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Collection, Mapping
from typing import Annotated, Any, Literal

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from stack_config.base import (
    PROJECT,
    ConfigError,
    Hostname,
    Model,
    ObjectName,
    ScalarText,
    closest,
    did_you_mean,
    error_lines,
    format_duration,
    formatted,
    go_duration_seconds,
    host_of,
    is_local_host,
    is_placeholder_domain,
    join_lines,
    key_path,
    validation_lines,
)
from stack_config.images import Images
from stack_config.kubernetes import KubernetesCluster, KubernetesSettings
from stack_config.nodes import DB_LABEL, NodeName, NodeSpec
from stack_config.secrets import SECRET_KEYS, StackSecrets, read_secrets, secret_problems
from stack_config.spiffe import spiffe_id_problem
from stack_config.systems import (
    KeycloakSettings,
    RootCaSettings,
    SpireSettings,
    SpireTransport,
    StorageSettings,
    Workload,
    ZitiSettings,
    ZitiUser,
    keycloak_url_problem,
)

__all__ = [
    "PROJECT",
    "ConfigError",
    "Images",
    "KeycloakSettings",
    "KubernetesCluster",
    "KubernetesSettings",
    "NodeSpec",
    "RootCaSettings",
    "SpireSettings",
    "SpireTransport",
    "StackConfig",
    "StackSecrets",
    "StorageSettings",
    "Workload",
    "ZitiSettings",
    "ZitiUser",
    "load",
    "load_secrets",
    "parse",
    "parse_stack_values",
]

# Keys of the structured config objects (camelCase in YAML), in the order they are read.
STRUCTURED_KEYS = (
    "nodes", "images", "spire", "keycloak", "ziti", "storage", "workloads", "users", "rootCa", "imports", "kubernetes",
)
SCALAR_KEYS = ("environment", "platform", "domain", "region", "strict")
KNOWN_KEYS = (*SCALAR_KEYS, *STRUCTURED_KEYS, *SECRET_KEYS)
"""Every key of the project namespace the program reads; any other is refused."""

LOCAL_ENGINE = "unix:///var/run/docker.sock"

# Ports a Swarm node already uses: publishing one of them through the ingress mesh breaks the node.
SWARM_PORTS = {
    2377: "Docker Swarm's cluster management port",
    7946: "Docker Swarm's node communication port",
    4789: "Docker Swarm's overlay network (VXLAN) port",
}
# prod: Keycloak sits behind caddy-docker-proxy (`keycloak.proxyNetwork`), which publishes these.
# The workload attestors of the Swarm agents (components/spire_stack.py configures exactly these).
SWARM_WORKLOAD_ATTESTORS = ("docker", "unix")
PROXY_PORTS = {80: "caddy-docker-proxy's HTTP port (prod)", 443: "caddy-docker-proxy's HTTPS port (prod)"}
# A user's Ziti identity is named `<prefix>user-<key>`, a workload's `<prefix><key>` (components/ziti_trust.py).
USER_IDENTITY_PREFIX = "user-"
# The Pulumi resource names of the trust chain's Ziti objects (components/ziti_trust.py registers
# them under the component ZITI_TRUST): the only resources `imports` can take over.
ZITI_TRUST = "ziti-trust"
WORKLOAD_IDENTITY = "{name}-identity-{key}"
USER_IDENTITY = "{name}-user-{key}"
ZITI_TRUST_OBJECTS = (
    "spire-ca", "workload-policy", "keycloak-signer", "user-policy", "router", "all-routers", "all-services",
)
# SPIRE guarantees an SVID's full lifetime only up to a sixth of the CA TTL, and never beyond 7
# days (`manager.MaxSVIDTTLForCATTL`); above that it warns and issues shorter SVIDs.
SVID_TTL_DIVISOR = 6
MAX_GUARANTEED_SVID_SECONDS = 7 * 24 * 3600


# swarm dev: what `environment: dev` alone deploys. Each default applies per field (and per label),
# so setting one nested key (`pulumi config set --path keycloak.realm acme`) keeps the others.
DEV_LOCAL_NODE: dict[str, Any] = {"dockerHost": LOCAL_ENGINE, "labels": {DB_LABEL: "true"}, "manager": True}
DEV_DEFAULTS: dict[str, dict[str, Any]] = {
    "spire": {"trustDomain": "dev.zt.internal"},
    "keycloak": {"hostname": "localhost", "publishedPort": 8080},
    "ziti": {
        "advertisedAddress": "localhost",
        "clusterTrustDomain": "ctrl.dev.zt.internal",
        "routerAdvertisedAddress": "localhost",
    },
}


def _with_defaults(value: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`value` with each key of `defaults` it lacks (in either spelling: camelCase or snake_case);
    nested objects are completed key by key. A key set to null stays null (and is refused)."""
    out = dict(value)
    for key, default in defaults.items():
        present = next((k for k in (key, _to_snake(key)) if k in out), None)
        if present is None:
            out[key] = copy.deepcopy(default)
        elif isinstance(default, dict) and isinstance(out[present], dict):
            out[present] = _with_defaults(out[present], default)
    return out


def _to_snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def _pulumi_bool(v: Any) -> Any:
    """`strict` as `pulumi.Config.get_bool` reads it: true/True/false/False, nothing else."""
    if v is None or isinstance(v, bool):
        return v
    if v in ("true", "True"):
        return True
    if v in ("false", "False"):
        return False
    raise ValueError(f"{v!r} is not true or false")


class StackConfig(Model):
    """Everything the program needs to know about one stack."""

    environment: Literal["dev", "prod"] = Field(description="dev = one local Docker host; prod = DigitalOcean Swarm.")
    platform: Literal["swarm", "external", "kubernetes"] = Field(
        default="swarm",
        description="swarm: the program runs SPIRE, Keycloak and OpenZiti as Swarm stacks; external: the trust "
        "chain alone, against servers you already run (connections in spire/keycloak/ziti); kubernetes: SPIRE in "
        "Kubernetes clusters (`kubernetes`), workloads registered by SpireEntry resources.",
    )
    domain: Hostname = Field(
        default="localhost",
        description="Public DNS domain; services are published as auth.<domain>, ziti.<domain>, router.<domain>.",
    )
    region: str = Field(
        default="fra1",
        pattern=formatted(r"^[a-z]{3}[0-9]$", "a DigitalOcean region slug: three lowercase letters, a digit (fra1)"),
        description="DigitalOcean region of the Spaces buckets (prod).",
    )
    strict: Annotated[bool | None, BeforeValidator(_pulumi_bool)] = Field(
        default=None, description="Defaults to true in prod, false in dev."
    )
    nodes: dict[NodeName, NodeSpec] = Field(
        default_factory=dict, description="Swarm nodes by name (swarm; dev: one local node by default)."
    )
    images: Images = Field(default_factory=Images, description="Image overrides by role; each a pinned reference.")
    spire: SpireSettings = Field(description="SPIRE: trust domain, server settings (swarm), registration transport.")
    keycloak: KeycloakSettings = Field(description="Keycloak: hostname (swarm) or URL (external), realm, Ziti client.")
    ziti: ZitiSettings = Field(description="OpenZiti: advertised addresses (swarm) or controller URL (external).")
    storage: StorageSettings = Field(
        default_factory=StorageSettings, description="Backups to Spaces (prod): schedule, retention, restore."
    )
    workloads: dict[ObjectName, Workload] = Field(
        default_factory=dict, description="Workloads by name: a SPIRE entry and a Ziti identity each."
    )
    users: dict[ObjectName, ZitiUser] = Field(
        default_factory=dict, description="Keycloak users by name who reach Ziti with their token (one identity each)."
    )
    root_ca: RootCaSettings | None = Field(
        default=None, description="A root CA you bring (certificate; key in rootCaKey). Unset: generated."
    )
    kubernetes: KubernetesSettings | None = Field(
        default=None,
        description="platform kubernetes: the topology and the clusters (kubeconfig and context of each).",
    )
    imports: dict[Annotated[str, Field(min_length=1)], Annotated[ScalarText, Field(min_length=1)]] = Field(
        default_factory=dict,
        description="Existing Ziti objects to take over (swarm, external): resource name -> the object's id on its "
        "server. The names are the trust chain's Ziti resources (ziti-trust-spire-ca, ziti-trust-workload-policy, "
        "ziti-trust-keycloak-signer, ziti-trust-user-policy, ziti-trust-router, ziti-trust-all-routers, "
        "ziti-trust-all-services, ziti-trust-identity-<workload>, ziti-trust-user-<user>); any other name is refused "
        "at preview, listing this stack's. The next `pulumi up` imports each instead of creating it (the program's "
        "settings must match the object); remove the entry afterwards.",
    )

    @model_validator(mode="before")
    @classmethod
    def _environment_defaults(cls, data: Any) -> Any:
        """swarm dev needs nothing but `environment`: one local node and localhost names. kubernetes
        deploys Keycloak and OpenZiti only with kubernetes.iam and kubernetes.ziti: their sections
        default to empty there."""
        if isinstance(data, dict) and data.get("platform") == "kubernetes":
            data = dict(data)
            data.setdefault("keycloak", {})
            data.setdefault("ziti", {})
            return data
        if not isinstance(data, dict) or data.get("environment") != "dev" or data.get("platform", "swarm") != "swarm":
            return data
        data = dict(data)
        nodes = data.get("nodes")
        if "nodes" not in data:
            data["nodes"] = {"local": copy.deepcopy(DEV_LOCAL_NODE)}
        elif isinstance(nodes, dict) and isinstance(nodes.get("local"), dict):
            others = [n for k, n in nodes.items() if k != "local" and isinstance(n, dict)]
            default = dict(DEV_LOCAL_NODE)
            if any(isinstance(n.get("labels"), dict) and DB_LABEL in n["labels"] for n in others):
                default["labels"] = {}  # another node is the stateful one: do not make this one too
            if any(n.get("manager") for n in others):
                del default["manager"]
            data["nodes"] = {**nodes, "local": _with_defaults(nodes["local"], default)}
        for section, default in DEV_DEFAULTS.items():
            value = data.get(section, {})
            data[section] = _with_defaults(value, default) if isinstance(value, dict) else value
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> StackConfig:
        """Checks across sections, all reported at once ("key: problem" lines, one per key)."""
        problems = {
            "swarm": self._swarm_problems, "external": self._external_problems, "kubernetes": self._kubernetes_problems,
        }[self.platform]()
        problems += self._transport_problems()
        problems += self._workload_problems()
        if self.platform != "kubernetes" or (self.kubernetes is not None and self.kubernetes.ziti is not None):
            problems += self._import_problems()  # kubernetes without kubernetes.ziti refuses `imports` as a whole
        if self.is_strict:
            problems += self._strict_problems()
        seen: set[str] = set()
        unique = []
        for line in problems:
            key = line.split(": ", 1)[0]
            if key not in seen:
                seen.add(key)
                unique.append(line)
        if unique:
            raise ValueError("\n".join(unique))
        return self

    def _swarm_problems(self) -> list[str]:
        problems = []
        if not self.nodes:
            problems.append("nodes: the node map is empty: add at least one node (name -> {dockerHost, labels})")
        else:
            problems += self._node_problems()
        for section, fields in (("keycloak", ("hostname",)),
                                ("ziti", ("advertised_address", "cluster_trust_domain", "router_advertised_address"))):
            for f in fields:
                if getattr(getattr(self, section), f) is None:
                    problems.append(f"{section}.{to_camel(f)}: required: set it")
        if self.spire.trust_domain == self.ziti.cluster_trust_domain:
            problems.append(
                "ziti.clusterTrustDomain: must differ from spire.trustDomain, or Ziti's controller SVIDs would "
                "collide with workload SPIFFE IDs"
            )
        if self.spire.agents:
            problems.append(
                "spire.agents: swarm runs one agent per node (keys of `nodes`): remove it "
                "(fix: `pulumi config rm --path 'spire.agents'`)"
            )
        if not self.is_prod and self.keycloak.published_port is None:
            problems.append(
                "keycloak.publishedPort: required in dev: without Caddy, Keycloak is reached on "
                f"http://{self.keycloak.hostname or '<keycloak.hostname>'}:<port> (e.g. 8080)"
            )
        kc = self.keycloak
        if not self.is_prod and kc.hostname and kc.published_port:
            url = f"http://{kc.hostname}:{kc.published_port}"  # components/keycloak_stack.keycloak_public_url
            if keycloak_url_problem(url):
                problems.append(
                    "keycloak.hostname: in dev Keycloak is served over plain http, so the program would write the "
                    f"realm through {url!r}, which the Keycloak provider refuses to a host other than this machine: "
                    "use localhost or a name under .localhost"
                )
        if not self.is_prod and self.storage.restore_on_first_start:
            problems.append(
                "storage.restoreOnFirstStart: backups exist only in prod (buckets): there is nothing to restore "
                "from in dev (fix: `pulumi config set --path 'storage.restoreOnFirstStart' false`)"
            )
        problems += _set_fields("keycloak", self.keycloak, KeycloakSettings.EXTERNAL_ONLY, "platform swarm")
        problems += _set_fields("ziti", self.ziti, ZitiSettings.EXTERNAL_ONLY, "platform swarm")
        t = self.spire.transport
        if t.kind == "kubectl-exec":
            problems.append(
                "spire.transport.kind: kubectl-exec runs the SPIRE CLI in a Kubernetes pod, but platform swarm runs "
                "the SPIRE server as a Swarm service: use docker-exec (the default) or grpc "
                "(fix: `pulumi config set --path 'spire.transport.kind' docker-exec`)"
            )
        if t.kind == "docker-exec" and t.node is not None:
            db = self.stateful_nodes
            if t.node not in self.nodes:
                problems.append(f"spire.transport.node: {t.node!r} is not a key of `nodes` ({sorted(self.nodes)})")
            elif len(db) == 1 and t.node != db[0]:
                problems.append(
                    f"spire.transport.node: {t.node!r} does not run the SPIRE server; it runs on the stateful node "
                    f"{db[0]!r} (the one labelled {DB_LABEL}=true) "
                    f"(fix: `pulumi config set --path 'spire.transport.node' {db[0]}`)"
                )
        problems += _set_fields("spire.transport", t, ("docker_host", "container", "service"), "platform swarm")
        for wname, w in sorted(self.workloads.items()):
            unmatched = [sel for sel in w.selectors if sel.split(":", 1)[0] not in SWARM_WORKLOAD_ATTESTORS]
            if unmatched:
                problems.append(
                    f"workloads.{wname}.selectors: the Swarm agents attest workloads with the docker and unix workload "
                    f"attestors only, so {', '.join(map(repr, unmatched))} would never match: use docker:* "
                    "(e.g. docker:label:com.docker.swarm.service.name:<stack>_<service>) or unix:* selectors"
                )
        problems += self._port_problems()
        problems += self._ttl_problems()
        return problems

    def _node_problems(self) -> list[str]:
        """One stateful node, one engine per node."""
        problems = []
        db = self.stateful_nodes
        fix = f"(fix: `pulumi config set --path 'nodes.<name>.labels[\"{DB_LABEL}\"]' true` on exactly one node)"
        if not db:
            problems.append(
                f"nodes: no node carries the label {DB_LABEL}=true, so databases could never be scheduled {fix}"
            )
        elif len(db) > 1:
            problems.append(
                f"nodes: {db} all carry {DB_LABEL}=true; databases live on node-local volumes and must stay on one "
                f"node {fix}"
            )
        engines: dict[str, str] = {}
        for name in sorted(self.nodes):
            host = self.nodes[name].docker_host.rstrip("/")
            if host in engines:
                problems.append(
                    f"nodes.{name}.dockerHost: {host!r} is also the engine of nodes.{engines[host]}: one Swarm node "
                    "per Docker engine; give each node its own host URL"
                )
            engines.setdefault(host, name)
        return problems

    def _port_problems(self) -> list[str]:
        """The ports the Swarm stacks publish (ingress: on every node) must be free and distinct."""
        published = [("ziti.advertisedPort", self.ziti.advertised_port), ("ziti.routerPort", self.ziti.router_port)]
        if self.keycloak.published_port is not None:
            published.insert(0, ("keycloak.publishedPort", self.keycloak.published_port))
        taken: dict[int, str] = dict(SWARM_PORTS)
        if self.is_prod:
            taken.update(PROXY_PORTS)
        for name in sorted(self.nodes):
            url = self.nodes[name].docker_host
            port = _url_port(url)
            if url.startswith("ssh://"):
                taken.setdefault(port or 22, f"the SSH port the program reaches nodes.{name} on")
            elif url.startswith("tcp://") and port is not None:
                taken.setdefault(port, f"the Docker API port of nodes.{name}")
        problems = []
        for key, port in published:
            if port in taken:
                problems.append(
                    f"{key}: {port} is already {taken[port]}: Swarm publishes a port on every node, once; "
                    "choose another port"
                )
            else:
                taken[port] = key
        return problems

    def _ttl_problems(self) -> list[str]:
        """SVID TTLs within what SPIRE's CA TTL can guarantee (server.conf; entries' x509SvidTtl).
        Every server the program runs, on Swarm and in the Kubernetes topologies, renders ca_ttl and
        the default SVID TTLs from these `spire` keys (components/kubernetes/spire_config.py)."""
        ca = go_duration_seconds(self.spire.ca_ttl)
        limit = min(ca / SVID_TTL_DIVISOR, MAX_GUARANTEED_SVID_SECONDS)
        # (key, the value as the user wrote it, its seconds, how to propose a bound): the spire TTLs
        # are Go durations, an entry's x509SvidTtl is whole seconds.
        def as_duration(bound: float) -> str:
            return f"{format_duration(bound)} or less"

        def as_seconds(bound: float) -> str:
            days = int(bound) // 86400
            spoken = f"{days} day{'s' * (days != 1)}" if bound % 86400 == 0 else format_duration(bound)
            return f"at most {int(bound)} seconds ({spoken})"

        ttls: list[tuple[str, str, float, Callable[[float], str]]] = [
            (f"spire.{to_camel(f)}", repr(text), go_duration_seconds(text), as_duration)
            for f, text in (
                ("default_x509_svid_ttl", self.spire.default_x509_svid_ttl),
                ("default_jwt_svid_ttl", self.spire.default_jwt_svid_ttl),
            )
        ]
        ttls += [
            (f"workloads.{w}.x509SvidTtl", f"{spec.x509_svid_ttl} seconds", float(spec.x509_svid_ttl), as_seconds)
            for w, spec in sorted(self.workloads.items())
        ]
        problems = []
        for key, shown, seconds, bound in ttls:
            if seconds > MAX_GUARANTEED_SVID_SECONDS:
                problems.append(
                    f"{key}: {shown} is longer than 7 days, the longest SVID lifetime SPIRE guarantees across CA "
                    f"rotations: set it to {bound(MAX_GUARANTEED_SVID_SECONDS)}"
                )
            elif seconds > limit:
                problems.append(
                    f"{key}: {shown} is more than a sixth of spire.caTtl ({self.spire.ca_ttl!r}), so SPIRE would "
                    f"issue shorter SVIDs around CA rotations: set it to {bound(limit)}, or "
                    f"spire.caTtl to {format_duration(seconds * SVID_TTL_DIVISOR)} or more"
                )
        return problems

    def _external_problems(self) -> list[str]:
        why = "platform external (your own servers)"
        prefix = f"spiffe://{self.spire.trust_domain}/"
        problems = [
            f"spire.agents.{name}: {spiffe_id!r} is not a SPIFFE ID in the trust domain {self.spire.trust_domain!r}: "
            f"use the agent's ID as `spire-server agent list` shows it ({prefix}...)"
            for name, spiffe_id in self.spire.agents.items()
            if not spiffe_id.startswith(prefix)
        ]
        problems += [
            f"{to_camel(k)}: the program deploys nothing with {why}: remove it (fix: `pulumi config rm {to_camel(k)}`)"
            for k in ("nodes", "images", "storage")
            if k in self.model_fields_set
        ]
        problems += _set_fields("spire", self.spire, SpireSettings.DEPLOYED_ONLY, why)
        problems += _set_fields("keycloak", self.keycloak, KeycloakSettings.DEPLOYED_ONLY, why)
        problems += _set_fields("ziti", self.ziti, ZitiSettings.DEPLOYED_ONLY, why)
        problems += [
            f"workloads.{w}.svidHelper: the helper is a Swarm container the program runs; with {why} run "
            "spiffe-helper next to your workload (fix: `pulumi config rm --path 'workloads." + w + ".svidHelper'`)"
            for w, spec in self.workloads.items()
            if spec.svid_helper
        ]
        if self.keycloak.url is None:
            problems.append("keycloak.url: required with platform external: your Keycloak's base URL")
        if self.ziti.controller_url is None:
            problems.append("ziti.controllerUrl: required with platform external: your controller's edge API URL")
        if self.workloads and not self.spire.agents:
            problems.append("spire.agents: required for workloads with platform external: name -> agent SPIFFE ID")
        problems += self._external_transport_problems("platform external")
        return problems

    def _external_transport_problems(self, where: str) -> list[str]:
        """A SPIRE server the program does not run is reached by the transport's own settings."""
        problems = []
        t = self.spire.transport
        if t.node is not None:
            problems.append(
                f"spire.transport.node: names a Swarm node; with {where} use dockerHost "
                "(fix: `pulumi config rm --path 'spire.transport.node'`)"
            )
        if t.kind == "docker-exec":
            if t.docker_host is None:
                problems.append(f"spire.transport.dockerHost: required for docker-exec with {where}")
            if (t.container is None) == (t.service is None):
                problems.append("spire.transport.container: set exactly one of container or service (docker-exec)")
        return problems

    def _kubernetes_problems(self) -> list[str]:
        """platform kubernetes: the clusters and topology; what only Swarm or external servers use."""
        why = "platform kubernetes"
        k8s = self.kubernetes
        if k8s is None:
            return ["kubernetes: required with platform kubernetes: the topology and the clusters "
                    "(fix: `pulumi config set --path 'kubernetes.clusters.<name>.context' <context>`)"]
        problems = k8s.problems()
        unused = {
            "nodes": "the clusters are in `kubernetes.clusters`",
            "storage": "the server's volumes are in `kubernetes`",
        }
        if k8s.ziti is None:  # with it, the chain's Ziti side is Swarm's: users' identities, imports
            unused["users"] = "no Ziti identities for users without kubernetes.ziti"
            unused["imports"] = "no Ziti object to take over without kubernetes.ziti"
        problems += [
            f"{key}: not used with {why} ({reason}): remove it (fix: `pulumi config rm {key}`)"
            for key, reason in unused.items()
            if key in self.model_fields_set
        ]
        deployed = {"keycloak": k8s.iam is not None, "ziti": k8s.ziti is not None}
        hint = {"keycloak": "kubernetes.iam", "ziti": "kubernetes.ziti"}
        problems += [
            f"{section}: {why} deploys no {label} without {hint[section]}: remove it "
            f"(fix: `pulumi config rm {section}`)"
            for section, label in (("keycloak", "Keycloak"), ("ziti", "OpenZiti"))
            if getattr(self, section).model_fields_set and not deployed[section]
        ]
        if k8s.ziti is not None:
            # The controller and router run in the cluster under the `ziti` section's names.
            problems += _set_fields("ziti", self.ziti, ZitiSettings.EXTERNAL_ONLY,
                                    "platform kubernetes (the controller runs in the cluster)")
            problems += [f"ziti.{to_camel(f)}: required with kubernetes.ziti: set it"
                         for f in ("advertised_address", "cluster_trust_domain", "router_advertised_address")
                         if getattr(self.ziti, f) is None]
            if self.spire.trust_domain == self.ziti.cluster_trust_domain:
                problems.append(
                    "ziti.clusterTrustDomain: must differ from spire.trustDomain, or Ziti's controller SVIDs would "
                    "collide with workload SPIFFE IDs"
                )
        if k8s.iam is not None and k8s.topology != "basic":
            problems.append(
                f"kubernetes.iam: built for the basic topology's cluster (its metrics scrape the SPIRE server there), "
                f"not {k8s.topology}: remove it (fix: `pulumi config rm --path 'kubernetes.iam'`)"
            )
        if k8s.iam is not None and (admin := k8s.iam.admin_url_problem(prod=self.is_prod)):
            problems.append(admin)
        if k8s.iam is not None:
            # Keycloak runs in the cluster: its realm, client and admin user come from `keycloak`, its
            # host name and the way the program reaches it from `kubernetes.iam`.
            problems += _set_fields("keycloak", self.keycloak, (*KeycloakSettings.DEPLOYED_ONLY,
                                                                *KeycloakSettings.EXTERNAL_ONLY),
                                    "platform kubernetes (Keycloak's host name is kubernetes.iam.hostname)")
        if k8s.topology == "enterprise" and k8s.enterprise is not None:
            problems += k8s.enterprise.problems(set(k8s.clusters), self.spire.trust_domain)
        if k8s.topology == "crd-free":
            # The server is someone else's: it is reached, and configured, as with platform external.
            problems += self._external_transport_problems("the crd-free topology")
            problems += _set_fields("spire", self.spire, SpireSettings.DEPLOYED_ONLY, "the crd-free topology")
            if self.root_ca is not None:
                problems.append(
                    "rootCa: the crd-free topology's server has its own CA; the agents trust "
                    "kubernetes.externalServer.trustBundle: remove it (fix: `pulumi config rm rootCa`)"
                )
        elif "transport" in self.spire.model_fields_set:
            problems.append(
                "spire.transport: with platform kubernetes the program registers entries with `kubectl exec` into "
                "its own server pod, through the cluster's kubeconfig: remove it "
                "(fix: `pulumi config rm --path 'spire.transport'`)"
            )
        if k8s.topology != "crd-free":  # crd-free: the server, and its CA TTL, are someone else's
            problems += self._ttl_problems()
        if self.spire.agents:
            problems.append(
                "spire.agents: with platform kubernetes the agents are the clusters' DaemonSets (a workload's `node` "
                "names a cluster): remove it (fix: `pulumi config rm --path 'spire.agents'`)"
            )
        if "datastore" in self.spire.model_fields_set and self.spire.datastore != "postgres":
            problems.append(
                "spire.datastore: the Kubernetes server keeps its datastore in PostgreSQL (a StatefulSet of its own), "
                "so a rescheduled server pod finds its entries (fix: `pulumi config rm --path 'spire.datastore'`)"
            )
        for wname, w in sorted(self.workloads.items()):
            kinds = [sel.split(":", 2)[:2] for sel in w.selectors]
            if any(k[0] != "k8s" for k in kinds):
                problems.append(
                    f"workloads.{wname}.selectors: the agents attest workloads with the k8s workload attestor only: "
                    "use k8s:* selectors (k8s:ns:<namespace>, k8s:sa:<service account>)"
                )
            elif [k[1] for k in kinds].count("ns") != 1 or [k[1] for k in kinds].count("sa") != 1:
                problems.append(
                    f"workloads.{wname}.selectors: needs exactly one k8s:ns and one k8s:sa selector, so the entry "
                    "names one service account (the identity a pod runs as)"
                )
            if k8s.sample_workloads:
                problems += _sample_name_problems(wname, w)
            if w.svid_helper:
                problems.append(
                    f"workloads.{wname}.svidHelper: a Swarm container; on Kubernetes the pod mounts the Workload "
                    f"API (fix: `pulumi config rm --path 'workloads.{wname}.svidHelper'`)"
                )
        return problems

    def _transport_problems(self) -> list[str]:
        """Each transport reads its own fields; a field of another transport would be ignored."""
        t = self.spire.transport
        problems = []
        if t.kind == "grpc" and not t.socket_path:
            problems.append("spire.transport.socketPath: required when spire.transport.kind is grpc")
        if t.kind == "kubectl-exec" and self.platform == "swarm":
            return problems  # the kind itself is refused (`_swarm_problems`): its fields are not the question
        for kind, fields in SpireTransport.FIELDS.items():
            if kind != t.kind:
                problems += _set_fields("spire.transport", t, fields, f"spire.transport.kind {t.kind}")
        return problems

    def _workload_problems(self) -> list[str]:
        """Workloads name an agent, and each is one Ziti identity: its externalId (the SPIFFE ID for a
        workload, the email for a user) must be unique on the controller."""
        problems = []
        agents = self.agent_names
        where = {"swarm": "`nodes`", "external": "`spire.agents`", "kubernetes": "`kubernetes.clusters`"}[self.platform]
        owners: dict[str, str] = {}
        for wname, w in sorted(self.workloads.items()):
            if w.node not in agents:
                problems.append(f"workloads.{wname}.node: {w.node!r} is not a key of {where} ({sorted(agents)})")
            td = self.workload_trust_domain(w.node)
            spiffe_id = f"spiffe://{td}{w.spiffe_path}"
            if spiffe_id in owners:
                problems.append(
                    f"workloads.{wname}.spiffePath: {w.spiffe_path!r} is also the path of "
                    f"workloads.{owners[spiffe_id]}: "
                    "each workload is one Ziti identity whose externalId is its SPIFFE ID, which must be unique; "
                    "give each workload its own path"
                )
                continue
            owners[spiffe_id] = wname
            problem = spiffe_id_problem(spiffe_id, td, workload=True)
            if problem:
                problems.append(f"workloads.{wname}.spiffePath: {problem}")
            problems += self._federation_problems(wname, w.federates_with, td)
        emails: dict[str, str] = {}
        for uname, user in sorted(self.users.items()):
            if user.email in emails:
                problems.append(
                    f"users.{uname}.email: {user.email!r} is also the email of users.{emails[user.email]}: Ziti "
                    "matches a token to one identity by it; give each user their own"
                )
            emails.setdefault(user.email, uname)
            named = f"{USER_IDENTITY_PREFIX}{uname}"
            if named in self.workloads:
                problems.append(
                    f"workloads.{named}: its Ziti identity would be named {named!r} like the one of users.{uname} "
                    f"(a user's identity is named {USER_IDENTITY_PREFIX}<key>, a workload's <key>, and the controller "
                    "keeps identity names unique): declare the workload under another key "
                    f"(fix: `pulumi config rm --path 'workloads.{named}'`, then set it under the new key)"
                )
        return problems

    @property
    def ziti_resource_names(self) -> list[str]:
        """The resource names of the Ziti objects the trust chain registers (components/ziti_trust.py,
        under ZITI_TRUST): the router's only when the stack makes one, an identity per workload and
        per user."""
        fixed = [f"{ZITI_TRUST}-{part}" for part in ZITI_TRUST_OBJECTS if part != "router" or self.makes_router]
        return (fixed + [WORKLOAD_IDENTITY.format(name=ZITI_TRUST, key=w) for w in sorted(self.workloads)]
                + [USER_IDENTITY.format(name=ZITI_TRUST, key=u) for u in sorted(self.users)])

    def _import_problems(self) -> list[str]:
        """Every key of `imports` names a Ziti resource of this stack. The names follow from the
        config alone, so a wrong one is refused at load with every other problem, not after the
        program has registered its resources."""
        names = self.ziti_resource_names
        patterns = [(WORKLOAD_IDENTITY, "workloads"), (USER_IDENTITY, "users")]
        shown = [n for n in names if n.removeprefix(f"{ZITI_TRUST}-") in ZITI_TRUST_OBJECTS]
        shown += [pattern.format(name=ZITI_TRUST, key=f"<key of {section}>") for pattern, section in patterns
                  if getattr(self, section)]
        listing = f"{', '.join(shown[:-1])} and {shown[-1]}"
        problems = []
        for key in sorted(self.imports):
            if key in names:
                continue
            hints = []
            if key == f"{ZITI_TRUST}-router":  # platform external without ziti.routerName
                hints.append("the stack makes no edge router entity without ziti.routerName")
            for pattern, section in patterns:
                prefix = pattern.format(name=ZITI_TRUST, key="")
                if key.startswith(prefix):  # an identity's name: compare what follows the prefix
                    hints.append(f"{key.removeprefix(prefix)!r} is not a key of {section}")
                    near = closest(key.removeprefix(prefix), [n.removeprefix(prefix) for n in names
                                                              if n.startswith(prefix)])
                    hints += [f"did you mean {prefix + near!r}?"] if near is not None else []
            if not hints and (near := closest(key, names)) is not None:
                hints.append(f"did you mean {near!r}?")
            path = key_path(["imports", key])
            detail = f" ({'; '.join(hints)})" if hints else ""
            problems.append(
                f"{path}: names no Ziti object of this stack{detail}: "
                f"only the trust chain's Ziti objects can be taken over, here {listing}; other objects are adopted "
                f"by their ownership marker (docs/providers/) (fix: `pulumi config rm --path '{path}'`)"
            )
        return problems

    def _federation_problems(self, wname: str, federates_with: list[str], own: str) -> list[str]:
        """A workload federates only with a trust domain its server keeps the bundle of: the other
        side of the enterprise topology."""
        if not federates_with:
            return []
        k8s = self.kubernetes
        if self.platform != "kubernetes" or k8s is None or k8s.topology != "enterprise":
            return [f"workloads.{wname}.federatesWith: only the enterprise topology (platform kubernetes) "
                    "federates two trust domains: remove it "
                    f"(fix: `pulumi config rm --path 'workloads.{wname}.federatesWith'`)"]
        if k8s.enterprise is None:  # missing or broken: reported as such; which domains federate is unknown
            return []
        peers = set(self.trust_domains.values()) - {own}
        if k8s.enterprise.nested:
            return [f"workloads.{wname}.federatesWith: kubernetes.enterprise.nesting spire puts both servers in "
                    f"{own!r}: there is no other trust domain to federate with: remove it "
                    f"(fix: `pulumi config rm --path 'workloads.{wname}.federatesWith'`)"]
        return [
            f"workloads.{wname}.federatesWith: {td!r} is not federated with {own!r} (its server keeps the bundle "
            f"of {sorted(peers)} only): name that one"
            for td in federates_with if td not in peers
        ][:1]

    @property
    def trust_domains(self) -> dict[str, str]:
        """Agent name (cluster, node) -> the trust domain of the server that attests it: the one
        `spire.trustDomain`, except in the enterprise topology's downstream cluster."""
        k8s = self.kubernetes
        if self.platform == "kubernetes" and k8s is not None and k8s.topology == "enterprise" and k8s.enterprise:
            return k8s.enterprise.trust_domains(self.spire.trust_domain)
        return dict.fromkeys(self.agent_names, self.spire.trust_domain)

    def workload_trust_domain(self, node: str) -> str:
        """The trust domain a workload attested by `node`'s agent is in."""
        return self.trust_domains.get(node, self.spire.trust_domain)

    @property
    def stateful_nodes(self) -> list[str]:
        """The nodes labelled zt.db=true (a valid swarm stack has exactly one)."""
        return sorted(n for n, spec in self.nodes.items() if spec.labels.get(DB_LABEL) == "true")

    @property
    def agent_names(self) -> set[str]:
        """What a workload's `node` may name: Swarm nodes, or the external server's agents."""
        if self.platform == "kubernetes":
            return set(self.kubernetes.clusters) if self.kubernetes else set()
        return set(self.nodes) if self.platform == "swarm" else set(self.spire.agents)

    @property
    def makes_router(self) -> bool:
        """swarm (and kubernetes.ziti) runs an edge router; external makes the entity only when
        `ziti.routerName` is set."""
        if self.platform == "kubernetes":
            return self.kubernetes is not None and self.kubernetes.ziti is not None
        return self.platform == "swarm" or "router_name" in self.ziti.model_fields_set

    @property
    def is_strict(self) -> bool:
        return self.strict if self.strict is not None else self.environment == "prod"

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def manager_node(self) -> str:
        """The node stacks are deployed through: the one marked manager, else the first by name."""
        managers = sorted(n for n, s in self.nodes.items() if s.manager)
        return managers[0] if managers else sorted(self.nodes)[0]

    def _strict_problems(self) -> list[str]:
        """Strict mode: placeholders that work on a laptop are mistakes in prod."""
        problems = []
        names = {
            "domain": self.domain,
            "spire.trustDomain": self.spire.trust_domain,
            "ziti.clusterTrustDomain": self.ziti.cluster_trust_domain,
            "keycloak.hostname": self.keycloak.hostname,
            "keycloak.url": self.keycloak.url,
            "keycloak.jwksUrl": self.keycloak.jwks_url,
            "ziti.advertisedAddress": self.ziti.advertised_address,
            "ziti.routerAdvertisedAddress": self.ziti.router_advertised_address,
            "ziti.controllerUrl": self.ziti.controller_url,
        }
        names |= {f"users.{u}.email": spec.email.rpartition("@")[2] for u, spec in sorted(self.users.items())}
        if self.kubernetes is not None and self.kubernetes.external_server is not None:
            names["kubernetes.externalServer.address"] = self.kubernetes.external_server.address
        if self.kubernetes is not None and self.kubernetes.enterprise is not None:
            ent = self.kubernetes.enterprise
            names |= {
                "kubernetes.enterprise.downstream.trustDomain": ent.downstream.trust_domain,
                "kubernetes.enterprise.upstream.address": ent.upstream.address,
                "kubernetes.enterprise.downstream.address": ent.downstream.address,
                "kubernetes.enterprise.downstream.apiServer": ent.downstream.api_server,
            }
        if self.platform != "swarm":
            del names["domain"]  # nothing is published under it
        for key, value in names.items():
            if value is None:
                continue
            problem = strict_name_problem(host_of(value))
            if problem:
                shown = self.users[key.split(".")[1]].email if key.startswith("users.") else value
                problems.append(f"{key}: {shown!r} {problem}")
        # keycloak.url and ziti.controllerUrl: plain http is refused in any mode (the providers' rules:
        # Keycloak's only to a loopback host, which strict mode refuses above; Ziti's never).
        if self.kubernetes is not None and self.kubernetes.iam is not None:
            problems += self.kubernetes.iam.strict_problems()
        if self.kubernetes is not None and self.kubernetes.skip_kubelet_verification:
            problems.append(
                "kubernetes.skipKubeletVerification: the agents would accept any kubelet's certificate, so a "
                "spoofed kubelet could claim any pod's identity: give the kubelets certificates the cluster CA "
                "signs (strict mode) (fix: `pulumi config rm --path 'kubernetes.skipKubeletVerification'`)"
            )
        manager = self.manager_node if self.nodes else None
        for nname, node in sorted(self.nodes.items()):
            if is_local_host(host_of(node.docker_host)):
                problems.append(
                    f"nodes.{nname}.dockerHost: {node.docker_host!r} is local: "
                    "use the node's ssh:// or tcp:// URL (strict mode)"
                )
            elif node.docker_host.startswith("unix://") and nname != manager:
                problems.append(
                    f"nodes.{nname}.dockerHost: {node.docker_host!r} is the engine of the machine running Pulumi, "
                    f"which can only be the manager ({manager!r}): reach this node over ssh:// or tcp:// (strict mode)"
                )
        return problems


K8S_NAME_RULE = (
    "a Kubernetes object name is 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
)
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # DNS-1123 label


def _sample_name_problems(wname: str, w: Workload) -> list[str]:
    """kubernetes.sampleWorkloads runs a workload as a Deployment named by its key, in its k8s:ns
    Namespace, as its k8s:sa ServiceAccount: each must be a Kubernetes object name."""
    why = "(kubernetes.sampleWorkloads)"
    problems = []
    if not _K8S_NAME.match(wname):
        problems.append(
            f"workloads.{wname}: {wname!r} names the workload's Deployment, ServiceAccount and ConfigMap {why}: "
            f"{K8S_NAME_RULE}: declare the workload under another key "
            f"(fix: `pulumi config rm --path 'workloads.{wname}'`, then set it under the new key)"
        )
    objects = {"ns": "Namespace", "sa": "ServiceAccount"}
    bad = [
        f"{value!r} (k8s:{field}) names the sample's {objects[field]}"
        for kind, field, value in (sel.split(":", 2) for sel in w.selectors if sel.count(":") >= 2)
        if kind == "k8s" and field in objects and not _K8S_NAME.match(value)
    ]
    if bad:  # one line per key: the cross-checks keep the first line of each
        problems.append(f"workloads.{wname}.selectors: {' and '.join(bad)} {why}: {K8S_NAME_RULE}")
    return problems


def strict_name_problem(host: str) -> str | None:
    """Why strict mode refuses `host` (a name or an address), or None."""
    if is_local_host(host):
        return "points at localhost: set a name reachable by clients (strict mode)"
    if not is_placeholder_domain(host):
        return None
    if host.lower().rstrip(".").rsplit(".", 1)[-1] in ("test", "invalid", "example"):
        return "is a reserved test name (.test, .invalid, .example: RFC 2606): set your real domain (strict mode)"
    return "is a placeholder (example.*): set your real domain (strict mode)"


def _url_port(url: str) -> int | None:
    m = re.match(r"^[a-z]+://(?:[^@/]*@)?(?:\[[^\]]*\]|[^:/]*):([0-9]+)", url)
    return int(m.group(1)) if m else None


def _set_fields(section: str, model: Model, fields: tuple[str, ...], why: str) -> list[str]:
    """One problem per field of `fields` set explicitly in `section`, which `why` does not use."""
    return [
        f"{section}.{to_camel(f)}: not used with {why}: remove it "
        f"(fix: `pulumi config rm --path '{section}.{to_camel(f)}'`)"
        for f in fields
        if f in model.model_fields_set
    ]


# --- validation, with every problem at once ----------------------------------------------------

PRUNED = "pruned-invalid"
"""Marks a stand-in for a value that failed (see `_without_failed`); lines that mention it are dropped."""
_MAP_KEYS = frozenset({"nodes", "workloads", "users", "imports"})
# Stand-ins for required values, so the cross-section checks still run when one of them fails.
_STAND_INS: dict[tuple[str, ...], Callable[[str], Any]] = {
    ("spire",): lambda _: {"trustDomain": f"{PRUNED}.td"},
    ("keycloak",): lambda _: {},
    ("ziti",): lambda _: {},
    ("spire", "trustDomain"): lambda _: f"{PRUNED}.td",
    ("workloads", "*", "spiffePath"): lambda name: f"/{PRUNED}/{name}",
    ("workloads", "*", "selectors"): lambda name: [f"{PRUNED}:{name}"],
    ("nodes", "*", "dockerHost"): lambda name: f"ssh://{name}.{PRUNED}",
    ("users", "*", "email"): lambda name: f"{name}@{PRUNED}.td",
}
_DELETED = object()


def parse(raw: Mapping[str, Any]) -> StackConfig:
    """Validate a raw config dict (camelCase keys, objects decoded) into the frozen model, or raise
    ConfigError with one line per problem."""
    config, lines = _validate(dict(raw))
    if config is None:
        raise ConfigError(join_lines(lines))
    return config


def _validate(raw: dict[str, Any]) -> tuple[StackConfig | None, list[str]]:
    try:
        return StackConfig.model_validate(raw), []
    except ValidationError as e:
        error = e
    lines = validation_lines(error, StackConfig)
    failed = [err for err in error.errors() if err["loc"]]
    if failed:
        lines += [line for line in _without_failed(raw, failed) if line not in lines]
    return None, lines


def _without_failed(raw: dict[str, Any], errors: list[Any]) -> list[str]:
    """The problems `raw` has besides `errors`, found once its failed values are set aside.

    Pydantic skips the model-level checks when a field fails, and a failed list item hides the
    list's own rules; so validation runs again on a copy where each failed value is removed (its
    default applies) or, when required, replaced by a stand-in; a failed list item is removed, and
    a map entry that cannot stand without it is dropped. A problem about a failed key, a dropped
    entry or a stand-in is a consequence of one already reported, and is left out."""
    data = copy.deepcopy(raw)
    failed: list[str] = []
    aside: list[list[Any]] = []
    dropped: set[str] = set()
    found: list[str] = []
    for _ in range(10):
        for err in errors:
            loc = [p for p in err["loc"] if p != "[key]"]
            failed.append(key_path(loc))
            if not _set_aside(data, loc, missing=err["type"] == "missing", aside=aside, dropped=dropped):
                return found
        _purge(data)
        try:
            StackConfig.model_validate(data)
            return found
        except ValidationError as e:
            errors = [err for err in e.errors() if err["loc"]]
            found += [
                line
                for err in errors
                for line in error_lines(err, StackConfig)
                if _independent(line, failed, dropped, parents=err["type"] in _CONSEQUENCES)
            ]
            if not errors:
                return found + [line for line in validation_lines(e) if _independent(line, failed, dropped)]
    return found


# Errors a set-aside value causes in its parent: the parent's own lines would repeat the problem.
_CONSEQUENCES = frozenset({"missing", "too_short"})


def _set_aside(
    data: dict[str, Any], loc: list[Any], *, missing: bool, aside: list[list[Any]], dropped: set[str]
) -> bool:
    """Remove or stand in for the value at `loc`; False when only the whole config could go."""
    path = list(loc)
    while path:
        if any(path[: len(a)] == a and (len(a) < len(path) or not missing) for a in aside):
            return True  # it, or what holds it, is already set aside
        pattern = tuple("*" if i == 1 and path[0] in _MAP_KEYS else str(p) for i, p in enumerate(path))
        parent = _get(data, path[:-1])
        if pattern in _STAND_INS and isinstance(parent, dict):
            parent[path[-1]] = _STAND_INS[pattern](str(path[1]) if len(path) > 1 else "")
            aside.append(path)
            return True
        if not missing and isinstance(parent, dict) and path[-1] in parent:
            del parent[path[-1]]
            aside.append(path)
            if (len(path) == 2 and path[0] in _MAP_KEYS) or (len(path) == 3 and path[:2] == ["spire", "agents"]):
                dropped.add(str(path[-1]))  # a named entry: problems that name it are consequences
            return True
        if not missing and isinstance(parent, list) and isinstance(path[-1], int) and path[-1] < len(parent):
            parent[path[-1]] = _DELETED
            aside.append(path)
            return True
        path, missing = path[:-1], False
    return False


def _get(data: Any, path: list[Any]) -> Any:
    for p in path:
        if isinstance(data, dict) and p in data:
            data = data[p]
        elif isinstance(data, list) and isinstance(p, int) and p < len(data):
            data = data[p]
        else:
            return None
    return data


def _purge(data: Any) -> None:
    """Drop the list items `_set_aside` marked."""
    if isinstance(data, dict):
        for v in data.values():
            _purge(v)
    elif isinstance(data, list):
        data[:] = [v for v in data if v is not _DELETED]
        for v in data:
            _purge(v)


def _independent(line: str, failed: list[str], dropped: set[str], *, parents: bool = True) -> bool:
    """False for a line about a failed key (or its child; with `parents`, its parent), a dropped
    entry or a stand-in, and for a line whose reason names a failed nested key: that check read the
    key's default, not what the user wrote (a broken kubernetes.enterprise.nesting is not `none`)."""
    if PRUNED in line or any(f"{name!r}" in line for name in dropped):
        return False
    key, _, reason = line.partition(": ")
    key = key.removeprefix(f"{PROJECT}:")
    return not any(
        key == f or key.startswith((f + ".", f + "[")) or (parents and f.startswith((key + ".", key + "[")))
        or ("." in f and re.search(rf"(?<![\w.]){re.escape(f)}(?![\w.\[])", reason.split("(fix: `")[0]))
        for f in failed
    )


# --- the config as the CLI hands it over -------------------------------------------------------


def _unknown_key(key: str) -> str:
    head = re.split(r"[.\[]", key, maxsplit=1)[0]
    if head != key and head in STRUCTURED_KEYS:
        return (
            f"{PROJECT}:{key}: a key named like a path: it was set without --path, so it is not part of `{head}` "
            f"and the program would ignore it (fix: `pulumi config rm '{key}'`, then "
            f"`pulumi config set --path '{key}' <value>`)"
        )
    return (
        f"{PROJECT}:{key}: unknown key{did_you_mean(key, list(KNOWN_KEYS))}: the program reads only its own keys "
        f"and would ignore this one; remove it or correct its spelling (fix: `pulumi config rm '{key}'`)"
    )


def stack_raw(values: Mapping[str, str | None]) -> tuple[dict[str, Any], dict[str, str | None], list[str]]:
    """Split the project's keys of `values` into the model's raw dict (objects decoded) and the
    secret keys, with a line for each key the program does not read or cannot decode."""
    raw: dict[str, Any] = {}
    secrets: dict[str, str | None] = {}
    lines = []
    for full in sorted(values):
        namespace, sep, key = full.partition(":")
        if namespace != PROJECT or not sep:
            continue
        text = values[full]
        if key in SECRET_KEYS:
            secrets[key] = text
        elif key not in KNOWN_KEYS:
            lines.append(_unknown_key(key))
        elif text is None:
            continue  # a secret model key whose value the caller cannot decrypt
        elif key in SCALAR_KEYS:
            raw[key] = text
        else:
            try:
                raw[key] = json.loads(text)
            except json.JSONDecodeError as e:
                lines.append(
                    f"{PROJECT}:{key}: not a YAML/JSON object ({e.msg}): write it as a mapping under "
                    f"`{PROJECT}:{key}:` in Pulumi.<stack>.yaml "
                    f"(fix: `pulumi config set --path '{key}.<field>' <value>`)"
                )
    return raw, secrets, lines


def parse_stack_values(values: Mapping[str, str | None], secret_keys: Collection[str] = ()) -> StackConfig:
    """Validate a stack's whole configuration, as the CLI hands it to the program, or raise
    ConfigError with one line per problem.

    `values`: every config key (`<namespace>:<key>` -> its string; objects JSON-encoded, as the CLI
    passes them); keys of other namespaces are skipped. None stands for a secret the caller cannot
    decrypt (`python -m ops` without the passphrase): present and secret, its content unchecked.
    `secret_keys`: the full names of the keys set with `--secret`."""
    raw, secrets, unknown = stack_raw(values)
    config, lines = _validate(raw)
    # A key that is not an object has its own line: what the model says of its absence is noise.
    undecoded = [k for k in STRUCTURED_KEYS if values.get(f"{PROJECT}:{k}") is not None and k not in raw]
    lines = [line for line in lines if _independent(line, undecoded, set())]
    root = raw.get("rootCa")
    cert = root.get("certificate") if isinstance(root, dict) and isinstance(root.get("certificate"), str) else None
    platform = raw.get("platform", "swarm")
    lines += secret_problems(
        secrets, lambda k: k in secret_keys, platform=platform if isinstance(platform, str) else "", root_ca_cert=cert
    )
    lines += unknown
    if lines or config is None:
        raise ConfigError(join_lines(lines))
    return config


def _stack_values() -> dict[str, str]:
    """Every key of the project namespace the CLI handed the program, as strings."""
    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    out = {k: str(v) for k, v in values.items() if k.startswith(f"{PROJECT}:")}
    for key in KNOWN_KEYS:  # PULUMI_CONFIG_<KEY> variables cannot be listed, only asked for
        full = f"{PROJECT}:{key}"
        if full not in out and (value := runtime_config.get_config(full)) is not None:
            out[full] = str(value)
    return out


def _plain(key: str) -> str | None:
    """A config value as the program receives it (secrets decrypted); only the checks see it."""
    value = pulumi.runtime.get_config(f"{PROJECT}:{key}")
    return None if value is None else str(value)


def load() -> StackConfig:
    """Read and validate this stack's configuration (the program's only config read): the model,
    the secret keys and the names of every key of the namespace, so one preview reports every
    problem."""
    values = _stack_values()
    return parse_stack_values(values, {k for k in values if pulumi.runtime.is_config_secret(k)})


def load_secrets(config: StackConfig) -> StackSecrets:
    """The stack's secret keys, checked by `load`, as secret Outputs."""
    return read_secrets(_plain, platform=config.platform, brought_root=config.root_ca is not None)
