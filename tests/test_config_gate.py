"""Config is the single gate (issue 12): everything a provider's `check`, the SPIRE, Keycloak or
Ziti server, Docker or the Swarm would refuse later is refused when the stack configuration is
loaded, one line per problem, each naming its `identity-platform:<key>` and the `pulumi config`
command that fixes it, and every problem of a stack file in one ConfigError.

The stack files are fed as the CLI hands them to the program (`stack_config.parse_stack_values`:
every key of the namespace as a string, objects JSON-encoded), with one mistake per case; every
expected key, message fragment and fix is written out here, never computed by the code under test.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import stack_config
from ops.errors import OpsError
from ops.workspace import validate_stack_config
from stack_config import ConfigError, StackConfig
from tests.harness import mock_engine

P = "identity-platform"
ROOT = mock_engine.ROOT
DELETE = object()
DIGEST = "sha256:" + "0123456789abcdef" * 4


def stack_values(stack: str) -> tuple[dict[str, str | None], set[str]]:
    """The stack's config as the CLI hands it over, with the secrets its operator sets."""
    values, secret = mock_engine.stack_config(stack)
    return dict(values), set(secret)


def change(values: dict[str, str | None], path: str | tuple[str, ...], value: Any) -> None:
    """Set (or, with DELETE, remove) `path` (`spire.transport.kind`, or a tuple for names with
    dots or spaces) in the stack's values, re-encoding the object it lands in as the CLI would."""
    parts = tuple(path.split(".")) if isinstance(path, str) else path
    full = f"{P}:{parts[0]}"
    if len(parts) == 1:
        if value is DELETE:
            values.pop(full, None)
        else:
            values[full] = value if isinstance(value, str) else json.dumps(value)
        return
    obj = json.loads(values.get(full) or "{}")
    node = obj
    for p in parts[1:-1]:
        node = node.setdefault(p, {})
    if value is DELETE:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    values[full] = json.dumps(obj)


def load(stack: str, changes: dict[Any, Any]) -> StackConfig:
    values, secret = stack_values(stack)
    for path, value in changes.items():
        change(values, path, value)
    return stack_config.parse_stack_values(values, secret)


def problems(stack: str, changes: dict[Any, Any]) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load(stack, changes)
    head, *lines = str(e.value).split("\n  ")
    assert head == "invalid stack configuration:", str(e.value)
    return lines


def set_(key: str) -> str:
    return f"(fix: `pulumi config set --path '{key}' <value>`)"


def rm(key: str) -> str:
    return f"(fix: `pulumi config rm --path '{key}'`)"


@dataclass(frozen=True)
class Gate:
    """`stack` with `changes` is refused with exactly these lines: (key, fragment, fix)."""

    stack: str
    changes: dict[Any, Any]
    expected: list[tuple[str, str, str]]


def case(id_: str, stack: str, changes: dict[Any, Any], *expected: tuple[str, str, str]) -> Any:
    return pytest.param(Gate(stack, changes, list(expected)), id=id_)


PROD_WORKLOAD = {"spiffePath": "/ns/batch/sa/job", "node": "worker-1", "selectors": ["unix:uid:1500"]}
STRICT_PLACEHOLDER = "is a placeholder (example.*): set your real domain (strict mode)"
STRICT_RESERVED = "is a reserved test name (.test, .invalid, .example: RFC 2606): set your real domain (strict mode)"
STRICT_LOCAL = "points at localhost: set a name reachable by clients (strict mode)"
PIN = "so it is not pinned"
NOT_FULL = "is not a full version"
PORT_TAKEN = "Swarm publishes a port on every node, once; choose another port"
GO_DURATION = "is not a duration SPIRE can read: write a Go duration"

GATES = [
    # -- keys the program does not read: refused, with the nearest known key
    case("typo-workloads", "prod", {"workload": {"api": PROD_WORKLOAD}},
         ("workload", "unknown key (did you mean 'workloads'?)", "(fix: `pulumi config rm 'workload'`)")),
    case("typo-spire", "prod", {"spirre": {"trustDomain": "zt.acme-identity.net"}},
         ("spirre", "unknown key (did you mean 'spire'?)", "(fix: `pulumi config rm 'spirre'`)")),
    case("typo-case", "prod", {"Domain": "zt.acme-identity.net"},
         ("Domain", "unknown key (did you mean 'domain'?)", "(fix: `pulumi config rm 'Domain'`)")),
    case("typo-secret-key", "external", {"zitiAdminPasword": "s3cret-Zt"},
         ("zitiAdminPasword", "unknown key (did you mean 'zitiAdminPassword'?)",
          "(fix: `pulumi config rm 'zitiAdminPasword'`)")),
    case("no-near-key", "prod", {"colour": "blue"},
         ("colour", "unknown key: the program reads only its own keys", "(fix: `pulumi config rm 'colour'`)")),
    case("flat-path-key", "prod", {("keycloak.realm",): "platform"},
         ("keycloak.realm", "a key named like a path: it was set without --path",
          "(fix: `pulumi config rm 'keycloak.realm'`, then `pulumi config set --path 'keycloak.realm' <value>`)")),
    case("nested-typo", "prod", {"keycloak.hostnam": "auth.zt.acme-identity.net"},
         ("keycloak.hostnam", "unknown key (did you mean 'hostname'?)", rm("keycloak.hostnam"))),
    case("strict-not-a-boolean", "prod", {"strict": "maybe"},
         ("strict", "'maybe' is not true or false", "(fix: `pulumi config set 'strict' <value>`)")),
    case("strict-yes", "dev", {"strict": "yes"},
         ("strict", "'yes' is not true or false", "(fix: `pulumi config set 'strict' <value>`)")),
    # -- SPIFFE trust domains and paths SPIRE refuses
    case("td-dots", "prod", {"spire.trustDomain": ".."},
         ("spire.trustDomain", "'..' is not a SPIFFE trust domain: trust domain must not start or end with a dot",
          set_("spire.trustDomain"))),
    case("td-leading-dot", "prod", {"spire.trustDomain": ".acme-identity.net"},
         ("spire.trustDomain", "must not start or end with a dot", set_("spire.trustDomain"))),
    case("td-trailing-dot", "prod", {"spire.trustDomain": "zt.acme-identity.net."},
         ("spire.trustDomain", "must not start or end with a dot", set_("spire.trustDomain"))),
    case("td-empty-label", "prod", {"spire.trustDomain": "zt..acme-identity.net"},
         ("spire.trustDomain", "must not contain an empty label ('..')", set_("spire.trustDomain"))),
    case("td-port", "prod", {"spire.trustDomain": "zt.acme-identity.net:8443"},
         ("spire.trustDomain", "limited to lowercase letters, numbers, dots, dashes, and underscores",
          set_("spire.trustDomain"))),
    case("td-uppercase", "prod", {"spire.trustDomain": "ZT.acme-identity.net"},
         ("spire.trustDomain", "limited to lowercase letters", set_("spire.trustDomain"))),
    case("td-scheme", "prod", {"spire.trustDomain": "spiffe://zt.acme-identity.net"},
         ("spire.trustDomain", "without a scheme, port or path", set_("spire.trustDomain"))),
    case("cluster-td-empty-label", "prod", {"ziti.clusterTrustDomain": "ctrl..acme-identity.net"},
         ("ziti.clusterTrustDomain", "must not contain an empty label", set_("ziti.clusterTrustDomain"))),
    case("path-dot-dot", "prod", {"workloads.ledger.spiffePath": "/ns/../ledger"},
         ("workloads.ledger.spiffePath", "path cannot contain dot segments", set_("workloads.ledger.spiffePath"))),
    case("path-dot", "prod", {"workloads.ledger.spiffePath": "/ns/./ledger"},
         ("workloads.ledger.spiffePath", "path cannot contain dot segments", set_("workloads.ledger.spiffePath"))),
    case("path-space", "prod", {"workloads.ledger.spiffePath": "/ns/pay ments/ledger"},
         ("workloads.ledger.spiffePath", "path segment characters are limited to letters, numbers, dots, dashes",
          set_("workloads.ledger.spiffePath"))),
    case("path-query", "prod", {"workloads.ledger.spiffePath": "/ns/ledger?v=1"},
         ("workloads.ledger.spiffePath", "path segment characters are limited", set_("workloads.ledger.spiffePath"))),
    case("path-percent", "prod", {"workloads.ledger.spiffePath": "/ns/led%20ger"},
         ("workloads.ledger.spiffePath", "path segment characters are limited", set_("workloads.ledger.spiffePath"))),
    case("path-fragment", "prod", {"workloads.ledger.spiffePath": "/ns/ledger#1"},
         ("workloads.ledger.spiffePath", "path segment characters are limited", set_("workloads.ledger.spiffePath"))),
    case("path-reserved", "prod", {"workloads.ledger.spiffePath": "/spire/agent/ledger"},
         ("workloads.ledger.spiffePath", "in SPIRE's reserved /spire namespace", set_("workloads.ledger.spiffePath"))),
    case("path-reserved-root", "prod", {"workloads.ledger.spiffePath": "/spire"},
         ("workloads.ledger.spiffePath", "in SPIRE's reserved /spire namespace", set_("workloads.ledger.spiffePath"))),
    case("path-relative", "prod", {"workloads.ledger.spiffePath": "ns/ledger"},
         ("workloads.ledger.spiffePath", "path must start with '/'", set_("workloads.ledger.spiffePath"))),
    case("path-too-long", "prod", {"workloads.ledger.spiffePath": "/" + "a" * 2040},
         ("workloads.ledger.spiffePath", "is longer than 2048 bytes", set_("workloads.ledger.spiffePath"))),
    case("agent-id-dot-segment", "external",
         {"spire.agents.worker-1": "spiffe://zt.acme-identity.net/spire/agent/../worker-1"},
         ("spire.agents.worker-1", "is not a SPIFFE ID: path cannot contain dot segments",
          set_("spire.agents.worker-1"))),
    case("agent-id-other-td", "external", {"spire.agents.worker-1": "spiffe://elsewhere.net/spire/agent/w1"},
         ("spire.agents.worker-1", "is not a SPIFFE ID in the trust domain 'zt.acme-identity.net'",
          set_("spire.agents.worker-1"))),
    # -- selectors
    case("selector-without-type-separator", "prod", {"workloads.ledger.selectors": ["docker"]},
         ("workloads.ledger.selectors[0]", "'docker' is not a \"type:value\" selector (no ':')",
          set_("workloads.ledger.selectors[0]"))),
    case("selector-without-type", "prod", {"workloads.ledger.selectors": [":payments_ledger"]},
         ("workloads.ledger.selectors[0]", "selector ':payments_ledger': type is empty",
          set_("workloads.ledger.selectors[0]"))),
    case("selector-without-value", "prod", {"workloads.ledger.selectors": ["unix:uid:1000", "unix:"]},
         ("workloads.ledger.selectors[1]", "selector 'unix:': value is empty", set_("workloads.ledger.selectors[1]"))),
    case("selector-repeated", "prod", {"workloads.ledger.selectors": ["unix:uid:1000", "unix:uid:1000"]},
         ("workloads.ledger.selectors", "selector 'unix:uid:1000' is listed more than once",
          set_("workloads.ledger.selectors"))),
    case("selectors-empty", "prod", {"workloads.ledger.selectors": []},
         ("workloads.ledger.selectors", "needs at least one item", set_("workloads.ledger.selectors"))),
    # -- one Ziti identity per SPIFFE ID and per email
    case("same-spiffe-id", "prod", {"workloads.ledger.spiffePath": "/ns/payments/sa/api"},
         ("workloads.payments-api.spiffePath", "'/ns/payments/sa/api' is also the path of workloads.ledger",
          set_("workloads.payments-api.spiffePath"))),
    case("same-spiffe-id-other-node", "prod",
         {"workloads.batch": {**PROD_WORKLOAD, "spiffePath": "/ns/payments/sa/ledger", "node": "worker-1"}},
         ("workloads.ledger.spiffePath", "'/ns/payments/sa/ledger' is also the path of workloads.batch",
          set_("workloads.ledger.spiffePath"))),
    case("same-email", "external", {"users.bob": {"email": "Alice@acme-identity.net"}},
         ("users.bob.email", "'alice@acme-identity.net' is also the email of users.alice", set_("users.bob.email"))),
    case("workload-named-like-a-user", "external", {"workloads.user-alice": PROD_WORKLOAD},
         ("workloads.user-alice", "its Ziti identity would be named 'user-alice' like the one of users.alice",
          "(fix: `pulumi config rm --path 'workloads.user-alice'`, then set it under the new key)")),
    # -- names: Docker objects, Ziti entities, host names, DNS names
    case("workload-name-space", "prod", {("workloads", "batch job"): PROD_WORKLOAD},
         ('workloads["batch job"]', "'batch job' is not a valid name",
          "(fix: `pulumi config rm --path 'workloads[\"batch job\"]'`)")),
    case("workload-name-slash", "prod", {("workloads", "batch/job"): PROD_WORKLOAD},
         ('workloads["batch/job"]', "'batch/job' is not a valid name",
          "(fix: `pulumi config rm --path 'workloads[\"batch/job\"]'`)")),
    case("workload-name-leading-dash", "prod", {("workloads", "-job"): PROD_WORKLOAD},
         ("workloads.-job", "'-job' is not a valid name", rm("workloads.-job"))),
    case("user-name-colons", "external", {("users", "ops::alice"): {"email": "ops.alice@acme-identity.net"}},
         ('users["ops::alice"]', "'ops::alice' is not a valid name",
          "(fix: `pulumi config rm --path 'users[\"ops::alice\"]'`)")),
    case("router-name-space", "prod", {"ziti.routerName": "edge router"},
         ("ziti.routerName", "'edge router' is not a valid name", set_("ziti.routerName"))),
    case("router-name-too-long", "prod", {"ziti.routerName": "r" * 64},
         ("ziti.routerName", "is not a valid name: use 1-63 letters", set_("ziti.routerName"))),
    case("dns-name-underscore", "prod", {"workloads.ledger.dnsNames": ["ledger_db.payments.internal"]},
         ("workloads.ledger.dnsNames[0]", "label 'ledger_db' may contain only letters, digits and '-'",
          set_("workloads.ledger.dnsNames[0]"))),
    case("dns-name-two-wildcards", "prod", {"workloads.ledger.dnsNames": ["*.*.payments.internal"]},
         ("workloads.ledger.dnsNames[0]", "has more than one wildcard", set_("workloads.ledger.dnsNames[0]"))),
    case("dns-name-trailing-dot", "prod", {"workloads.ledger.dnsNames": ["ledger.payments.internal."]},
         ("workloads.ledger.dnsNames[0]", "must not end with a dot", set_("workloads.ledger.dnsNames[0]"))),
    case("dns-name-repeated", "prod", {"workloads.ledger.dnsNames": ["l.payments.internal", "l.payments.internal"]},
         ("workloads.ledger.dnsNames", "DNS name 'l.payments.internal' is listed more than once",
          set_("workloads.ledger.dnsNames"))),
    case("hostname-url", "prod", {"keycloak.hostname": "https://auth.zt.acme-identity.net"},
         ("keycloak.hostname", "is a URL or a path: give the host name alone", set_("keycloak.hostname"))),
    case("hostname-space", "prod", {"ziti.advertisedAddress": "ziti zt.acme-identity.net"},
         ("ziti.advertisedAddress", "contains whitespace", set_("ziti.advertisedAddress"))),
    case("hostname-port", "prod", {"ziti.routerAdvertisedAddress": "router.zt.acme-identity.net:3022"},
         ("ziti.routerAdvertisedAddress", "has a port or is an IPv6 address", set_("ziti.routerAdvertisedAddress"))),
    case("hostname-trailing-dot", "prod", {"ziti.advertisedAddress": "ziti.zt.acme-identity.net."},
         ("ziti.advertisedAddress", "ends with a dot", set_("ziti.advertisedAddress"))),
    case("domain-path", "prod", {"domain": "zt.acme-identity.net/auth"},
         ("domain", "is a URL or a path", "(fix: `pulumi config set 'domain' <value>`)")),
    case("role-attribute-hash", "prod", {"workloads.ledger.zitiRoleAttributes": ["#payments"]},
         ("workloads.ledger.zitiRoleAttributes[0]", "write the bare attribute, without '#' or '@'",
          set_("workloads.ledger.zitiRoleAttributes[0]"))),
    case("role-attribute-empty", "external", {"users.alice.zitiRoleAttributes": [""]},
         ("users.alice.zitiRoleAttributes[0]", "a role attribute is empty: remove it",
          rm("users.alice.zitiRoleAttributes[0]"))),
    # -- published ports: free on every node and distinct
    case("port-keycloak-vs-controller", "prod", {"keycloak.publishedPort": 1280},
         ("ziti.advertisedPort", "1280 is already keycloak.publishedPort", set_("ziti.advertisedPort"))),
    case("port-router-vs-controller", "prod", {"ziti.routerPort": 1280},
         ("ziti.routerPort", "1280 is already ziti.advertisedPort", set_("ziti.routerPort"))),
    case("port-swarm-management", "prod", {"ziti.routerPort": 2377},
         ("ziti.routerPort", "2377 is already Docker Swarm's cluster management port", set_("ziti.routerPort"))),
    case("port-ssh-of-a-node", "prod", {"ziti.advertisedPort": 22},
         ("ziti.advertisedPort", "22 is already the SSH port the program reaches nodes.manager-1 on",
          set_("ziti.advertisedPort"))),
    case("port-caddy-in-prod", "prod", {"keycloak.publishedPort": 443},
         ("keycloak.publishedPort", "443 is already caddy-docker-proxy's HTTPS port (prod)",
          set_("keycloak.publishedPort"))),
    case("port-docker-api", "prod", {"nodes.worker-1.dockerHost": "tcp://10.114.0.3:2376", "ziti.advertisedPort": 2376},
         ("ziti.advertisedPort", "2376 is already the Docker API port of nodes.worker-1", set_("ziti.advertisedPort"))),
    # -- SPIRE durations (Go's grammar) and their order (an SVID TTL within a sixth of the CA TTL)
    case("ttl-days", "prod", {"spire.caTtl": "1 day"}, ("spire.caTtl", f"'1 day' {GO_DURATION}", set_("spire.caTtl"))),
    case("ttl-days-unit", "prod", {"spire.caTtl": "2d"}, ("spire.caTtl", f"'2d' {GO_DURATION}", set_("spire.caTtl"))),
    case("ttl-no-unit", "prod", {"spire.defaultX509SvidTtl": "3600"},
         ("spire.defaultX509SvidTtl", "'3600' has no unit: a bare number is ambiguous",
          set_("spire.defaultX509SvidTtl"))),
    case("ttl-negative", "prod", {"spire.defaultX509SvidTtl": "-1h"},
         ("spire.defaultX509SvidTtl", "'-1h' has a sign: a TTL is a positive duration",
          set_("spire.defaultX509SvidTtl"))),
    case("ttl-zero", "prod", {"spire.defaultJwtSvidTtl": "0"},
         ("spire.defaultJwtSvidTtl", "'0' is zero: SPIRE would silently use its default",
          set_("spire.defaultJwtSvidTtl"))),
    case("ttl-zero-with-unit", "prod", {"spire.defaultJwtSvidTtl": "0s"},
         ("spire.defaultJwtSvidTtl", "'0s' is zero", set_("spire.defaultJwtSvidTtl"))),
    case("ttl-svid-beyond-ca", "prod", {"spire.defaultX509SvidTtl": "5h"},
         ("spire.defaultX509SvidTtl",
          "'5h' is more than a sixth of spire.caTtl ('24h'), so SPIRE would issue shorter SVIDs around CA rotations: "
          "set it to 4h or less, or spire.caTtl to 30h or more", set_("spire.defaultX509SvidTtl"))),
    case("ttl-ca-too-short", "prod", {"spire.caTtl": "1h30m"},
         ("spire.defaultX509SvidTtl", "'1h' is more than a sixth of spire.caTtl ('1h30m')",
          set_("spire.defaultX509SvidTtl"))),
    case("ttl-jwt-beyond-ca", "dev", {"spire.trustDomain": "dev.zt.internal", "spire.defaultJwtSvidTtl": "4h10m"},
         ("spire.defaultJwtSvidTtl", "set it to 4h or less, or spire.caTtl to 25h or more",
          set_("spire.defaultJwtSvidTtl"))),
    case("ttl-beyond-seven-days", "prod", {"spire.caTtl": "2000h", "spire.defaultX509SvidTtl": "200h"},
         ("spire.defaultX509SvidTtl", "'200h' is longer than 7 days", set_("spire.defaultX509SvidTtl"))),
    case("ttl-entry-beyond-ca", "prod", {"workloads.ledger.x509SvidTtl": 86400},
         ("workloads.ledger.x509SvidTtl", "86400 seconds is more than a sixth of spire.caTtl ('24h')",
          set_("workloads.ledger.x509SvidTtl"))),
    case("ttl-entry-int32", "external", {"workloads.payments-api.x509SvidTtl": 2**31},
         ("workloads.payments-api.x509SvidTtl", "must be at most 2147483647, not 2147483648",
          set_("workloads.payments-api.x509SvidTtl"))),
    # -- strict mode: documentation names, local addresses, remote nodes on a local socket, realms
    case("example-co-uk", "prod", {"domain": "example.co.uk"},
         ("domain", f"'example.co.uk' {STRICT_PLACEHOLDER}", "(fix: `pulumi config set 'domain' <value>`)")),
    case("example-io-subdomain", "prod", {"keycloak.hostname": "auth.example.io"},
         ("keycloak.hostname", f"'auth.example.io' {STRICT_PLACEHOLDER}", set_("keycloak.hostname"))),
    case("example-uppercase", "prod", {"ziti.advertisedAddress": "ZITI.EXAMPLE.NET"},
         ("ziti.advertisedAddress", f"'ZITI.EXAMPLE.NET' {STRICT_PLACEHOLDER}", set_("ziti.advertisedAddress"))),
    case("tld-example", "prod", {"spire.trustDomain": "zt.example"},
         ("spire.trustDomain", f"'zt.example' {STRICT_RESERVED}", set_("spire.trustDomain"))),
    case("tld-test", "prod", {"ziti.clusterTrustDomain": "ctrl.zt.test"},
         ("ziti.clusterTrustDomain", f"'ctrl.zt.test' {STRICT_RESERVED}", set_("ziti.clusterTrustDomain"))),
    case("tld-invalid", "prod", {"ziti.routerAdvertisedAddress": "router.invalid"},
         ("ziti.routerAdvertisedAddress", f"'router.invalid' {STRICT_RESERVED}", set_("ziti.routerAdvertisedAddress"))),
    case("localhost-uppercase", "prod", {"keycloak.hostname": "LOCALHOST"},
         ("keycloak.hostname", f"'LOCALHOST' {STRICT_LOCAL}", set_("keycloak.hostname"))),
    case("localhost-subdomain", "prod", {"ziti.advertisedAddress": "ziti.localhost"},
         ("ziti.advertisedAddress", f"'ziti.localhost' {STRICT_LOCAL}", set_("ziti.advertisedAddress"))),
    case("loopback-127-x", "prod", {"ziti.routerAdvertisedAddress": "127.3.2.1"},
         ("ziti.routerAdvertisedAddress", f"'127.3.2.1' {STRICT_LOCAL}", set_("ziti.routerAdvertisedAddress"))),
    case("unspecified-address", "prod", {"ziti.advertisedAddress": "0.0.0.0"},  # noqa: S104 - the mistake under test
         ("ziti.advertisedAddress", f"'0.0.0.0' {STRICT_LOCAL}", set_("ziti.advertisedAddress"))),
    case("loopback-ipv6-url", "external", {"keycloak.url": "https://[::1]:8443"},
         ("keycloak.url", f"'https://[::1]:8443' {STRICT_LOCAL}", set_("keycloak.url"))),
    case("unspecified-ipv6-url", "external", {"ziti.controllerUrl": "https://[::]:1280"},
         ("ziti.controllerUrl", f"'https://[::]:1280' {STRICT_LOCAL}", set_("ziti.controllerUrl"))),
    case("localhost-dot-url", "external", {"keycloak.url": "https://localhost.:8443"},
         ("keycloak.url", f"'https://localhost.:8443' {STRICT_LOCAL}", set_("keycloak.url"))),
    case("loopback-short-ipv4-docker-host", "prod", {"nodes.worker-1.dockerHost": "tcp://127.1:2376"},
         ("nodes.worker-1.dockerHost", "'tcp://127.1:2376' is local: use the node's ssh:// or tcp:// URL",
          set_("nodes.worker-1.dockerHost"))),
    case("unix-socket-for-a-worker", "prod", {"nodes.worker-2.dockerHost": "unix:///var/run/docker.sock"},
         ("nodes.worker-2.dockerHost",
          "'unix:///var/run/docker.sock' is the engine of the machine running Pulumi, which can only be the manager "
          "('manager-1')", set_("nodes.worker-2.dockerHost"))),
    case("example-email", "external", {"users.alice.email": "alice@example.com"},
         ("users.alice.email", f"'alice@example.com' {STRICT_PLACEHOLDER}", set_("users.alice.email"))),
    case("master-realm", "prod", {"keycloak.realm": "master"},
         ("keycloak.realm", "'master' is Keycloak's administration realm", set_("keycloak.realm"))),
    case("master-realm-dev", "dev", {"keycloak": {"hostname": "localhost", "publishedPort": 8080, "realm": "Master"}},
         ("keycloak.realm", "'Master' is Keycloak's administration realm", set_("keycloak.realm"))),
    case("realm-slash", "prod", {"keycloak.realm": "acme/platform"},
         ("keycloak.realm", "'acme/platform' is not a path-safe realm name", set_("keycloak.realm"))),
    case("realm-dot-dot", "external", {"keycloak.realm": ".."},
         ("keycloak.realm", "'..' is not a path-safe realm name", set_("keycloak.realm"))),
    case("realm-space", "prod", {"keycloak.realm": "acme platform"},
         ("keycloak.realm", "'acme platform' is not a path-safe realm name", set_("keycloak.realm"))),
    # -- transports that cannot exist where they are asked for, and fields another transport reads
    case("kubectl-on-swarm", "prod", {"spire.transport": {"kind": "kubectl-exec", "namespace": "spire"}},
         ("spire.transport.kind", "kubectl-exec runs the SPIRE CLI in a Kubernetes pod, but platform swarm runs the "
          "SPIRE server as a Swarm service", "(fix: `pulumi config set --path 'spire.transport.kind' docker-exec`)")),
    case("grpc-with-a-pod", "external",
         {"spire.transport.pod": "spire-server-0"},
         ("spire.transport.pod", "not used with spire.transport.kind grpc", rm("spire.transport.pod"))),
    case("docker-exec-with-a-socket", "prod", {"spire.transport.socketPath": "/run/spire.sock"},
         ("spire.transport.socketPath", "not used with spire.transport.kind docker-exec",
          rm("spire.transport.socketPath"))),
    case("grpc-socket-relative", "external", {"spire.transport.socketPath": "spire-admin.sock"},
         ("spire.transport.socketPath", "must be an absolute path", set_("spire.transport.socketPath"))),
    case("grpc-socket-too-long", "external", {"spire.transport.socketPath": "/run/" + "s" * 110},
         ("spire.transport.socketPath", "longer than 107 bytes, the Unix socket limit",
          set_("spire.transport.socketPath"))),
    case("docker-exec-host-not-a-url", "external",
         {"spire.transport": {"kind": "docker-exec", "dockerHost": "10.1.0.5", "container": "spire-server"}},
         ("spire.transport.dockerHost", "'10.1.0.5' is not a Docker host URL", set_("spire.transport.dockerHost"))),
    case("kubectl-namespace-not-a-label", "external",
         {"spire.transport": {"kind": "kubectl-exec", "namespace": "spire.io"}},
         ("spire.transport.namespace", "'spire.io' is not a Kubernetes namespace name",
          set_("spire.transport.namespace"))),
    case("kubectl-pod-uppercase", "external", {"spire.transport": {"kind": "kubectl-exec", "pod": "Spire-0"}},
         ("spire.transport.pod", "'Spire-0' is not a Kubernetes pod name", set_("spire.transport.pod"))),
    case("transport-node-not-the-server", "prod", {"spire.transport.node": "worker-1"},
         ("spire.transport.node", "'worker-1' does not run the SPIRE server; it runs on the stateful node 'manager-1'",
          "(fix: `pulumi config set --path 'spire.transport.node' manager-1`)")),
    # -- image pins: a full version or a digest
    case("pin-major-only", "prod", {"images.spireAgent": "ghcr.io/spiffe/spire-agent:1"},
         ("images.spireAgent", f"the tag '1' {NOT_FULL} (major.minor.patch)", set_("images.spireAgent"))),
    case("pin-postgres-major", "prod", {"images.postgres": "docker.io/library/postgres:17"},
         ("images.postgres", f"the tag '17' {NOT_FULL} (major.minor)", set_("images.postgres"))),
    case("pin-keycloak-major", "prod", {"images.keycloak": "quay.io/keycloak/keycloak:26"},
         ("images.keycloak", f"the tag '26' {NOT_FULL}", set_("images.keycloak"))),
    case("pin-minor", "prod", {"images.zitiRouter": "docker.io/openziti/ziti-router:1.7"},
         ("images.zitiRouter", f"the tag '1.7' {NOT_FULL}", set_("images.zitiRouter"))),
    case("pin-latest", "prod", {"images.backup": "docker.io/rclone/rclone:latest"},
         ("images.backup", f"uses the moving tag 'latest', {PIN}", set_("images.backup"))),
    case("pin-no-tag", "prod", {"images.sqliteBackup": "python"},
         ("images.sqliteBackup", f"has no tag (Docker pulls :latest), {PIN}", set_("images.sqliteBackup"))),
    case("pin-bad-digest", "prod", {"images.spireServer": "ghcr.io/spiffe/spire-server@sha256:abc"},
         ("images.spireServer", "has a malformed digest", set_("images.spireServer"))),
    # -- what a component refused in the middle of `up`
    case("restore-in-dev", "dev", {"storage": {"restoreOnFirstStart": True}},
         ("storage.restoreOnFirstStart", "backups exist only in prod (buckets)",
          "(fix: `pulumi config set --path 'storage.restoreOnFirstStart' false`)")),
    case("workload-without-an-agent", "prod", {"workloads.ledger.node": "worker-9"},
         ("workloads.ledger.node", "'worker-9' is not a key of `nodes` (['manager-1', 'worker-1', 'worker-2'])",
          set_("workloads.ledger.node"))),
    case("ziti-cluster-td-is-spires", "prod", {"ziti.clusterTrustDomain": "zt.acme-identity.net"},
         ("ziti.clusterTrustDomain", "must differ from spire.trustDomain", set_("ziti.clusterTrustDomain"))),
    case("dev-keycloak-without-port", "dev", {"keycloak": {"hostname": "localhost", "publishedPort": None}},
         ("keycloak.publishedPort", "required in dev: without Caddy", set_("keycloak.publishedPort"))),
    case("no-stateful-node", "prod", {"nodes.manager-1.labels": {"zt.role": "manager"}},
         ("nodes", "no node carries the label zt.db=true",
          "(fix: `pulumi config set --path 'nodes.<name>.labels[\"zt.db\"]' true` on exactly one node)")),
    case("two-stateful-nodes", "prod", {"nodes.worker-1.labels": {"zt.db": "true"}},
         ("nodes", "['manager-1', 'worker-1'] all carry zt.db=true", "(fix: `pulumi config set --path 'nodes.<name>")),
    case("one-engine-two-nodes", "prod", {"nodes.worker-2.dockerHost": "ssh://root@10.114.0.3"},
         ("nodes.worker-2.dockerHost", "'ssh://root@10.114.0.3' is also the engine of nodes.worker-1",
          set_("nodes.worker-2.dockerHost"))),
    case("docker-host-tcp-without-port", "prod", {"nodes.worker-1.dockerHost": "tcp://10.114.0.3"},
         ("nodes.worker-1.dockerHost", "tcp:// needs the port", set_("nodes.worker-1.dockerHost"))),
]  # fmt: skip


class TestEveryClassIsRefusedAtLoad:
    @pytest.mark.parametrize("gate", GATES)
    def test_the_key_the_problem_and_the_fix(self, gate: Gate) -> None:
        lines = problems(gate.stack, gate.changes)
        assert [line.split(": ", 1)[0] for line in lines] == [f"{P}:{key}" for key, _, _ in gate.expected], (
            "\n".join(lines)
        )
        for line, (_, fragment, fix) in zip(lines, gate.expected, strict=True):
            assert fragment in line, line
            assert fix in line, line
            assert line.endswith(fix) or fix.endswith("<name>"), line


# Values each rule must let through: the rules refuse the mistake, not the neighbourhood.
ACCEPTED = [
    pytest.param("prod", {"images.postgres": f"docker.io/library/postgres@{DIGEST}"}, id="digest-only-pin"),
    pytest.param("prod", {"images.keycloak": f"quay.io/keycloak/keycloak:26.7.0@{DIGEST}"}, id="tag-and-digest"),
    pytest.param("prod", {"images.postgres": "docker.io/library/postgres:15.18"}, id="postgres-major-minor"),
    pytest.param("prod", {"images.backup": "docker.io/rclone/rclone:v1.71.2"}, id="v-prefixed-version"),
    pytest.param("prod", {"images.sqliteBackup": "registry.acme.net:5000/tools/python:3.13.7-alpine3.22"},
                 id="registry-port-and-variant"),
    pytest.param("prod", {"images.sqliteBackup": "docker.io/library/ubuntu:jammy-20240111"}, id="date-tag"),
    pytest.param("prod", {"spire.caTtl": "48h", "spire.defaultX509SvidTtl": "1h30m", "spire.defaultJwtSvidTtl": "90s"},
                 id="compound-durations"),
    pytest.param("prod", {"spire.caTtl": "24h", "spire.defaultX509SvidTtl": "4h"}, id="svid-ttl-exactly-a-sixth"),
    pytest.param("prod", {"workloads.ledger.spiffePath": "/ns/Payments/sa/Ledger_v2.1"},
                 id="path-uppercase-dots-underscores"),
    pytest.param("prod", {"workloads.ledger.spiffePath": "/spire-like/ledger"}, id="path-next-to-reserved"),
    pytest.param("prod", {"spire.trustDomain": "zt_1.acme-identity.net"}, id="td-underscore"),
    pytest.param("prod", {"ziti.advertisedAddress": "203.0.113.10"}, id="ipv4-advertised-address"),
    pytest.param("prod", {"domain": "examples.acme-identity.net"}, id="example-as-a-word"),
    pytest.param("prod", {"keycloak.hostname": "example.acme-identity.net"}, id="example-subdomain-of-a-real-domain"),
    pytest.param("prod", {"keycloak.realm": "acme.platform_2-eu"}, id="realm-path-safe"),
    pytest.param("prod", {"workloads.ledger.dnsNames": ["*.ledger.payments.internal", "xn--bcher-kva.example"]},
                 id="wildcard-and-punycode-dns"),
    pytest.param("prod", {("workloads", "ledger.v2"): {**PROD_WORKLOAD, "spiffePath": "/ns/ledger/v2"}},
                 id="workload-name-with-dot"),
    pytest.param("prod", {"ziti.routerPort": 8443, "keycloak.publishedPort": 8080}, id="distinct-free-ports"),
    pytest.param("dev", {"strict": "False"}, id="strict-as-the-sdk-reads-it"),
    pytest.param("dev", {"nodes": {"local": {"dockerHost": "unix:///var/run/docker.sock", "manager": True,
                                             "labels": {"zt.db": "true"}}}}, id="dev-local-engine"),
    pytest.param("external", {"spire.transport": {"kind": "kubectl-exec", "namespace": "spire", "pod": "sts/spire"}},
                 id="kubectl-on-external"),
    pytest.param("external", {"spire.transport.socketPath": "unix:///run/user/1000/spire-admin.sock"},
                 id="grpc-unix-target-form"),
]  # fmt: skip


class TestNearMissesAreAccepted:
    @pytest.mark.parametrize(("stack", "changes"), ACCEPTED)
    def test_loads(self, stack: str, changes: dict[Any, Any]) -> None:
        cfg = load(stack, changes)
        assert cfg.environment == {"dev": "dev", "prod": "prod", "external": "prod"}[stack]


# -- one stack file, many mistakes: every line in one ConfigError ----------------------------------

MANY = {
    "workload": {"api": PROD_WORKLOAD},
    "spirre": {"trustDomain": "zt.acme-identity.net"},
    "strict": "maybe",
    "spire.trustDomain": "zt..acme-identity.net",
    "spire.caTtl": "1 day",
    "spire.defaultJwtSvidTtl": "-5m",
    "spire.transport.kind": "kubectl-exec",
    "keycloak.hostname": "https://auth.zt.acme-identity.net",
    "keycloak.realm": "master",
    "keycloak.publishedPort": 1280,
    "ziti.routerName": "edge router",
    "ziti.routerPort": 2377,
    "ziti.routerAdvertisedAddress": "router.example.co.uk",
    "nodes.worker-2.dockerHost": "unix:///var/run/docker.sock",
    "images.postgres": "docker.io/library/postgres:17",
    "workloads.ledger.spiffePath": "/ns/payments/sa/api",
    "workloads.payments-api.selectors": ["docker:", "unix:uid:1000", "unix:uid:1000"],
    "workloads.payments-api.dnsNames": ["api_v1.payments.internal"],
    ("workloads", "batch job"): {**PROD_WORKLOAD, "spiffePath": "/spire/batch"},
}
MANY_LINES = [
    ("strict", "'maybe' is not true or false"),
    ("images.postgres", "the tag '17' is not a full version (major.minor)"),
    ("spire.trustDomain", "'zt..acme-identity.net' is not a SPIFFE trust domain: trust domain must not contain an "
                          "empty label ('..')"),
    ("spire.caTtl", "'1 day' is not a duration SPIRE can read"),
    ("spire.defaultJwtSvidTtl", "'-5m' has a sign: a TTL is a positive duration"),
    ("keycloak.hostname", "'https://auth.zt.acme-identity.net' is a URL or a path"),
    ("keycloak.realm", "'master' is Keycloak's administration realm"),
    ("ziti.routerName", "'edge router' is not a valid name"),
    ("workloads.payments-api.selectors[0]", "selector 'docker:': value is empty"),
    ("workloads.payments-api.dnsNames[0]", "label 'api_v1' may contain only letters, digits and '-'"),
    ('workloads["batch job"]', "'batch job' is not a valid name"),
    ('workloads["batch job"].spiffePath', "'/spire/batch' is in SPIRE's reserved /spire namespace"),
    ("workloads.payments-api.selectors", "selector 'unix:uid:1000' is listed more than once"),
    ("spire.transport.kind", "kubectl-exec runs the SPIRE CLI in a Kubernetes pod"),
    ("ziti.advertisedPort", "1280 is already keycloak.publishedPort"),
    ("ziti.routerPort", "2377 is already Docker Swarm's cluster management port"),
    ("workloads.payments-api.spiffePath", "'/ns/payments/sa/api' is also the path of workloads.ledger"),
    ("ziti.routerAdvertisedAddress", f"'router.example.co.uk' {STRICT_PLACEHOLDER}"),
    ("nodes.worker-2.dockerHost", "'unix:///var/run/docker.sock' is the engine of the machine running Pulumi"),
    ("spirre", "unknown key (did you mean 'spire'?)"),
    ("workload", "unknown key (did you mean 'workloads'?)"),
]  # fmt: skip


def many_values() -> tuple[dict[str, str | None], set[str]]:
    values, secret = stack_values("prod")
    for path, value in MANY.items():
        change(values, path, value)
    return values, secret


def stack_file_of(values: dict[str, str | None], secret: set[str], path: Path) -> None:
    """Write `values` back as a `Pulumi.<stack>.yaml` (objects as YAML, secrets as `secure:`)."""
    config: dict[str, Any] = {}
    for key, text in values.items():
        if key in secret:
            config[key] = {"secure": "v1:AAAA"}
        elif text is not None and text[:1] in "{[":
            config[key] = json.loads(text)
        else:
            config[key] = text
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))


class TestManyMistakesAtOnce:
    def test_every_line_in_one_error(self) -> None:
        values, secret = many_values()
        with pytest.raises(ConfigError) as e:
            stack_config.parse_stack_values(values, secret)
        head, *lines = str(e.value).split("\n  ")
        assert head == "invalid stack configuration:"
        assert [line.split(": ", 1)[0] for line in lines] == [f"{P}:{key}" for key, _ in MANY_LINES], "\n".join(lines)
        for line, (_, fragment) in zip(lines, MANY_LINES, strict=True):
            assert fragment in line, line
            assert "(fix: `pulumi config " in line, line

    def test_the_program_reads_them_the_same_way(self) -> None:
        """Under the mock engine, `load()` reads every key of the namespace the CLI passes."""
        values, _ = many_values()
        overrides = {k: v for k, v in values.items() if k.startswith(f"{P}:") and v is not None}
        with pytest.raises(ConfigError) as program:
            mock_engine.run_program("prod", preview=True, config=overrides)
        with pytest.raises(ConfigError) as direct:
            stack_config.parse_stack_values(*many_values())
        assert str(program.value) == str(direct.value)

    def test_python_m_ops_agrees_with_preview(self, tmp_path: Path) -> None:
        """The pre-check reads the stack file through the same loader: the same lines."""
        for f in ROOT.glob("Pulumi*.yaml"):
            (tmp_path / f.name).write_text(f.read_text())
        values, secret = many_values()
        stack_file_of({k: v for k, v in values.items() if k.startswith(f"{P}:")}, secret, tmp_path / "Pulumi.prod.yaml")
        with pytest.raises(OpsError) as ops_error:
            validate_stack_config("prod", tmp_path)
        with pytest.raises(ConfigError) as direct:
            stack_config.parse_stack_values(*many_values())
        assert ops_error.value.message == str(direct.value)


def test_the_gate_covers_each_stack_file_unchanged() -> None:
    """No rule refuses the committed stack files (with the secrets their operator sets)."""
    for stack in mock_engine.stack_files():
        assert load(stack, {}).environment in ("dev", "prod")


def test_changes_helper_does_not_touch_the_stack_file() -> None:
    before = copy.deepcopy(stack_values("prod"))
    load("prod", {"keycloak.realm": "platform"})
    assert stack_values("prod") == before
