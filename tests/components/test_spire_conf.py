"""The typed SPIRE / spiffe-helper config models and their JSON rendering: the documents as SPIRE's
HCL v1 loader reads them (plugins as a list per type, as spiffe/helm-charts-hardened writes them).
The real binaries read the same text in tests/real/test_spire_configs.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from components.spire_conf import AgentConf, AgentSection, HelperConf, Plugin, ServerConf, ServerSection


def parse(text: str) -> dict[str, Any]:
    # HCL v1 takes a file as JSON when its first character is "{".
    assert text.startswith("{") and text.endswith("}\n"), text[:40]
    doc: dict[str, Any] = json.loads(text)
    return doc


def plugins(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """`{"NodeAttestor": [{"x509pop": {"plugin_data": {...}}}]}` -> {"x509pop": {...plugin_data...}}."""
    out: dict[str, dict[str, Any]] = {}
    for item in doc["plugins"].get(kind, []):
        ((name, body),) = item.items()
        out[name] = body["plugin_data"]
    return out


def server_conf(**kw: Any) -> ServerConf:
    base: dict[str, Any] = {
        "server": ServerSection(trust_domain="prod.acme.net"),
        "data_store": Plugin(name="sql", data={"database_type": "sqlite3", "connection_string": "/d/ds.sqlite3"}),
        "key_manager": Plugin(name="disk", data={"keys_path": "/d/keys.json"}),
        "node_attestors": [Plugin(name="x509pop", data={"ca_bundle_path": "/etc/ca.pem"})],
        "upstream_authority": Plugin(name="disk", data={"cert_file_path": "/c.pem", "key_file_path": "/k.pem"}),
    }
    base.update(kw)
    return ServerConf(**base)


class TestServerConfParses:
    def test_blocks_and_plugins(self) -> None:
        doc = parse(server_conf().render())
        server = doc["server"]
        assert server["trust_domain"] == "prod.acme.net"
        assert server["bind_port"] == "8081" and server["socket_path"] == "/tmp/spire-server/private/api.sock"
        assert plugins(doc, "DataStore") == {"sql": {"database_type": "sqlite3", "connection_string": "/d/ds.sqlite3"}}
        assert set(plugins(doc, "KeyManager")) == {"disk"}
        assert plugins(doc, "UpstreamAuthority")["disk"]["key_file_path"] == "/k.pem"
        health = doc["health_checks"]
        assert health["listener_enabled"] is True and health["bind_port"] == "8080"
        assert doc["telemetry"] == {"Prometheus": {"host": "0.0.0.0", "port": 9988}}  # noqa: S104
        assert list(doc) == ["server", "plugins", "health_checks", "telemetry"]
        assert list(doc["plugins"]) == ["DataStore", "KeyManager", "NodeAttestor", "UpstreamAuthority"]

    def test_without_upstream_authority_the_block_is_absent(self) -> None:
        doc = parse(server_conf(upstream_authority=None).render())
        assert "UpstreamAuthority" not in doc["plugins"]

    def test_a_map_of_named_objects_is_a_list_once_it_has_two(self) -> None:
        """HCL v1 flattens one JSON object of two named objects into two plugin blocks; a list of
        one-key objects decodes into the same map (tests/real/test_kubernetes_enterprise.py)."""
        a, b = {"service_account_allow_list": ["ns:a"]}, {"service_account_allow_list": ["ns:b"]}
        one = parse(server_conf(node_attestors=[Plugin(name="k8s_psat", data={"clusters": {"a": a}})]).render())
        two = parse(server_conf(node_attestors=[Plugin(name="k8s_psat", data={"clusters": {"a": a, "b": b}})]).render())
        assert plugins(one, "NodeAttestor")["k8s_psat"] == {"clusters": {"a": a}}
        assert plugins(two, "NodeAttestor")["k8s_psat"] == {"clusters": [{"a": a}, {"b": b}]}

    def test_agent_path_template_survives(self) -> None:
        tpl = "/{{ .PluginName }}/{{ .Subject.CommonName }}"
        conf = server_conf(node_attestors=[Plugin(name="x509pop", data={"agent_path_template": tpl})])
        assert plugins(parse(conf.render()), "NodeAttestor")["x509pop"]["agent_path_template"] == tpl

    def test_spire_rejects_what_the_model_rejects(self) -> None:
        with pytest.raises(ValidationError, match="only the 'sql' datastore"):
            server_conf(data_store=Plugin(name="memory"))
        with pytest.raises(ValidationError, match="unique"):
            server_conf(node_attestors=[Plugin(name="x509pop"), Plugin(name="x509pop")])
        with pytest.raises(ValidationError, match="at least 1"):
            server_conf(node_attestors=[])
        with pytest.raises(ValidationError, match="pattern"):
            ServerSection(trust_domain="spiffe://x")
        with pytest.raises(ValidationError, match="pattern"):
            ServerSection(trust_domain="x.net", ca_ttl="1 day")


class TestAgentAndHelperConfParse:
    def test_agent(self) -> None:
        conf = AgentConf(
            agent=AgentSection(server_address="spire-server", trust_domain="td.net", trust_bundle_path="/b.pem"),
            node_attestor=Plugin(name="x509pop", data={"private_key_path": "/k", "certificate_path": "/c"}),
            key_manager=Plugin(name="disk", data={"directory": "/d"}),
            workload_attestors=[Plugin(name="docker"), Plugin(name="unix")],
        )
        doc = parse(conf.render())
        assert doc["agent"]["server_address"] == "spire-server"
        assert doc["agent"]["socket_path"] == "/run/spire/sockets/agent.sock"
        assert set(plugins(doc, "WorkloadAttestor")) == {"docker", "unix"}
        assert plugins(doc, "NodeAttestor") == {"x509pop": {"private_key_path": "/k", "certificate_path": "/c"}}

    def test_helper(self) -> None:
        doc = parse(HelperConf(agent_address="/run/spire/sockets/agent.sock", cert_dir="/svid").render())
        assert doc["agent_address"] == "/run/spire/sockets/agent.sock"
        assert doc["cert_dir"] == "/svid" and doc["daemon_mode"] is True
        assert doc["key_file_mode"] == 0o640  # a JSON number: HCL v1 decodes it into the helper's int


class TestAnyStringIsWrittenExactly:
    """JSON has one escaping: a value SPIRE reads back is the value the model holds, whatever it is
    (the HCL writer this replaced had to refuse `${`, `%{` and control characters)."""

    @given(st.text(max_size=40))
    def test_round_trips(self, value: str) -> None:
        conf = server_conf(node_attestors=[Plugin(name="x509pop", data={"agent_path_template": value})])
        assert plugins(parse(conf.render()), "NodeAttestor")["x509pop"]["agent_path_template"] == value

    @pytest.mark.parametrize("value", ["${env}", "%{ if x }", 'a"b\\c', "line\nbreak", "ünï"])
    def test_what_hcl_needed_refused(self, value: str) -> None:
        conf = server_conf(data_store=Plugin(name="sql", data={"database_type": "sqlite3", "connection_string": value}))
        assert plugins(parse(conf.render()), "DataStore")["sql"]["connection_string"] == value
