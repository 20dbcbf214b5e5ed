"""SwarmNodes and the shared Swarm helpers: one provider per node, the plugin on the stateful node,
content names, ordering and service defaults. (The one-stateful-node rule is the configuration's:
tests/test_config_gate.py.)"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker
import pytest

from components.docker_helpers import (
    after,
    content_name,
    generated_password,
    healthcheck,
    key_pair_secrets,
    self_signed_ca,
    service,
)
from components.swarm_nodes import SwarmNodes, SwarmNodesArgs
from tests.harness.mock_engine import run


def hosts(*names: str) -> dict[str, str]:
    return {n: f"ssh://root@{n}" for n in names}


class TestSwarmNodes:
    def test_one_provider_per_node_and_the_plugin_on_the_db_node(self) -> None:
        def body() -> None:
            plugin = "rclone/docker-volume-rclone:amd64-1.71.2"
            SwarmNodes("swarm", SwarmNodesArgs(hosts("db", "w1"), "w1", "db", rclone_plugin_image=plugin))

        r = run(body, stack="prod")
        providers = {p.name: p for p in r.of_type("pulumi:providers:docker")}
        assert {n: p.inputs["host"] for n, p in providers.items()} == {
            "swarm-db": "ssh://root@db",
            "swarm-w1": "ssh://root@w1",
        }
        (plugin,) = r.of_type("docker:index/plugin:Plugin")
        assert plugin.provider.startswith(providers["swarm-db"].urn)
        assert plugin.inputs["alias"] == "rclone" and plugin.inputs["grantAllPermissions"] is True

    def test_no_plugin_without_an_image(self) -> None:
        r = run(lambda: SwarmNodes("swarm", SwarmNodesArgs(hosts("local"), "local", "local")))
        assert not r.of_type("docker:index/plugin:Plugin")


class TestHelpers:
    def test_content_name_is_deterministic_and_content_sensitive(self) -> None:
        assert content_name("x", "a") == content_name("x", "a")
        assert content_name("x", "a") != content_name("x", "b")
        assert len(content_name("x", "a")) == len("x-") + 12

    def test_after_normalises_depends_on(self) -> None:
        assert after(None) == [] and after(pulumi.ResourceOptions()) == []

        def body() -> None:
            res = docker.Network("n", name="n")
            assert after(pulumi.ResourceOptions(depends_on=res)) == [res]
            assert after(pulumi.ResourceOptions(depends_on=[res])) == [res]

        run(body)

    def test_a_service_without_healthcheck_is_refused(self) -> None:
        def body() -> None:
            service("s", name="s", container_spec=docker.ServiceTaskSpecContainerSpecArgs(image="a/b:1"),
                    networks=[], stateful=False, resources=None, opts=pulumi.ResourceOptions())  # fmt: skip

        with pytest.raises(ValueError, match="needs a healthcheck"):
            run(body)

    def test_healthcheck_needs_a_command_form(self) -> None:
        with pytest.raises(ValueError, match="CMD"):
            healthcheck(["curl", "-f", "http://x"])

    def test_ca_password_and_key_pair_helpers(self) -> None:
        """Names, parents and secretness of what the shared helpers register."""

        def body() -> None:
            parent = pulumi.ComponentResource("identity-platform:test:Parent", "p")
            provider = docker.Provider("engine", host="unix:///var/run/docker.sock")
            key, cert = self_signed_ca(
                "p-ca", common_name="example CA", validity_hours=24, uris=["spiffe://ex"], parent=parent
            )
            password, _ = generated_password("p-password", base="pw", parent=parent, provider=provider)
            key_pair_secrets(
                "p-pair", base="pair", cert_pem=cert.cert_pem, key_pem=key.private_key_pem, parent=parent,
                provider=provider,
            )  # fmt: skip
            pulumi.export("password", password)

        r = run(body)
        parent = r.get("identity-platform:test:Parent", "p")
        cert = r.get("tls:index/selfSignedCert:SelfSignedCert", "p-ca")
        key = r.get("tls:index/privateKey:PrivateKey", "p-ca-key")
        assert cert.parent == key.parent == parent.urn
        assert cert.inputs["isCaCertificate"] is True and cert.inputs["uris"] == ["spiffe://ex"]
        assert "cert_signing" in cert.inputs["allowedUses"] and cert.inputs["validityPeriodHours"] == 24
        assert key.inputs["algorithm"] == "ECDSA" and key.inputs["ecdsaCurve"] == "P384"
        pw = r.get("random:index/randomPassword:RandomPassword", "p-password")
        assert pw.inputs["length"] == 32 and pw.inputs["special"] is False
        assert r.exports["password"].secret
        secrets = {s.name: s for s in r.of_type("docker:index/secret:Secret")}
        assert set(secrets) == {"p-password", "p-pair-cert", "p-pair-key"}
        assert secrets["p-pair-key"].inputs["name"].startswith("pair-key-")
        assert all("data" in s.additional_secret_outputs for s in secrets.values())
