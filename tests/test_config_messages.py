"""The config gate's own wording: dev defaults that survive a partial section, YAML scalars a user
types where a string is expected, seconds said as seconds, the providers' URL and secret rules at
load, plain wording instead of pydantic's, and no duplicate line for a misspelt required key.

Like tests/test_config_gate.py, each case feeds a stack file as the CLI hands it over, with one
change, and asserts the exact user-facing parts of each line.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.test_config_gate import P, load, problems, set_


def only(stack: str, changes: dict[Any, Any]) -> list[str]:
    """The problem lines, without the `identity-platform:` prefix."""
    return [line.removeprefix(f"{P}:") for line in problems(stack, changes)]


# -- 1. swarm dev: a partial section keeps the section's other defaults ----------------------------


class TestDevDefaultsPerField:
    @pytest.mark.parametrize(
        ("changes", "check"),
        [
            pytest.param({"keycloak.realm": "acme"},
                         lambda c: (c.keycloak.realm, c.keycloak.hostname, c.keycloak.published_port)
                         == ("acme", "localhost", 8080), id="keycloak-realm"),
            pytest.param({"ziti.advertisedPort": 1281}, lambda c: (c.ziti.advertised_port, c.ziti.advertised_address,
                                                                  c.ziti.cluster_trust_domain,
                                                                  c.ziti.router_advertised_address)
                         == (1281, "localhost", "ctrl.dev.zt.internal", "localhost"), id="ziti-port"),
            pytest.param({"spire.caTtl": "48h"}, lambda c: (c.spire.ca_ttl, c.spire.trust_domain)
                         == ("48h", "dev.zt.internal"), id="spire-ca-ttl"),
            pytest.param({("nodes", "local", "labels", "rack"): "a1"},
                         lambda c: (c.nodes["local"].docker_host, c.nodes["local"].labels, c.nodes["local"].manager)
                         == ("unix:///var/run/docker.sock", {"zt.db": "true", "rack": "a1"}, True), id="node-label"),
        ],
    )  # fmt: skip
    def test_a_nested_key_keeps_the_other_defaults(self, changes: dict[Any, Any], check: Any) -> None:
        assert check(load("dev", changes))

    def test_a_value_set_to_null_is_refused_without_none_in_the_message(self) -> None:
        lines = only("dev", {"keycloak.hostname": None})
        assert lines == [f"keycloak.hostname: required: set it {set_('keycloak.hostname')}"]
        assert not any("None" in line for line in problems("dev", {"keycloak.hostname": None}))


# -- 5. plain wording for pydantic's errors: allowed values, ranges and formats ---------------------

WORKLOAD_KEYS = "{spiffePath, node, selectors, zitiRoleAttributes, dnsNames, x509SvidTtl, federatesWith, svidHelper}"
PLAIN = [
    pytest.param("prod", {"environment": "production"},
                 "environment: 'production' is not one of dev, prod (fix: `pulumi config set 'environment' <value>`)",
                 id="literal"),
    pytest.param("prod", {"platform": "k8s"},
                 "platform: 'k8s' is not one of swarm, external, kubernetes "
                 "(fix: `pulumi config set 'platform' <value>`)", id="literal-platform"),
    pytest.param("prod", {"storage.backupIntervalMinutes": 30},
                 "storage.backupIntervalMinutes: must be at most 15, not 30 "
                 f"{set_('storage.backupIntervalMinutes')}", id="le"),
    pytest.param("prod", {"ziti.advertisedPort": 0},
                 f"ziti.advertisedPort: must be at least 1, not 0 {set_('ziti.advertisedPort')}", id="ge"),
    pytest.param("prod", {"spire.rootCaValidityHours": 24},
                 f"spire.rootCaValidityHours: must be more than 24, not 24 {set_('spire.rootCaValidityHours')}",
                 id="gt"),
    pytest.param("prod", {"spire.rootCaValidityHours": "10y"},
                 f"spire.rootCaValidityHours: must be a whole number, not '10y' {set_('spire.rootCaValidityHours')}",
                 id="int-parsing"),
    pytest.param("prod", {"ziti.routerPort": 3022.5},
                 f"ziti.routerPort: must be a whole number, not 3022.5 {set_('ziti.routerPort')}", id="int-from-float"),
    pytest.param("prod", {"workloads": [{"spiffePath": "/a", "node": "worker-1", "selectors": ["unix:uid:1"]}]},
                 f"workloads: must be a map of workload name to {WORKLOAD_KEYS}, not a list "
                 "(fix: `pulumi config set 'workloads' <value>`)", id="dict-type"),
    pytest.param("prod", {("nodes", "worker-1", "labels"): ["zt.role=worker"]},
                 "nodes.worker-1.labels: must be a map of label to text, not a list "
                 f"{set_('nodes.worker-1.labels')}", id="labels-dict-type"),
    pytest.param("prod", {("workloads", "ledger"): None},
                 f"workloads.ledger: must be an object with keys {WORKLOAD_KEYS[1:-1]}, not null "
                 f"{set_('workloads.ledger')}", id="model-type"),
    pytest.param("prod", {"workloads.ledger.selectors": "unix:uid:1500"},
                 "workloads.ledger.selectors: must be a list of text (- item lines, or [a, b]), not 'unix:uid:1500' "
                 f"{set_('workloads.ledger.selectors')}", id="list-type"),
    pytest.param("prod", {"region": "FRA1"},
                 "region: 'FRA1' is not a DigitalOcean region slug: three lowercase letters, a digit (fra1) "
                 "(fix: `pulumi config set 'region' <value>`)", id="pattern-region"),
    pytest.param("external", {"users.alice.email": "alice@acme"},
                 "users.alice.email: 'alice@acme' is not an email address: name@domain with a dot in the domain, "
                 f"e.g. alice@acme.net {set_('users.alice.email')}", id="pattern-email"),
    pytest.param("prod", {"keycloak.proxyNetwork": "caddy caddy"},
                 "keycloak.proxyNetwork: 'caddy caddy' is not a Docker network name: letters, digits, '_', '.' or "
                 f"'-', starting with a letter or digit (caddy_caddy) {set_('keycloak.proxyNetwork')}",
                 id="pattern-name"),
    pytest.param("prod", {"keycloak.realm": ""},
                 f"keycloak.realm: must not be empty {set_('keycloak.realm')}", id="string-too-short"),
    pytest.param("prod", {"workloads.ledger.selectors": []},
                 f"workloads.ledger.selectors: needs at least one item {set_('workloads.ledger.selectors')}",
                 id="too-short"),
]  # fmt: skip


class TestPlainWording:
    @pytest.mark.parametrize(("stack", "changes", "expected"), PLAIN)
    def test_the_line(self, stack: str, changes: dict[Any, Any], expected: str) -> None:
        assert only(stack, changes) == [expected]

    def test_no_pydantic_wording_or_class_name(self) -> None:
        for stack, changes in (("prod", {"spire": "zt.acme-identity.net"}), ("prod", {"nodes.worker-2": 3})):
            text = "\n".join(problems(stack, changes))
            for jargon in ("Input should", "instance of", "SpireSettings", "NodeSpec", "dictionary"):
                assert jargon not in text, text


# -- 6. a misspelt required key: the did-you-mean line alone ---------------------------------------


def test_a_misspelt_required_key_has_one_line() -> None:
    assert only("prod", {("nodes", "worker-2"): {"dockerhost": "ssh://root@10.114.0.4"}}) == [
        "nodes.worker-2.dockerhost: unknown key (did you mean 'dockerHost'?): remove it or check its spelling "
        "(fix: `pulumi config rm --path 'nodes.worker-2.dockerhost'`)"
    ]


def test_a_misspelt_optional_key_beside_a_missing_one_keeps_both() -> None:
    assert only("prod", {("nodes", "worker-2"): {"labelz": {}}}) == [
        f"nodes.worker-2.dockerHost: required: set it {set_('nodes.worker-2.dockerHost')}",
        "nodes.worker-2.labelz: unknown key (did you mean 'labels'?): remove it or check its spelling "
        "(fix: `pulumi config rm --path 'nodes.worker-2.labelz'`)",
    ]


# -- 3. workloads.<name>.x509SvidTtl is whole seconds, and its messages say so ---------------------

SVID_TTL = "workloads.ledger.x509SvidTtl"
SECONDS = [
    pytest.param({SVID_TTL: 2592000},
                 f"{SVID_TTL}: 2592000 seconds is longer than 7 days, the longest SVID lifetime SPIRE guarantees "
                 f"across CA rotations: set it to at most 604800 seconds (7 days) {set_(SVID_TTL)}", id="over-7-days"),
    pytest.param({SVID_TTL: 86400},
                 f"{SVID_TTL}: 86400 seconds is more than a sixth of spire.caTtl ('24h'), so SPIRE would issue "
                 "shorter SVIDs around CA rotations: set it to at most 14400 seconds (4h), or spire.caTtl to 144h "
                 f"or more {set_(SVID_TTL)}", id="over-a-sixth"),
    pytest.param({SVID_TTL: "1h"},
                 f"{SVID_TTL}: '1h' is a duration, but x509SvidTtl is whole seconds: write 3600 {set_(SVID_TTL)}",
                 id="go-duration"),
    pytest.param({SVID_TTL: "an hour"},
                 f"{SVID_TTL}: 'an hour' is not a number of seconds: x509SvidTtl is whole seconds, e.g. 3600 "
                 f"for an hour (0: the server's default) {set_(SVID_TTL)}", id="text"),
]  # fmt: skip


class TestSvidTtlInSeconds:
    @pytest.mark.parametrize(("changes", "expected"), SECONDS)
    def test_the_line(self, changes: dict[Any, Any], expected: str) -> None:
        assert only("prod", changes) == [expected]

    def test_seconds_as_text_are_seconds(self) -> None:
        assert load("prod", {SVID_TTL: "3600"}).workloads["ledger"].x509_svid_ttl == 3600


class TestSvidTtlOnKubernetes:
    """The Kubernetes topologies that run the SPIRE server render its ca_ttl and default SVID TTLs
    from the same `spire` keys as Swarm, so an entry's x509SvidTtl is held to the same bound."""

    @pytest.mark.parametrize(
        ("stack", "workload"),
        [("k8s-dev", "user-service"), ("k8s-enterprise", "enterprise-api"),
         ("k8s-enterprise-nested", "enterprise-api")],
    )  # fmt: skip
    def test_an_entry_beyond_a_sixth_of_the_ca_ttl(self, stack: str, workload: str) -> None:
        key = f"workloads.{workload}.x509SvidTtl"
        assert only(stack, {(*key.split("."),): 86400}) == [
            f"{key}: 86400 seconds is more than a sixth of spire.caTtl ('24h'), so SPIRE would issue shorter SVIDs "
            f"around CA rotations: set it to at most 14400 seconds (4h), or spire.caTtl to 144h or more {set_(key)}"
        ]

    def test_an_entry_beyond_seven_days(self) -> None:
        key = "workloads.user-service.x509SvidTtl"
        assert only("k8s-dev", {("spire", "caTtl"): "2000h", (*key.split("."),): 2592000}) == [
            f"{key}: 2592000 seconds is longer than 7 days, the longest SVID lifetime SPIRE guarantees across CA "
            f"rotations: set it to at most 604800 seconds (7 days) {set_(key)}"
        ]

    def test_the_servers_default_svid_ttl(self) -> None:
        assert only("k8s-enterprise", {("spire", "defaultX509SvidTtl"): "5h"}) == [
            "spire.defaultX509SvidTtl: '5h' is more than a sixth of spire.caTtl ('24h'), so SPIRE would issue "
            f"shorter SVIDs around CA rotations: set it to 4h or less, or spire.caTtl to 30h or more "
            f"{set_('spire.defaultX509SvidTtl')}"
        ]

    def test_a_longer_ca_ttl_admits_the_entry(self) -> None:
        cfg = load("k8s-dev", {("spire", "caTtl"): "144h", ("workloads", "user-service", "x509SvidTtl"): 86400})
        assert cfg.workloads["user-service"].x509_svid_ttl == 86400

    def test_crd_free_leaves_the_entry_to_the_external_server(self) -> None:
        """Its server and CA TTL are someone else's: the program cannot know the bound."""
        cfg = load("k8s-crd-free", {("workloads", "ledger", "x509SvidTtl"): 86400})
        assert cfg.workloads["ledger"].x509_svid_ttl == 86400

    @pytest.mark.parametrize("stack", ["k8s-dev", "k8s-enterprise", "k8s-enterprise-nested"])
    def test_the_ca_ttl_checked_is_the_one_each_server_conf_renders(self, stack: str) -> None:
        from components.kubernetes.enterprise_config import build_side_server_conf, enterprise_sides
        from components.kubernetes.spire_config import build_server_conf

        cfg = load(stack, {("spire", "caTtl"): "48h", ("spire", "defaultX509SvidTtl"): "2h"})
        assert cfg.kubernetes is not None
        if cfg.kubernetes.enterprise is None:
            confs = [build_server_conf(cfg.spire, "dev")]
        else:
            confs = [build_side_server_conf(cfg.spire, cfg.kubernetes.enterprise, side)
                     for side in enterprise_sides(cfg.spire.trust_domain, cfg.kubernetes.enterprise).values()]
        assert len(confs) == (1 if stack == "k8s-dev" else 2)
        assert {(c.server.ca_ttl, c.server.default_x509_svid_ttl) for c in confs} == {("48h", "2h")}


# -- 2. YAML scalars where a user naturally types them into a text value ---------------------------


class TestYamlScalarsAsText:
    def test_the_programs_own_zt_db_hint_is_accepted(self) -> None:
        """`pulumi config set --path 'nodes.<name>.labels["zt.db"]' true` stores a YAML boolean."""
        cfg = load("prod", {("nodes", "manager-1", "labels", "zt.db"): False,
                            ("nodes", "worker-1", "labels", "zt.db"): True,
                            ("nodes", "worker-1", "labels", "rack"): 7,
                            "spire.transport.node": "worker-1"})  # fmt: skip
        assert cfg.nodes["worker-1"].labels == {"zt.role": "worker", "zt.db": "true", "rack": "7"}
        assert cfg.nodes["manager-1"].labels["zt.db"] == "false"
        assert cfg.stateful_nodes == ["worker-1"]

    def test_imports_ids_gitops_revision_and_gateway_selector(self) -> None:
        assert load("prod", {"imports": {"ziti-trust-spire-ca": 12345}}).imports == {"ziti-trust-spire-ca": "12345"}
        cfg = load("k8s-prod", {("kubernetes", "iam", "gitops", "revision"): 2024,
                                ("kubernetes", "iam", "gatewaySelector"): {"istio": "ingressgateway", "canary": True}})
        assert cfg.kubernetes is not None and cfg.kubernetes.iam is not None
        assert cfg.kubernetes.iam.gitops is not None and cfg.kubernetes.iam.gitops.revision == "2024"
        assert cfg.kubernetes.iam.gateway_selector == {"istio": "ingressgateway", "canary": "true"}

    @pytest.mark.parametrize(
        ("changes", "expected"),
        [
            pytest.param({"spire.caTtl": 24},
                         "spire.caTtl: 24 has no unit: a bare number is ambiguous for a duration; write it with its "
                         f"unit, e.g. 24h, 45m or 90s {set_('spire.caTtl')}", id="duration-number"),
            pytest.param({"spire.defaultX509SvidTtl": "3600"},
                         "spire.defaultX509SvidTtl: '3600' has no unit: a bare number is ambiguous for a duration; "
                         f"write it with its unit, e.g. 24h, 45m or 90s {set_('spire.defaultX509SvidTtl')}",
                         id="duration-digits"),
            pytest.param({"workloads.ledger.selectors": [1500]},
                         "workloads.ledger.selectors[0]: must be text, not 1500: write it in quotes (\"1500\") "
                         f"{set_('workloads.ledger.selectors[0]')}", id="other-text-stays-strict"),
            pytest.param({("nodes", "worker-1", "labels", "rack"): 1.5},
                         "nodes.worker-1.labels.rack: must be text, not 1.5: write it in quotes (\"1.5\") "
                         f"{set_('nodes.worker-1.labels.rack')}", id="label-float"),
        ],
    )  # fmt: skip
    def test_refused(self, changes: dict[Any, Any], expected: str) -> None:
        assert only("prod", changes) == [expected]


# -- 4. what the providers refuse later is refused at load -----------------------------------------

KC_PLAIN = ("is plain http to a host other than this machine, which the Keycloak provider refuses: use https "
            "(plain http only to localhost)")  # fmt: skip
REFUSED_URLS = [
    pytest.param("external", {"strict": "false", "keycloak.url": "http://auth.zt.acme-identity.net"},
                 f"keycloak.url: 'http://auth.zt.acme-identity.net' {KC_PLAIN}; a private CA goes in keycloak.caBundle "
                 f"{set_('keycloak.url')}", id="keycloak-http"),
    pytest.param("external", {"keycloak.url": "https://auth.zt.acme-identity.net/realms/platform"},
                 "keycloak.url: 'https://auth.zt.acme-identity.net/realms/platform' is a realm's issuer URL: give the "
                 f"base URL, without /realms/platform (e.g. https://auth.zt.acme-identity.net) {set_('keycloak.url')}",
                 id="keycloak-issuer"),
    pytest.param("external", {"strict": "false", "ziti.controllerUrl": "http://localhost:1280"},
                 "ziti.controllerUrl: 'http://localhost:1280' must be an https:// URL with a host (the controller "
                 f"only serves TLS) {set_('ziti.controllerUrl')}", id="ziti-http-loopback"),
    pytest.param("external", {"strict": "false", "ziti.controllerUrl": "http://ziti.lab.acme-identity.net:1280"},
                 "ziti.controllerUrl: 'http://ziti.lab.acme-identity.net:1280' must be an https:// URL with a host "
                 f"(the controller only serves TLS) {set_('ziti.controllerUrl')}", id="ziti-http"),
    pytest.param("external", {"ziti.controllerUrl": "https://ziti.zt.acme-identity.net:1280/edge/client/v1"},
                 "ziti.controllerUrl: 'https://ziti.zt.acme-identity.net:1280/edge/client/v1': give the controller "
                 f"base URL (https://host:port) or its /edge/management/v1 URL {set_('ziti.controllerUrl')}",
                 id="ziti-path"),
    pytest.param("k8s-dev", {("kubernetes", "iam", "adminUrl"): "http://auth.dev.acme-identity.net"},
                 f"kubernetes.iam.adminUrl: 'http://auth.dev.acme-identity.net' {KC_PLAIN} "
                 f"{set_('kubernetes.iam.adminUrl')}", id="iam-admin-url-http"),
    pytest.param("k8s-dev", {("kubernetes", "iam", "hostname"): "auth.dev.acme-identity.net"},
                 "kubernetes.iam.hostname: without kubernetes.iam.tlsCredential the Gateway serves plain http, so "
                 "the program would write the realm through 'http://auth.dev.acme-identity.net', which the Keycloak "
                 "provider refuses to a host other than this machine: name the Gateway's TLS Secret, or use a name "
                 "under .localhost, or set kubernetes.iam.adminUrl to an https URL "
                 "(fix: `pulumi config set --path 'kubernetes.iam.tlsCredential' <secret>`)", id="iam-hostname-dev"),
    pytest.param("dev", {"keycloak.hostname": "auth.lab.acme-identity.net"},
                 "keycloak.hostname: in dev Keycloak is served over plain http, so the program would write the realm "
                 "through 'http://auth.lab.acme-identity.net:8080', which the Keycloak provider refuses to a host "
                 "other than this machine: use localhost or a name under .localhost "
                 f"{set_('keycloak.hostname')}", id="swarm-dev-hostname"),
]  # fmt: skip


class TestProviderRulesAtLoad:
    @pytest.mark.parametrize(("stack", "changes", "expected"), REFUSED_URLS)
    def test_the_line(self, stack: str, changes: dict[Any, Any], expected: str) -> None:
        assert only(stack, changes) == [expected]

    @pytest.mark.parametrize(
        ("stack", "changes"),
        [
            pytest.param("external", {"ziti.controllerUrl": "https://ziti.zt.acme-identity.net:1280/edge/management/v1"},
                         id="ziti-management-path"),
            pytest.param("external", {"strict": "false", "keycloak.url": "http://localhost:8080"},
                         id="keycloak-http-loopback"),
            pytest.param("k8s-dev", {("kubernetes", "iam", "hostname"): "auth.dev.acme-identity.net",
                                     ("kubernetes", "iam", "tlsCredential"): "auth-tls"}, id="iam-dev-with-tls"),
            pytest.param("dev", {"keycloak.hostname": "auth.localhost"}, id="swarm-dev-localhost-name"),
        ],
    )  # fmt: skip
    def test_accepted(self, stack: str, changes: dict[Any, Any]) -> None:
        load(stack, changes)

    @pytest.mark.parametrize("key", ["keycloakAdminPassword", "zitiAdminPassword"])
    @pytest.mark.parametrize("empty", ["", "  \n"])
    def test_an_empty_admin_password(self, key: str, empty: str) -> None:
        import stack_config
        from stack_config import ConfigError
        from tests.test_config_gate import stack_values

        values, secret = stack_values("external")
        values[f"{P}:{key}"] = empty
        with pytest.raises(ConfigError) as e:
            stack_config.parse_stack_values(values, secret | {f"{P}:{key}"})
        assert str(e.value).split("\n  ")[1:] == [
            f"{P}:{key}: is empty: set the password (fix: `pulumi config set --secret {key}` and paste the value, "
            "or pipe it in on stdin)"
        ]


# -- imports: a name no Ziti resource of the stack has is refused at load, with the others ------------

CHAIN = ("ziti-trust-spire-ca, ziti-trust-workload-policy, ziti-trust-keycloak-signer, ziti-trust-user-policy, "
         "ziti-trust-router, ziti-trust-all-routers, ziti-trust-all-services")  # fmt: skip
OWNED = "other objects are adopted by their ownership marker (docs/providers/)"


def rm(key: str) -> str:
    return f"(fix: `pulumi config rm --path '{key}'`)"


class TestImportsAtLoad:
    def test_a_misspelt_name(self) -> None:
        assert only("dev", {("imports", "ziti-trust-routr"): "id-1"}) == [
            "imports.ziti-trust-routr: names no Ziti object of this stack (did you mean 'ziti-trust-router'?): "
            f"only the trust chain's Ziti objects can be taken over, here {CHAIN} and "
            f"ziti-trust-identity-<key of workloads>; {OWNED} {rm('imports.ziti-trust-routr')}"
        ]

    def test_a_workload_the_stack_does_not_have(self) -> None:
        assert only("dev", {("imports", "ziti-trust-identity-ledger"): "id-1"}) == [
            "imports.ziti-trust-identity-ledger: names no Ziti object of this stack ('ledger' is not a key of "
            "workloads): only the trust chain's Ziti objects can be "
            f"taken over, here {CHAIN} and ziti-trust-identity-<key of workloads>; {OWNED} "
            f"{rm('imports.ziti-trust-identity-ledger')}"
        ]

    def test_a_misspelt_workload_key(self) -> None:
        [line] = only("dev", {("imports", "ziti-trust-identity-demo-apj"): "id-1"})
        assert line.startswith("imports.ziti-trust-identity-demo-apj: names no Ziti object of this stack "
                               "('demo-apj' is not a key of workloads; did you mean 'ziti-trust-identity-demo-api'?): ")

    def test_a_misspelt_policy_under_the_user_prefix(self) -> None:
        [line] = only("external", {("imports", "ziti-trust-user-polcy"): "id-1"})
        assert line.startswith("imports.ziti-trust-user-polcy: names no Ziti object of this stack "
                               "('polcy' is not a key of users; did you mean 'ziti-trust-user-policy'?): ")

    def test_a_resource_that_is_no_ziti_object(self) -> None:
        line = only("external", {("imports", "keycloak-identity-realm"): "id-1"})
        assert line == [
            "imports.keycloak-identity-realm: names no Ziti object of this stack: only the trust chain's Ziti "
            f"objects can be taken over, here {CHAIN.replace('ziti-trust-router, ', '')}, "
            "ziti-trust-identity-<key of workloads> and ziti-trust-user-<key of users>; "
            f"{OWNED} {rm('imports.keycloak-identity-realm')}"
        ]

    def test_a_key_with_a_dot_is_named_as_config_set_takes_it(self) -> None:
        [line] = only("dev", {("imports", "ziti-trust-identity-demo.api"): "id-1"})
        assert line.startswith('imports["ziti-trust-identity-demo.api"]: names no Ziti object of this stack')
        assert line.endswith(rm('imports["ziti-trust-identity-demo.api"]'))

    def test_reported_with_the_other_problems_at_load(self) -> None:
        lines = only("dev", {("imports", "qqqq"): "id-1", "keycloak.realm": "master"})
        assert [line.split(": ", 1)[0] for line in lines] == ["keycloak.realm", "imports.qqqq"]

    def test_the_router_only_where_the_stack_makes_it(self) -> None:
        [line] = only("external", {("imports", "ziti-trust-router"): "id-1"})
        assert line.startswith("imports.ziti-trust-router: names no Ziti object of this stack (the stack makes no "
                               "edge router entity without ziti.routerName): ")
        cfg = load("external", {("imports", "ziti-trust-router"): "id-1", "ziti.routerName": "edge-1"})
        assert cfg.imports == {"ziti-trust-router": "id-1"}

    def test_every_name_of_the_stack_is_accepted(self) -> None:
        names = ["ziti-trust-spire-ca", "ziti-trust-workload-policy", "ziti-trust-keycloak-signer",
                 "ziti-trust-user-policy", "ziti-trust-all-routers", "ziti-trust-all-services",
                 "ziti-trust-identity-payments-api", "ziti-trust-user-alice"]  # fmt: skip
        cfg = load("external", {"imports": {n: f"id-{n}" for n in names}})
        assert sorted(cfg.imports) == sorted(names)


@pytest.mark.parametrize(
    ("stack", "key"),
    [("prod", ("imports", "ziti-trust-spire-ca")), ("k8s-prod", ("kubernetes", "iam", "gitops", "revision"))],
)
def test_an_empty_text_that_takes_yaml_scalars_must_not_be_empty(stack: str, key: tuple[str, ...]) -> None:
    path = ".".join(key)
    assert only(stack, {key: ""}) == [f"{path}: must not be empty {set_(path)}"]


# -- 7. kubernetes.sampleWorkloads: workload keys and k8s:ns / k8s:sa values are object names --------

K8S_NAME = (
    "a Kubernetes object name is 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
)
SAMPLE = {"spiffePath": "/ns/production/sa/us2", "node": "dev", "selectors": ["k8s:ns:production", "k8s:sa:us2"]}


class TestSampleWorkloadNames:
    def test_a_workload_key(self) -> None:
        assert only("k8s-dev", {"workloads.user_service": SAMPLE}) == [
            "workloads.user_service: 'user_service' names the workload's Deployment, ServiceAccount and ConfigMap "
            f"(kubernetes.sampleWorkloads): {K8S_NAME}: declare the workload under another key "
            "(fix: `pulumi config rm --path 'workloads.user_service'`, then set it under the new key)"
        ]

    def test_namespace_and_service_account_selectors(self) -> None:
        sample = {**SAMPLE, "selectors": ["k8s:ns:Production", "k8s:sa:us_2"]}
        assert only("k8s-dev", {"workloads.us2": sample}) == [
            "workloads.us2.selectors: 'Production' (k8s:ns) names the sample's Namespace and 'us_2' (k8s:sa) names "
            f"the sample's ServiceAccount (kubernetes.sampleWorkloads): {K8S_NAME} {set_('workloads.us2.selectors')}"
        ]

    def test_without_samples_the_names_are_not_the_programs(self) -> None:
        load("k8s-dev", {"workloads.user_service": SAMPLE, ("kubernetes", "sampleWorkloads"): False})


# -- URLs that would carry credentials or token keys in the clear; selectors no agent attests ------


class TestUrlsInTheClear:
    @pytest.mark.parametrize(
        ("key", "url"),
        [("keycloak.url", "https://admin:s3cret@auth.zt.acme-identity.net"),
         ("ziti.controllerUrl", "https://admin:s3cret@ziti.zt.acme-identity.net:1280"),
         ("keycloak.jwksUrl", "https://u:s3cret@auth.zt.acme-identity.net/realms/platform/protocol/openid-connect/certs")],
    )  # fmt: skip
    def test_credentials_in_a_url_are_refused_without_echoing_them(self, key: str, url: str) -> None:
        lines = only("external", {key: url})
        assert len(lines) == 1 and lines[0].startswith(f"{key}: carries credentials (user:password@)")
        assert "s3cret" not in "\n".join(problems("external", {key: url}))

    def test_the_token_keys_over_plain_http_to_another_host_are_refused(self) -> None:
        url = "http://auth.zt.acme-identity.net/realms/platform/protocol/openid-connect/certs"
        assert only("external", {"strict": "false", "keycloak.jwksUrl": url}) == [
            f"keycloak.jwksUrl: {url!r} is plain http to a host other than this machine: anyone on the path could "
            "swap the realm's signing keys and forge tokens Ziti accepts; use https (plain http only to localhost) "
            f"{set_('keycloak.jwksUrl')}"
        ]

    def test_the_token_keys_over_plain_http_to_this_machine_are_accepted(self) -> None:
        load("external", {"strict": "false",
                          "keycloak.jwksUrl": "http://localhost:8080/realms/platform/protocol/openid-connect/certs"})


class TestSwarmSelectors:
    def test_a_selector_no_swarm_agent_attests_is_refused(self) -> None:
        changes = {("workloads", "ledger", "selectors"): ["k8s:ns:payments", "systemd:id:ledger.service"]}
        assert only("prod", changes) == [
            "workloads.ledger.selectors: the Swarm agents attest workloads with the docker and unix workload "
            "attestors only, so 'k8s:ns:payments', 'systemd:id:ledger.service' would never match: use docker:* "
            "(e.g. docker:label:com.docker.swarm.service.name:<stack>_<service>) or unix:* selectors "
            f"{set_('workloads.ledger.selectors')}"
        ]

    def test_docker_and_unix_selectors_are_accepted(self) -> None:
        load("prod", {("workloads", "ledger", "selectors"): ["docker:label:app:ledger", "unix:uid:1500"]})


def test_the_swarm_attestors_the_rule_names_are_the_agents_own() -> None:
    from components.spire_stack import build_agent_conf
    from stack_config import SWARM_WORKLOAD_ATTESTORS

    attestors = build_agent_conf("prod.example").workload_attestors
    assert sorted(p.name for p in attestors) == sorted(SWARM_WORKLOAD_ATTESTORS) == ["docker", "unix"]


# -- ports and other whole numbers: a YAML boolean is not one (`pulumi config set --path k true` stores one) --

# (stack, key, the refusal's wording, an example): ports and the other whole-number keys
NUMBERS = [
    pytest.param("dev", "keycloak.publishedPort", "a port number: give the port", 8080, id="keycloak-published"),
    pytest.param("prod", "ziti.advertisedPort", "a port number: give the port", 1280, id="ziti-advertised"),
    pytest.param("prod", "ziti.routerPort", "a port number: give the port", 3022, id="ziti-router"),
    pytest.param("k8s-crd-free", "kubernetes.externalServer.port", "a port number: give the port", 8081,
                 id="external-server"),
    pytest.param("k8s-dev", "kubernetes.ziti.controllerNodePort", "a port number: give the port", 31280,
                 id="controller-node-port"),
    pytest.param("k8s-dev", "kubernetes.ziti.routerNodePort", "a port number: give the port", 31022,
                 id="router-node-port"),
    pytest.param("prod", "spire.rootCaValidityHours", "a number of hours: give one", 87600, id="root-ca-hours"),
    pytest.param("prod", "storage.noncurrentVersionDays", "a number of days: give one", 30, id="noncurrent-days"),
    pytest.param("prod", "storage.backupIntervalMinutes", "a number of minutes: give one", 15, id="backup-minutes"),
    pytest.param("prod", "workloads.payments-api.x509SvidTtl", "a number of seconds: give one", 3600,
                 id="svid-seconds"),
    pytest.param("k8s-prod", "kubernetes.iam.logsRetentionDays", "a number of days: give one", 30, id="logs-days"),
    pytest.param("k8s-prod", "kubernetes.iam.metricsRetentionDays", "a number of days: give one", 30,
                 id="metrics-days"),
]


class TestNumbersAreNumbers:
    """YAML reads `true` as a boolean, which Python counts as 1: refused, not read as a number."""

    @pytest.mark.parametrize("value", [True, False])
    @pytest.mark.parametrize(("stack", "key", "wording", "example"), NUMBERS)
    def test_a_boolean_is_refused(self, stack: str, key: str, wording: str, example: int, value: bool) -> None:
        shown = "true" if value else "false"
        expected = f"{key}: {shown} is not {wording}, e.g. {example} {set_(key)}"
        assert only(stack, {tuple(key.split(".")): value}) == [expected]

    @pytest.mark.parametrize(("stack", "key", "wording", "example"), NUMBERS)
    def test_the_number_as_text_is_the_number(self, stack: str, key: str, wording: str, example: int) -> None:
        cfg = load(stack, {tuple(key.split(".")): str(example)})
        value: Any = cfg
        for part in key.split("."):
            value = value[part] if isinstance(value, dict) else getattr(value, re.sub(r"([A-Z])", r"_\1", part).lower())
        assert value == example


# -- a broken kubernetes.enterprise block: its own problem, once, with no consequence after it -------

ENT = ("kubernetes", "enterprise")


class TestBrokenEnterpriseBlock:
    @pytest.mark.parametrize("stack", ["k8s-enterprise", "k8s-enterprise-nested"])
    @pytest.mark.parametrize(
        ("changes", "expected"),
        [
            pytest.param({ENT: "oops"}, "kubernetes.enterprise: must be an object with keys upstream, downstream, "
                         "controllerManager, nesting, not 'oops' (fix: `pulumi config set --path "
                         "'kubernetes.enterprise' <value>`)", id="not-an-object"),
            pytest.param({(*ENT, "downstream"): "x"}, "kubernetes.enterprise.downstream: must be an object with keys "
                         "cluster, address, apiServer, trustDomain, not 'x' (fix: `pulumi config set --path "
                         "'kubernetes.enterprise.downstream' <value>`)", id="downstream-not-an-object"),
            pytest.param({(*ENT, "upstream", "address"): "bad address!"},
                         "kubernetes.enterprise.upstream.address: 'bad address!' contains whitespace: give one host "
                         "name (e.g. auth.acme.net) (fix: `pulumi config set --path "
                         "'kubernetes.enterprise.upstream.address' <value>`)", id="bad-address"),
            pytest.param({(*ENT, "nesting"): "deep"}, "kubernetes.enterprise.nesting: 'deep' is not one of none, "
                         "spire (fix: `pulumi config set --path 'kubernetes.enterprise.nesting' <value>`)",
                         id="bad-nesting"),
        ],
    )  # fmt: skip
    def test_one_line(self, stack: str, changes: dict[Any, Any], expected: str) -> None:
        assert only(stack, changes) == [expected]

    def test_a_missing_block_is_one_line(self) -> None:
        assert only("k8s-enterprise", {ENT: None}) == [
            "kubernetes.enterprise: required with the enterprise topology: the upstream and downstream clusters, "
            "the downstream trust domain and each side's node address (fix: `pulumi config set --path "
            "'kubernetes.enterprise.downstream.trustDomain' <name>`)"
        ]

    def test_a_federation_problem_of_its_own_is_still_reported(self) -> None:
        """With a valid block, a workload federating with a trust domain its server lacks stays refused."""
        [line] = only("k8s-enterprise", {("workloads", "enterprise-api", "federatesWith"): ["elsewhere.acme.net"]})
        assert line.startswith("workloads.enterprise-api.federatesWith: 'elsewhere.acme.net' is not federated with "
                               "'branch.acme-identity.net'")
