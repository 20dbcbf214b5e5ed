"""One test per config validator: a bad value raises ConfigError naming the full config key."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from stack_config import ConfigError, parse
from tests.harness.mock_engine import ROOT, run_program


def prod_raw() -> dict[str, Any]:
    """Pulumi.prod.yaml's identity-platform keys as the program receives them."""
    doc = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    return {k.split(":", 1)[1]: v for k, v in doc.items() if k.startswith("identity-platform:")}


def with_path(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    *parents, leaf = path.split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    return raw


class TestStackFilesAreValid:
    @pytest.mark.parametrize("stack", ["dev", "prod"])
    def test_stack_file_parses(self, stack: str) -> None:
        doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        raw = {k.split(":", 1)[1]: v for k, v in doc.items() if k.startswith("identity-platform:")}
        cfg = parse(raw)
        assert cfg.environment == stack
        assert cfg.is_strict is (stack == "prod")

    def test_dev_needs_only_the_environment(self) -> None:
        cfg = parse({"environment": "dev"})
        assert list(cfg.nodes) == ["local"]
        assert cfg.nodes["local"].docker_host == "unix:///var/run/docker.sock"  # Docker's default local socket
        assert cfg.keycloak.hostname == "localhost"

    def test_model_is_frozen(self) -> None:
        cfg = parse({"environment": "dev"})
        with pytest.raises(ValueError, match="frozen"):
            cfg.domain = "x"  # type: ignore[misc]


# (dotted path, bad value, expected key in the message, expected hint)
BAD_VALUES = [
    ("environment", "staging", "identity-platform:environment", "dev"),
    ("region", "Frankfurt", "identity-platform:region", "is not a DigitalOcean region slug"),
    ("domain", "example.org", "identity-platform:domain", "placeholder"),
    ("domain", "localhost", "identity-platform:domain", "localhost"),
    ("spire.trustDomain", "example.org", "identity-platform:spire.trustDomain", "placeholder"),
    ("spire.trustDomain", "spiffe://zt.acme.net", "identity-platform:spire.trustDomain", "without a scheme"),
    ("spire.datastore", "mysql", "identity-platform:spire.datastore", "sqlite3"),
    ("spire.transport.kind", "ssh", "identity-platform:spire.transport.kind", "docker-exec"),
    ("spire.transport.node", "nope", "identity-platform:spire.transport.node", "not a key of `nodes`"),
    ("keycloak.hostname", "auth.example.com", "identity-platform:keycloak.hostname", "placeholder"),
    ("keycloak.realm", "", "identity-platform:keycloak.realm", "must not be empty"),
    ("keycloak.publishedPort", 70000, "identity-platform:keycloak.publishedPort", "65535"),
    ("ziti.advertisedAddress", "localhost", "identity-platform:ziti.advertisedAddress", "localhost"),
    ("ziti.clusterTrustDomain", "zt.acme-identity.net", "identity-platform:ziti.clusterTrustDomain", "must differ"),
    ("ziti.routerAdvertisedAddress", "r.example.net", "identity-platform:ziti.routerAdvertisedAddress", "placeholder"),
    ("images.keycloak", "quay.io/keycloak/keycloak:latest", "identity-platform:images.keycloak", "latest"),
    ("images.postgres", "postgres", "identity-platform:images.postgres", "not pinned"),
    ("nodes", {}, "identity-platform:nodes", "empty"),
    ("nodes.worker-1.dockerHost", "10.0.0.3", "identity-platform:nodes.worker-1.dockerHost", "ssh://"),
    ("nodes.worker-1.dockerHost", "tcp://localhost:2375", "identity-platform:nodes.worker-1.dockerHost", "local"),
    ("nodes.Worker_1", {"dockerHost": "ssh://root@10.0.0.9"}, "identity-platform:nodes", "DNS label"),
    ("storage.backupIntervalMinutes", 60, "identity-platform:storage.backupIntervalMinutes", "15"),
    ("storage.noncurrentVersionDays", 0, "identity-platform:storage.noncurrentVersionDays", "must be at least 1"),
    ("workloads.ledger.node", "ghost", "identity-platform:workloads.ledger.node", "not a key of `nodes`"),
    ("workloads.ledger.spiffePath", "ns/x/", "identity-platform:workloads.ledger.spiffePath", "start with '/'"),
    ("workloads.ledger.selectors", [], "identity-platform:workloads.ledger.selectors", "needs at least one item"),
    ("typo", 1, "identity-platform:typo", "unknown key"),
    ("keycloak.hostnam", "auth.acme.net", "identity-platform:keycloak.hostnam", "unknown key"),
]


class TestEveryValidatorNamesItsKey:
    @pytest.mark.parametrize(("path", "value", "key", "hint"), BAD_VALUES, ids=[f"{b[0]}={b[1]!r}" for b in BAD_VALUES])
    def test_bad_value(self, path: str, value: Any, key: str, hint: str) -> None:
        raw = with_path(prod_raw(), path, value)
        with pytest.raises(ConfigError) as err:
            parse(raw)
        msg = str(err.value)
        assert key in msg, msg
        assert hint in msg, msg
        assert "pulumi config" in msg, msg

    def test_strict_mode_can_be_relaxed_explicitly(self) -> None:
        raw = with_path(prod_raw(), "domain", "example.org")
        raw["strict"] = False
        assert parse(raw).domain == "example.org"

    def test_dev_allows_localhost(self) -> None:
        assert parse({"environment": "dev", "domain": "localhost"}).domain == "localhost"

    def test_dev_with_strict_rejects_localhost(self) -> None:
        with pytest.raises(ConfigError, match="identity-platform:domain"):
            parse({"environment": "dev", "strict": True})


class TestErrorsSurfaceAtPreview:
    def test_program_fails_before_registering_resources(self) -> None:
        bad = json.dumps({"trustDomain": "example.org"})
        with pytest.raises(ConfigError, match=r"identity-platform:spire\.trustDomain"):
            run_program("prod", preview=True, config={"identity-platform:spire": bad})

    def test_structured_key_that_is_not_an_object(self) -> None:
        with pytest.raises(ConfigError, match="identity-platform:nodes"):
            run_program("dev", preview=True, config={"identity-platform:nodes": "{not json"})


class TestPlatformSettings:
    """Settings the Swarm stacks added (issue 3): each validator names its key."""

    @pytest.mark.parametrize(
        ("path", "value", "key", "hint"),
        [
            ("images.rcloneplugin", "x", "identity-platform:images.rcloneplugin", "unknown key"),
            ("images.rclonePlugin", "rclone/docker-volume-rclone", "identity-platform:images.rclonePlugin", "pinned"),
            ("images.sqliteBackup", "python:latest", "identity-platform:images.sqliteBackup", "latest"),
            ("keycloak.proxyNetwork", "caddy net", "identity-platform:keycloak.proxyNetwork", "not a Docker network"),
        ],
    )
    def test_bad_value(self, path: str, value: Any, key: str, hint: str) -> None:
        with pytest.raises(ConfigError) as err:
            parse(with_path(prod_raw(), path, value))
        assert key in str(err.value) and hint in str(err.value), str(err.value)

    @pytest.mark.parametrize(
        ("selector", "hint"),
        [
            ("docker:label:com.docker.swarm.service.name:payments_api", "the Swarm sets itself"),
            ("unix:uid:1000", "docker:label:<key>:<value>"),
            ("docker:label::x", "docker:label:<key>:<value>"),
        ],
    )
    def test_svid_helper_needs_reproducible_selectors(self, selector: str, hint: str) -> None:
        raw = with_path(prod_raw(), "workloads.ledger.selectors", [selector])
        raw["workloads"]["ledger"]["svidHelper"] = True
        with pytest.raises(ConfigError) as err:
            parse(raw)
        assert "identity-platform:workloads.ledger.svidHelper" in str(err.value) and hint in str(err.value)

    def test_svid_helper_labels_come_from_the_selectors(self) -> None:
        raw = with_path(prod_raw(), "workloads.ledger.selectors", ["docker:label:app:ledger", "docker:label:tier:db"])
        raw["workloads"]["ledger"]["svidHelper"] = True
        assert parse(raw).workloads["ledger"].helper_labels() == {"app": "ledger", "tier": "db"}

    def test_defaults(self) -> None:
        cfg = parse(prod_raw())
        assert cfg.keycloak.proxy_network == "caddy_caddy"
        assert cfg.images.rclone_plugin.startswith("rclone/docker-volume-rclone:amd64-")
        assert not any(w.svid_helper for w in cfg.workloads.values())


class TestUserEmails:
    """Keycloak stores an email lowercased and its tokens carry it so, and Ziti compares the claim
    with an identity's externalId as it is: a user's identity takes the lowercased email (the real
    chain, with a mixed-case email in the stack file: tests/engine/test_external_stack.py)."""

    @pytest.mark.parametrize("preview", [True, False], ids=["preview", "update"])
    def test_a_mixed_case_email_is_the_identity_s_lowercased_external_id(self, preview: bool) -> None:
        users = {"alice": {"email": "Alice.Smith@Acme-Identity.NET", "zitiRoleAttributes": ["operators"]}}
        run = run_program("external", preview, config={"identity-platform:users": json.dumps(users)})
        identity = run.get("pulumi-python:dynamic/ziti:Identity", "ziti-trust-user-alice")
        assert identity.inputs["external_id"] == "alice.smith@acme-identity.net"
