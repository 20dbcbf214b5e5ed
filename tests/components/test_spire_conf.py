"""The typed SPIRE / spiffe-helper config models and their HCL renderer, checked with a real HCL
parser (python-hcl2): what we render is what the parser reads back."""

from __future__ import annotations

from typing import Any

import hcl2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from components.spire_conf import (
    AgentConf,
    AgentSection,
    HclError,
    HelperConf,
    Plugin,
    ServerConf,
    ServerSection,
    labelled,
    render_body,
)


def unquote(value: Any) -> Any:
    """python-hcl2 8.x keeps string literals quoted and escaped; undo both."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        out, i, body = [], 0, value[1:-1]
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body):
                out.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(body[i + 1], body[i + 1]))
                i += 2
            else:
                out.append(body[i])
                i += 1
        return "".join(out)
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if k != "__is_block__"}
    return value


def parse(text: str) -> dict[str, Any]:
    return unquote(hcl2.loads(text))


def plugins(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """`NodeAttestor "x509pop" {plugin_data {...}}` -> {"x509pop": {...plugin_data...}}."""
    out: dict[str, dict[str, Any]] = {}
    for block in doc["plugins"][0].get(kind, []):
        for name, body in block.items():
            data = body.get("plugin_data", [{}])
            out[name] = data[0] if data else {}
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
        server = doc["server"][0]
        assert server["trust_domain"] == "prod.acme.net"
        assert server["bind_port"] == "8081" and server["socket_path"] == "/tmp/spire-server/private/api.sock"
        assert plugins(doc, "DataStore") == {"sql": {"database_type": "sqlite3", "connection_string": "/d/ds.sqlite3"}}
        assert set(plugins(doc, "KeyManager")) == {"disk"}
        assert plugins(doc, "UpstreamAuthority")["disk"]["key_file_path"] == "/k.pem"
        health = doc["health_checks"][0]
        assert health["listener_enabled"] is True and health["bind_port"] == "8080"
        assert doc["telemetry"][0]["Prometheus"][0]["port"] == 9988

    def test_without_upstream_authority_the_block_is_absent(self) -> None:
        doc = parse(server_conf(upstream_authority=None).render())
        assert "UpstreamAuthority" not in doc["plugins"][0]

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
        assert doc["agent"][0]["server_address"] == "spire-server"
        assert doc["agent"][0]["socket_path"] == "/run/spire/sockets/agent.sock"
        assert set(plugins(doc, "WorkloadAttestor")) == {"docker", "unix"}
        assert plugins(doc, "NodeAttestor") == {"x509pop": {"private_key_path": "/k", "certificate_path": "/c"}}

    def test_helper(self) -> None:
        doc = parse(HelperConf(agent_address="/run/spire/sockets/agent.sock", cert_dir="/svid").render())
        assert doc["agent_address"] == "/run/spire/sockets/agent.sock"
        assert doc["cert_dir"] == "/svid" and doc["daemon_mode"] is True
        assert doc["key_file_mode"] == 0o640  # rendered as the decimal integer HCL v1 and v2 both read


class TestRendererEscaping:
    @given(
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\x85"),
            max_size=40,
        ).filter(lambda s: "${" not in s and "%{" not in s)
    )
    def test_any_plain_string_round_trips(self, value: str) -> None:
        text = render_body({"k": value, "b": {labelled("P", "x"): {"plugin_data": {"v": value}}}})
        doc = parse(text)
        assert doc["k"] == value
        assert doc["b"][0]["P"][0]["x"]["plugin_data"][0]["v"] == value

    def test_quotes_and_backslashes(self) -> None:
        assert parse(render_body({"k": 'a"b\\c'}))["k"] == 'a"b\\c'

    @pytest.mark.parametrize("bad", ["${env}", "%{ if x }", "line\nbreak", "nul\x00"])
    def test_template_sequences_and_control_characters_are_refused(self, bad: str) -> None:
        with pytest.raises(HclError):
            render_body({"k": bad})

    def test_identifiers_are_checked(self) -> None:
        with pytest.raises(HclError, match="identifier"):
            render_body({"bad key": "x"})

    def test_lists_bools_ints(self) -> None:
        doc = parse(render_body({"l": ["a", "b"], "t": True, "f": False, "n": 42}))
        assert doc == {"l": ["a", "b"], "t": True, "f": False, "n": 42}
