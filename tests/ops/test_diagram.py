"""`python -m ops diagram`: the graph, the trust chain, change classes, secrets, and the renderings.

The inputs are `pulumi stack export` and `pulumi preview --json` documents built from the mock
engine's record of the real program (tests/ops/diagram_exports.py) for the dev, prod and external
stack files; the real CLI's own documents are drawn in tests/engine/test_diagram_engine.py. The
Mermaid is checked twice: structurally here (statements, balanced subgraphs, declared ids) and by
Mermaid's own parser (npm `mermaid`, installed into a cache on first use). The SVG is Graphviz's.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult

from ops import diagram
from ops.cli import main
from ops.errors import ExitCode
from tests.harness.mock_engine import PROJECT, SECRET_PREFIX
from tests.ops import diagram_exports as exports

P = f"{PROJECT}:"
HERE = Path(__file__).resolve().parent
MERMAID_PKG = HERE / "mermaid"


# -- recorded documents ------------------------------------------------------------------------


@cache
def recorded(stack: str) -> exports.Recorded:
    return exports.record(stack)


@cache
def state_doc(stack: str, secrets: str = "ciphertext") -> dict[str, Any]:
    return exports.state_export(recorded(stack), secrets=secrets)


def graph_of_state(stack: str, secrets: str = "ciphertext") -> diagram.Graph:
    return diagram.build_graph(diagram.resources_from_state(state_doc(stack, secrets)), stack=stack)


ALICE = {"alice": {"email": "alice@acme-identity.net", "zitiRoleAttributes": ["operators"]}}
# The change: a new workload, demo-api's role attributes, alice gone, a shorter CA validity.
CHANGED_WORKLOADS = {
    "demo-api": {
        "spiffePath": "/ns/demo/sa/api",
        "node": "local",
        "selectors": ["docker:label:com.docker.compose.service:demo-api"],
        "zitiRoleAttributes": ["demo-api", "payments"],
        "svidHelper": True,
    },
    "billing-api": {
        "spiffePath": "/ns/billing/sa/api",
        "node": "local",
        "selectors": ["unix:uid:1002"],
        "zitiRoleAttributes": ["billing"],
    },
}


@cache
def dev_change_preview() -> dict[str, Any]:
    """`pulumi preview --json` of dev: the state has user alice; the program adds billing-api, gives
    demo-api another role attribute, drops alice and shortens the CAs' validity."""
    before = exports.record("dev", config={P + "users": json.dumps(ALICE)})
    after = exports.record(
        "dev",
        config={
            P + "workloads": json.dumps(CHANGED_WORKLOADS),
            P + "spire": json.dumps({"trustDomain": "dev.zt.internal", "rootCaValidityHours": 43800}),
        },
    )
    return exports.preview_json(after, before)


def graph_of_preview(doc: dict[str, Any], stack: str = "dev") -> diagram.Graph:
    resources, changes = diagram.resources_from_preview(doc)
    return diagram.build_graph(resources, stack=stack, source="preview", changes=changes)


# -- a structural Mermaid reader ---------------------------------------------------------------

ID = r"[A-Za-z_][A-Za-z0-9_]*"
LABEL = r'"[^"\n]*"'
NODE = re.compile(rf"^({ID})(\[{LABEL}\]|\[/{LABEL}/\])$")
SUBGRAPH = re.compile(rf"^subgraph ({ID})\[({LABEL})\]$")
EDGE = re.compile(rf"^({ID}) (-->|==>\|{LABEL}\||-\.->\|{LABEL}\|) ({ID})$")
LINKSTYLE = re.compile(r"^linkStyle ([0-9,]+) [a-z-]+:[#\w]+(,[a-z-]+:[#\w ]+)*$")
CLASSDEF = re.compile(r"^classDef ([a-z]+) [a-z-]+:[#\w]+(,[a-z-]+:[#\w ]+)*$")
CLASS = re.compile(rf"^class ({ID}(?:,{ID})*) ([a-z]+)$")


def read_mermaid(markdown: str) -> dict[str, Any]:
    """Check every statement of the ```mermaid block; return nodes, subgraphs (with parents),
    edges (source, arrow, label, target) and classes. Fails on anything it does not know."""
    blocks = re.findall(r"```mermaid\n(.*?)```", markdown, re.S)
    assert len(blocks) == 1, "one ```mermaid block"
    lines = blocks[0].splitlines()
    assert lines[0] == "flowchart LR"
    nodes: dict[str, str] = {}
    parent_of: dict[str, str | None] = {}
    subgraphs: dict[str, str] = {}
    edges: list[tuple[str, str, str | None, str]] = []
    classdefs: set[str] = set()
    classes: dict[str, set[str]] = {}
    linkstyles: list[int] = []
    open_: list[str] = []
    for raw in lines[1:]:
        line = raw.strip()
        if m := SUBGRAPH.match(line):
            assert m.group(1) not in nodes and m.group(1) not in subgraphs, m.group(1)
            subgraphs[m.group(1)] = m.group(2)
            parent_of[m.group(1)] = open_[-1] if open_ else None
            open_.append(m.group(1))
        elif line == "end":
            assert open_, "`end` without subgraph"
            open_.pop()
        elif m := NODE.match(line):
            assert m.group(1) not in nodes and m.group(1) not in subgraphs, m.group(1)
            nodes[m.group(1)] = m.group(2)
            parent_of[m.group(1)] = open_[-1] if open_ else None
        elif m := EDGE.match(line):
            arrow = m.group(2)
            label = re.search(r'"(.*)"', arrow)
            edges.append((m.group(1), arrow[:3], label.group(1) if label else None, m.group(3)))
        elif m := LINKSTYLE.match(line):
            linkstyles += [int(i) for i in m.group(1).split(",")]
        elif m := CLASSDEF.match(line):
            classdefs.add(m.group(1))
        elif m := CLASS.match(line):
            for ident in m.group(1).split(","):
                classes.setdefault(ident, set()).add(m.group(2))
        else:
            raise AssertionError(f"not a statement this diagram uses: {raw!r}")
    assert not open_, f"subgraphs left open: {open_}"
    declared = set(nodes) | set(subgraphs)
    for a, _, _, b in edges:
        assert a in declared and b in declared, (a, b)
    assert all(0 <= i < len(edges) for i in linkstyles)
    for ident, cls in classes.items():
        assert ident in declared and cls <= classdefs, (ident, cls)
    return {
        "nodes": nodes,
        "subgraphs": subgraphs,
        "parent": parent_of,
        "edges": edges,
        "classes": classes,
        "linkstyles": linkstyles,
    }


def label_name(label: str) -> str:
    """The resource name of a node label `"name<br/><small>type</small>"` or of a subgraph
    title `"name <small>(type)</small>"`."""
    return label.strip('[]/"').split("<br/>")[0].split(" <small>")[0]


# -- the trust chain ---------------------------------------------------------------------------


class TestTrustChain:
    def test_external_stack(self) -> None:
        g = graph_of_state("external")
        assert g.edge_names(trust=True) == {
            ("root-ca", "SPIRE server (yours)", "UpstreamAuthority"),
            ("root-ca", "ziti-trust-spire-ca", "verified"),
            ("ziti-trust-spire-ca", "ziti-trust-identity-payments-api", "spiffe://zt.acme-identity.net/ns/payments/sa/api"),
            ("spire-entries-entry-payments-api", "ziti-trust-identity-payments-api", "SVID"),
            ("keycloak-identity-realm", "ziti-trust-keycloak-signer", "issuer, JWKS"),
            ("keycloak-identity-ziti-client", "ziti-trust-keycloak-signer", "audience"),
            ("ziti-trust-keycloak-signer", "ziti-trust-user-policy", "ext-JWT signer"),
            ("ziti-trust-user-policy", "ziti-trust-user-alice", "JWT login"),
        }
        # The root is the certificate pulumi-tls generated inside the RootCa component.
        (root,) = [n for n in g.by_name("root-ca") if not n.component]
        assert root.kind == "tls:SelfSignedCert" and g.nodes[root.parent or ""].kind == "pki:RootCa"
        # The user's SPIRE server is outside the stack: it holds the entries.
        (server,) = g.by_name("SPIRE server (yours)")
        assert server.external and ("SPIRE server (yours)", "spire-entries", None) in g.edge_names(trust=False)

    def test_dev_stack(self) -> None:
        g = graph_of_state("dev")
        assert g.edge_names(trust=True) == {
            ("spire-root-ca", "spire-server", "UpstreamAuthority"),
            ("spire-root-ca", "ziti-trust-spire-ca", "verified"),
            ("ziti-trust-spire-ca", "ziti-trust-identity-demo-api", "spiffe://dev.zt.internal/ns/demo/sa/api"),
            ("spire-entries-entry-demo-api", "ziti-trust-identity-demo-api", "SVID"),
            ("keycloak-identity-realm", "ziti-trust-keycloak-signer", "issuer, JWKS"),
            ("keycloak-identity-ziti-client", "ziti-trust-keycloak-signer", "audience"),
            ("ziti-trust-keycloak-signer", "ziti-trust-user-policy", "ext-JWT signer"),
        }
        assert [n.kind for n in g.by_name("spire-server")] == ["docker:Service"]
        # Ziti's own PKI root is not the trust chain's.
        assert not [e for e in g.edge_names(trust=True) if e[0] == "ziti-pki-root"]

    def test_prod_stack(self) -> None:
        g = graph_of_state("prod")
        td = "spiffe://zt.acme-identity.net"
        assert g.edge_names(trust=True) == {
            ("spire-root-ca", "spire-server", "UpstreamAuthority"),
            ("spire-root-ca", "ziti-trust-spire-ca", "verified"),
            ("ziti-trust-spire-ca", "ziti-trust-identity-payments-api", f"{td}/ns/payments/sa/api"),
            ("ziti-trust-spire-ca", "ziti-trust-identity-ledger", f"{td}/ns/payments/sa/ledger"),
            ("spire-entries-entry-payments-api", "ziti-trust-identity-payments-api", "SVID"),
            ("spire-entries-entry-ledger", "ziti-trust-identity-ledger", "SVID"),
            ("keycloak-identity-realm", "ziti-trust-keycloak-signer", "issuer, JWKS"),
            ("keycloak-identity-ziti-client", "ziti-trust-keycloak-signer", "audience"),
            ("ziti-trust-keycloak-signer", "ziti-trust-user-policy", "ext-JWT signer"),
        }

    def test_a_brought_root_on_swarm_is_drawn_outside_the_stack(self) -> None:
        """A brought root creates no resource: the chain starts at a node for the stack config."""
        u = "urn:pulumi:s::identity-platform::"
        spire = f"{u}identity-platform:spire:SpireStack::spire"
        ziti = f"{u}identity-platform:ziti:ZitiTrust::ziti-trust"
        secret = f"{u}identity-platform:spire:SpireStack$docker:index/secret:Secret::spire-upstream-cert"
        server = f"{u}identity-platform:spire:SpireStack$docker:index/service:Service::spire-server"
        ca = f"{u}identity-platform:ziti:ZitiTrust$pulumi-python:dynamic/ziti:CertificateAuthority::ziti-trust-spire-ca"
        resources = [
            diagram.Resource(spire, diagram.SPIRE_STACK, None, False),
            diagram.Resource(secret, diagram.DOCKER_SECRET, spire, True),
            diagram.Resource(server, diagram.DOCKER_SERVICE, spire, True, dependencies=(secret,)),
            diagram.Resource(ziti, "identity-platform:ziti:ZitiTrust", None, False),
            diagram.Resource(ca, diagram.ZITI_CA, ziti, True, dependencies=(server,)),
        ]
        g = diagram.build_graph(resources)
        assert g.edge_names(trust=True) == {
            ("root CA (brought)", "spire-server", "UpstreamAuthority"),
            ("root CA (brought)", "ziti-trust-spire-ca", "verified"),
        }
        assert g.by_name("root CA (brought)")[0].external


# -- components and dependency edges -----------------------------------------------------------


class TestStructure:
    @pytest.mark.parametrize("stack", ["dev", "prod", "external"])
    def test_components_are_subgraphs_holding_their_children(self, stack: str) -> None:
        run = recorded(stack).run
        m = read_mermaid(diagram.render_mermaid(graph_of_state(stack)))
        names = {ident: label_name(label) for ident, label in {**m["nodes"], **m["subgraphs"]}.items()}
        with_children = {r.parent for r in run.resources}
        components = {r.name for r in run.resources if r.urn in with_children}
        assert {names[s] for s in m["subgraphs"]} == components
        # Every resource is drawn once, inside the subgraph of its parent component.
        drawn = sorted((names[i], names[p] if p else "") for i, p in m["parent"].items() if not i.startswith("x_"))
        stack_urn = exports.stack_urn(stack)
        expected = sorted(
            (r.name, run.by_urn(r.parent).name if r.parent and r.parent != stack_urn else "") for r in run.resources
        )
        assert drawn == expected

    def test_a_dependency_on_a_whole_component_is_one_edge_to_it(self) -> None:
        g = graph_of_state("dev")
        plain = g.edge_names(trust=False)
        # keycloak `depends_on` spire: every resource of SPIRE, drawn as one edge between components.
        assert ("spire", "keycloak", None) in plain
        assert ("keycloak", "ziti", None) in plain
        assert not [e for e in plain if e[0].startswith("spire-") and e[1].startswith("keycloak")]
        # What a component depends on is not repeated for each of its children.
        assert not [e for e in plain if e[0] == "spire" and e[1].startswith("keycloak-")]

    def test_transitive_edges_are_dropped(self) -> None:
        u = "urn:pulumi:s::identity-platform::t:index/r:R::"
        a, b, c = (diagram.Resource(u + n, "t:index/r:R", None, True) for n in "abc")
        b = diagram.Resource(b.urn, b.type, None, True, dependencies=(a.urn,))
        c = diagram.Resource(c.urn, c.type, None, True, dependencies=(a.urn, b.urn))
        assert diagram.build_graph([a, b, c]).edge_names() == {("a", "b", None), ("b", "c", None)}

    def test_labels_are_names_and_short_types(self) -> None:
        g = graph_of_state("prod")
        kinds = {n.kind for n in g.nodes.values()}
        assert {"ziti:Identity", "docker:Service", "tls:SelfSignedCert", "spire:SpireStack", "provider:docker",
                "digitalocean:SpacesBucket", "keycloak:Realm"} <= kinds
        text = diagram.render_mermaid(g)
        assert "urn:pulumi" not in text and "pulumi-python:dynamic" not in text and "index/" not in text

    def test_output_is_deterministic(self) -> None:
        doc = state_doc("prod")
        resources = diagram.resources_from_state(doc)
        once = diagram.render_mermaid(diagram.build_graph(resources))
        assert diagram.render_mermaid(diagram.build_graph(list(reversed(resources)))) == once

    def test_default_providers_and_the_stack_are_not_drawn(self) -> None:
        doc = state_doc("dev")
        types = {r["type"] for r in doc["deployment"]["resources"]}
        assert "pulumi:pulumi:Stack" in types and "pulumi:providers:pulumi-python" in types
        kinds = {n.kind for n in graph_of_state("dev").nodes.values()}
        assert "provider:pulumi-python" not in kinds and "pulumi:pulumi:Stack" not in kinds


# -- changes from a preview --------------------------------------------------------------------


class TestChanges:
    EXPECTED = {
        "spire-entries-entry-billing-api (spire:Entry)": "created",
        "ziti-trust-identity-billing-api (ziti:Identity)": "created",
        "ziti-trust-identity-demo-api (ziti:Identity)": "updated",
        "spire-root-ca (tls:SelfSignedCert)": "replaced",
        "spire-x509pop-ca (tls:SelfSignedCert)": "replaced",
        "ziti-pki-root (tls:SelfSignedCert)": "replaced",
        "ziti-trust-user-alice (ziti:Identity)": "deleted",
    }

    def test_changed_resources_carry_their_class(self) -> None:
        doc = dev_change_preview()
        assert doc["changeSummary"] == {"same": 58, "create": 2, "update": 1, "replace": 3, "delete": 1}
        g = graph_of_preview(doc)
        assert g.changes() == self.EXPECTED
        m = read_mermaid(diagram.render_mermaid(g))
        by_name = {label_name(label): ident for ident, label in m["nodes"].items()}
        marked = {label_name(m["nodes"][i]): c - {"external"} for i, c in m["classes"].items() if c - {"external"}}
        assert marked == {k.split(" (")[0]: {v} for k, v in self.EXPECTED.items()} | {
            # two resources share this name: the SelfSignedCert is replaced, the ServiceConfig is not
            "spire-x509pop-ca": {"replaced"}
        }
        assert by_name["ziti-trust-user-alice"] in m["classes"]
        text = diagram.render_mermaid(g)
        assert "🟩 created: 2, 🟨 updated: 1, 🟧 replaced: 3, 🟥 deleted: 1." in text

    def test_a_deleted_resource_is_drawn_where_it_was(self) -> None:
        g = graph_of_preview(dev_change_preview())
        (alice,) = g.by_name("ziti-trust-user-alice")
        assert g.nodes[alice.parent or ""].name == "ziti-trust"
        assert ("ziti-trust-user-policy", "ziti-trust-user-alice", "JWT login") in g.edge_names(trust=True)

    def test_a_replacement_is_one_class_whatever_its_steps(self) -> None:
        urn = "urn:pulumi:s::identity-platform::pulumi-python:dynamic/ziti:CertificateAuthority::ca"
        state = {"urn": urn, "type": diagram.ZITI_CA, "custom": True}
        doc = {"steps": [{"op": op, "urn": urn, "newState": state} for op in
                         ("create-replacement", "replace", "delete-replaced")]}
        _, changes = diagram.resources_from_preview(doc)
        assert changes == {urn: "replaced"}

    def test_a_preview_of_an_empty_stack_creates_everything(self) -> None:
        g = graph_of_preview(exports.preview_json(recorded("external")), "external")
        assert {n.change for n in g.nodes.values() if not n.external} == {"created"}

    def test_no_changes_says_so(self) -> None:
        rec = recorded("external")
        text = diagram.render_mermaid(graph_of_preview(exports.preview_json(rec, rec), "external"))
        assert "No changes." in text and "\n  class " not in text.replace("class x_spire_server external", "")

    def test_changed_flag_marks_urns_or_names(self) -> None:
        resources = diagram.resources_from_state(state_doc("external"))
        (ca,) = [r.urn for r in resources if r.type == diagram.ZITI_CA]
        assert diagram.match_changed(resources, [ca, "ziti-trust-user-alice"]) == {
            ca: "changed",
            next(r.urn for r in resources if r.name == "ziti-trust-user-alice"): "changed",
        }
        with pytest.raises(diagram.OpsError) as e:
            diagram.match_changed(resources, ["no-such-thing"])
        assert e.value.code == ExitCode.USAGE and "no-such-thing" in e.value.message


# -- secrets -----------------------------------------------------------------------------------


class TestNoSecrets:
    @pytest.mark.parametrize("stack", ["dev", "prod", "external"])
    def test_no_secret_value_reaches_any_format(self, stack: str) -> None:
        """Even from an export with every secret in clear (`stack export --show-secrets`)."""
        doc = state_doc(stack, "clear")
        raw = json.dumps(doc)
        secrets = [v for v in recorded(stack).run.secret_values if v in raw]
        assert SECRET_PREFIX in raw and "BEGIN PRIVATE KEY" in raw, "no secret in the export: this proves nothing"
        g = diagram.build_graph(diagram.resources_from_state(doc), stack=stack)
        for text in (diagram.render_mermaid(g), diagram.render_dot(g)):
            assert SECRET_PREFIX not in text
            assert not [s for s in secrets if s in text]
            assert "BEGIN " not in text and "password=" not in text.lower()

    def test_emails_and_connections_stay_out(self) -> None:
        """Inputs are not read, except a plain `spiffe://` SPIFFE ID."""
        doc = state_doc("external", "clear")
        assert "alice@acme-identity.net" in json.dumps(doc)
        text = diagram.render_mermaid(graph_of_state("external", "clear"))
        assert "@" not in text and "https://" not in text

    def test_a_secret_spiffe_id_is_not_read(self) -> None:
        state = {"urn": "urn:pulumi:s::p::pulumi-python:dynamic/ziti:Identity::i", "type": diagram.ZITI_IDENTITY,
                 "custom": True, "inputs": {"external_id": {exports.SECRET_SIG: exports.SECRET_VALUE,
                                                           "ciphertext": "v1:abc"}}}
        (r,) = diagram.resources_from_state({"resources": [state]})
        assert r.spiffe_id is None


# -- renderings --------------------------------------------------------------------------------


def _npm_mermaid() -> Path:
    """Mermaid's parser (tests/ops/mermaid, pinned by its lock file), installed once into a cache."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are needed to run Mermaid's parser"
    lock = (MERMAID_PKG / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock + (MERMAID_PKG / "parse.mjs").read_bytes()).hexdigest()[:12]
    cache_root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "identity-platform"
    home = cache_root / f"mermaid-{digest}"
    if not (home / "node_modules" / "mermaid").is_dir():
        tmp = cache_root / f".mermaid-{digest}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name in ("package.json", "package-lock.json", "parse.mjs"):
            shutil.copy(MERMAID_PKG / name, tmp / name)
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=tmp,
                              capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
        shutil.rmtree(home, ignore_errors=True)
        tmp.rename(home)
    return home


@pytest.fixture(scope="module")
def mermaid_parse() -> Callable[..., list[dict[str, Any]]]:
    home = _npm_mermaid()

    def parse(*files: Path) -> list[dict[str, Any]]:
        done = subprocess.run(["node", str(home / "parse.mjs"), *map(str, files)], capture_output=True, text=True,
                              timeout=300, check=False)
        results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        assert len(results) == len(files), done.stdout + done.stderr
        return results

    return parse


class TestRenderings:
    def test_mermaid_parses_with_mermaids_own_parser(
        self, mermaid_parse: Callable[..., list[dict[str, Any]]], tmp_path: Path
    ) -> None:
        files = []
        for stack in ("dev", "prod", "external"):
            files.append(tmp_path / f"{stack}.md")
            files[-1].write_text(diagram.render_mermaid(graph_of_state(stack)))
        files.append(tmp_path / "dev-preview.md")
        files[-1].write_text(diagram.render_mermaid(graph_of_preview(dev_change_preview())))
        broken = tmp_path / "broken.md"
        broken.write_text(files[0].read_text().replace("]\n", "\n", 1))  # so the check can fail
        results = mermaid_parse(*files, broken)
        assert [r["ok"] for r in results] == [True] * len(files) + [False], results
        assert {r.get("type") for r in results[:-1]} == {"flowchart-v2"}

    def test_trust_edges_are_thick_and_styled(self) -> None:
        m = read_mermaid(diagram.render_mermaid(graph_of_state("external")))
        thick = [i for i, e in enumerate(m["edges"]) if e[1] == "==>"]
        assert len(thick) == 8 and sorted(m["linkstyles"]) == thick
        assert all(e[2] for e in m["edges"] if e[1] == "==>")

    def test_mermaid_labels_escape_what_mermaid_would_parse(self) -> None:
        node = diagram.Node("k", 'odd"name#1<x>', "t:T", None)
        label = diagram._mermaid_label(node)
        assert label == '"odd#34;name#35;1#60;x#62;<br/><small>t:T</small>"'

    def test_dot_is_well_formed_and_svg_is_xml(self) -> None:
        g = graph_of_state("external")
        dot = diagram.render_dot(g)
        assert dot.startswith("digraph topology {") and dot.rstrip().endswith("}")
        assert 'subgraph "cluster_c_ziti_trust"' in dot and 'label="UpstreamAuthority"' in dot
        svg = diagram.render_svg(g)
        root = exports.parse_svg(svg)
        assert root.tag.endswith("svg")
        texts = {t.text for t in root.iter() if t.tag.endswith("text")}
        assert {"ziti-trust-spire-ca", "root-ca", "verified", "UpstreamAuthority", "SPIRE server (yours)"} <= texts
        assert len([t for t in root.iter() if t.tag.endswith("g") and t.get("class") == "cluster"]) == 4

    def test_svg_without_graphviz_says_how_to_install_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(shutil, "which", lambda name: None)
        with pytest.raises(diagram.OpsError) as e:
            diagram.render_svg(graph_of_state("external"))
        assert e.value.code == ExitCode.FAILED and "scripts/apt-packages" in (e.value.hint or "")


class TestAptPackages:
    """scripts/apt-packages, which ./scripts/test runs: Graphviz (and jq) are there, or it says so."""

    def test_check_passes_here(self) -> None:
        done = subprocess.run([str(exports.ROOT / "scripts" / "apt-packages"), "--check"], capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr

    def test_check_names_what_is_missing(self, tmp_path: Path) -> None:
        bindir = tmp_path / "bin"
        bindir.mkdir()
        for tool in ("bash", "env", "id"):
            found = shutil.which(tool)
            assert found
            (bindir / tool).symlink_to(found)
        done = subprocess.run([str(exports.ROOT / "scripts" / "apt-packages"), "--check"], capture_output=True,
                              text=True, timeout=60, check=False, env={"PATH": str(bindir)})
        assert done.returncode == 1 and "missing Debian packages: graphviz jq chromium" in done.stderr


# -- the committed diagrams --------------------------------------------------------------------


class TestCommittedDiagrams:
    def test_dev_mermaid_is_current(self) -> None:
        assert exports.DEV_MERMAID.read_text() == exports.dev_mermaid(), (
            "docs/diagram-dev.md is stale: regenerate with `.venv/bin/python -m tests.ops.diagram_exports`"
        )

    def test_external_svg_is_well_formed_and_current(self) -> None:
        committed = exports.EXTERNAL_SVG.read_text()
        exports.parse_svg(committed)
        fresh = diagram.render_svg(exports.external_graph())
        version = re.compile(r"Generated by graphviz version [^\n]*")
        ours, theirs = version.search(committed), version.search(fresh)
        if ours and theirs and ours.group(0) == theirs.group(0):
            assert committed == fresh, "stale: regenerate with .venv/bin/python -m tests.ops.diagram_exports"
        else:  # another Graphviz lays it out differently; the drawn content must still match
            names = {n.name for n in exports.external_graph().nodes.values()}
            assert all(f">{n}<" in committed for n in names)


# -- the command -------------------------------------------------------------------------------


def ops(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


class TestCommand:
    def test_from_a_saved_state_export(self, tmp_path: Path) -> None:
        path = tmp_path / "state.json"
        path.write_text(json.dumps(state_doc("external")))
        code, out, err = ops("diagram", "--stack", "external", "--input", str(path))
        assert code == 0, err
        assert out.startswith("#### Topology and trust chain: identity-platform/external "
                              "(`python -m ops diagram --stack external --from state`)")
        read_mermaid(out)

    def test_from_a_saved_preview_with_changes_marked(self, tmp_path: Path) -> None:
        path = tmp_path / "preview.json"
        path.write_text(json.dumps(dev_change_preview()))
        code, out, err = ops("diagram", "--stack", "dev", "--input", str(path), "--from", "preview")
        assert code == 0, err
        assert "--from preview" in out and "class " in out and "🟥 deleted: 1" in out

    def test_formats_and_output_file(self, tmp_path: Path) -> None:
        path = tmp_path / "state.json"
        path.write_text(json.dumps(state_doc("external")))
        code, out, _ = ops("diagram", "--stack", "external", "--input", str(path), "--format", "dot")
        assert code == 0 and out.startswith("digraph topology {")
        target = tmp_path / "x.svg"
        code, out, err = ops("diagram", "--stack", "external", "--input", str(path), "--format", "svg", "-o",
                             str(target))
        assert code == 0 and out == "" and f"wrote {target}" in err
        assert exports.parse_svg(target.read_text()).tag.endswith("svg")

    def test_changed_marks_resources_of_a_state(self, tmp_path: Path) -> None:
        path = tmp_path / "state.json"
        path.write_text(json.dumps(state_doc("external")))
        code, out, err = ops("diagram", "--stack", "external", "--input", str(path), "--changed", "ziti-trust-spire-ca")
        assert code == 0, err
        assert "class n_ziti_trust_spire_ca changed" in out and "🟦 changed: 1" in out

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["--from", "state", "--input", "PREVIEW"], "is a preview, not a state"),
            (["--input", "MISSING"], "cannot read"),
            (["--input", "STATE", "--changed", "nope"], "--changed names no resource"),
            (["--format", "png"], "invalid choice"),
        ],
    )
    def test_usage_errors_exit_64(self, tmp_path: Path, argv: list[str], message: str) -> None:
        (tmp_path / "p.json").write_text(json.dumps(exports.preview_json(recorded("external"))))
        (tmp_path / "s.json").write_text(json.dumps(state_doc("external")))
        files = {"PREVIEW": str(tmp_path / "p.json"), "STATE": str(tmp_path / "s.json"),
                 "MISSING": str(tmp_path / "nothing.json")}
        code, out, err = ops("diagram", "--stack", "external", *[files.get(a, a) for a in argv])
        assert code == ExitCode.USAGE and message in err and out == ""

    def test_state_comes_from_stack_export(self, monkeypatch: pytest.MonkeyPatch) -> None:
        opened: list[tuple[str, bool, bool]] = []
        read: list[tuple[str, ...]] = []

        def open_stack(stack: str, *, create: bool, secrets: bool = True, **_: Any) -> Any:
            opened.append((stack, create, secrets))
            return SimpleNamespace(name=stack)

        def read_masked(st: Any, *args: str) -> Any:
            read.append(args)
            return state_doc("dev")

        monkeypatch.setattr(diagram, "open_stack", open_stack)
        monkeypatch.setattr(diagram, "read_masked", read_masked)
        code, out, err = ops("diagram", "--stack", "dev")
        assert code == 0, err
        assert opened == [("dev", False, False)]  # never creates a stack, needs no passphrase
        assert read == [("stack", "export")]  # secrets stay encrypted: no --show-secrets
        assert "spire-root-ca" in out

    def test_a_stack_without_resources_points_at_preview(self, monkeypatch: pytest.MonkeyPatch) -> None:
        empty = {"deployment": {"resources": [exports._stack_resource("dev")]}}
        monkeypatch.setattr(diagram, "open_stack", lambda *a, **k: SimpleNamespace(name="dev"))
        monkeypatch.setattr(diagram, "read_masked", lambda *a: empty)
        code, _, err = ops("diagram", "--stack", "dev")
        assert code == ExitCode.STACK_NOT_FOUND and "--from preview" in err

    def test_preview_runs_pulumi_preview_json_in_the_ops_workspace(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls: list[tuple[list[str], str, dict[str, str]]] = []

        def run(args: list[str], cwd: str, env: dict[str, str]) -> Any:
            calls.append((args, cwd, env))
            return SimpleNamespace(stdout=json.dumps(dev_change_preview()))

        ws = SimpleNamespace(env_vars={"PULUMI_BACKEND_URL": "file:///x"}, pulumi_home=None, work_dir="/proj",
                             pulumi_command=SimpleNamespace(run=run))
        monkeypatch.setattr(diagram, "open_stack", lambda stack, **_: SimpleNamespace(name=stack, workspace=ws))
        code, out, err = ops("diagram", "--stack", "dev", "--from", "preview")
        assert code == 0, err
        assert calls == [(["preview", "--json", "--stack", "dev"], "/proj", {"PULUMI_BACKEND_URL": "file:///x"})]
        assert "🟩 created: 2" in out

    def test_a_failed_preview_says_why_in_one_line(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """`pulumi preview --json` fails with its diagnostics in the JSON (a real CLI's shape)."""
        trace = (
            "error: Program failed with an unhandled exception:\nTraceback (most recent call last):\n"
            '  File "__main__.py", line 12, in <module>\n'
            "stack_config.base.ConfigError: invalid stack configuration:\n  identity-platform:ziti.bogus: unknown key"
        )
        doc = {"config": {}, "steps": [], "diagnostics": [{"message": trace, "severity": "error"}]}

        def run(args: list[str], cwd: str, env: dict[str, str]) -> Any:
            raise auto.CommandError(CommandResult(stdout=json.dumps(doc), stderr="", code=255))

        ws = SimpleNamespace(env_vars={}, pulumi_home=None, work_dir="/proj", pulumi_command=SimpleNamespace(run=run))
        monkeypatch.setattr(diagram, "open_stack", lambda stack, **_: SimpleNamespace(name=stack, workspace=ws))
        code, out, err = ops("diagram", "--stack", "dev", "--from", "preview")
        assert code == ExitCode.FAILED and out == ""
        assert err == "error: invalid stack configuration: identity-platform:ziti.bogus: unknown key\n"

    def test_preview_validates_the_stack_file_first(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setattr(diagram, "open_stack", lambda *a, **k: pytest.fail("the engine must not start"))
        code, _, err = ops("diagram", "--stack", "nosuchstack", "--from", "preview")
        assert code == ExitCode.CONFIG_ERROR and "Pulumi.nosuchstack.yaml" in err

    def test_help_lists_diagram(self) -> None:
        code, _, err = ops("diagram")
        assert code == ExitCode.USAGE and "--stack" in err
