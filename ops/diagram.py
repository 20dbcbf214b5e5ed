"""`python -m ops diagram`: the stack's topology and trust chain, drawn from its resource graph.

The graph comes from the stack's state (`pulumi stack export`, its secrets left encrypted) or
from a preview (`pulumi preview --json`, whose steps say what would be created, updated, replaced
or deleted), or from a file holding either (`--input`). Only resource types, names, parents and
dependency URNs are read, plus a SPIFFE ID where one is a plain `spiffe://` input of a SPIRE
entry or Ziti identity; no other input or output value is ever looked at, so no secret (nor an
email address, nor a password in a connection map) can reach a diagram.

What is drawn:

- components (ComponentResources with children) as nested subgraphs, resources as nodes labelled
  with their name and a short type (`ziti:Identity`, `docker:Service`, `spire:SpireStack`);
- dependency edges, reduced to stay readable: a dependency on every resource of a component
  (what `depends_on=[component]` expands to) becomes one edge to the component, an edge a
  parent already carries is not repeated for its children, and an edge implied by a longer path
  is dropped (transitive reduction);
- the trust chain, emphasised and labelled: root CA → SPIRE server (`UpstreamAuthority`), root CA
  → Ziti CA (`verified`), Ziti CA → each workload identity (its SPIFFE ID), SPIRE entry → the
  identity of the same SPIFFE ID (`SVID`); Keycloak realm and client → Ziti external JWT signer
  → user auth policy → user identities. On `platform: external` the SPIRE server is the user's:
  it is drawn as a dashed node outside the stack;
- with `--from preview` (or `--changed URN`), each changed resource carries its class: created,
  updated, replaced, deleted (changed: named with `--changed`).

Formats: `mermaid` (a Markdown fragment: a heading, a ```` ```mermaid ```` block and a legend;
GitHub renders it in files and PR comments), `dot` (Graphviz source) and `svg` (that source laid
out by Graphviz `dot`, from Debian's `graphviz` package: `scripts/apt-packages`).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pulumi import automation as auto

from ops.errors import ExitCode, OpsError, engine_error
from ops.workspace import PROJECT_ROOT, classify_command_error, open_stack, read_masked, validate_stack_config

FORMATS = ("mermaid", "dot", "svg")
SOURCES = ("state", "preview")
STACK_TYPE = "pulumi:pulumi:Stack"
PROVIDER_PREFIX = "pulumi:providers:"
DYNAMIC = "pulumi-python:dynamic/"

# Step ops of `pulumi preview --json` -> the class the diagram gives the resource.
CHANGE_OF_OP = {
    "create": "created",
    "import": "created",
    "update": "updated",
    "replace": "replaced",
    "create-replacement": "replaced",
    "delete-replaced": "replaced",
    "import-replacement": "replaced",
    "delete": "deleted",
}
CHANGE_CLASSES = ("created", "updated", "replaced", "deleted", "changed")
# When one URN has several steps (a replacement is three), the strongest class wins.
_CHANGE_RANK = {c: i for i, c in enumerate(("changed", "updated", "created", "deleted", "replaced"))}

# Types of the trust chain (dynamic providers: `pulumi-python:dynamic/<module>:<Name>`).
ZITI_CA = DYNAMIC + "ziti:CertificateAuthority"
ZITI_IDENTITY = DYNAMIC + "ziti:Identity"
ZITI_SIGNER = DYNAMIC + "ziti:ExternalJwtSigner"
ZITI_AUTH_POLICY = DYNAMIC + "ziti:AuthPolicy"
KEYCLOAK_REALM = DYNAMIC + "keycloak:Realm"
KEYCLOAK_CLIENT = DYNAMIC + "keycloak:Client"
SPIRE_ENTRY = DYNAMIC + "spire:Entry"
ROOT_CA_COMPONENT = "identity-platform:pki:RootCa"
SPIRE_STACK = "identity-platform:spire:SpireStack"
SPIRE_REGISTRATIONS = "identity-platform:spire:SpireRegistrations"
CERT_TYPES = ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert")
DOCKER_SECRET = "docker:index/secret:Secret"  # noqa: S105 (a type token)
DOCKER_SERVICE = "docker:index/service:Service"

# The only inputs ever read, and only as plain strings starting with `spiffe://`.
SPIFFE_INPUTS = {SPIRE_ENTRY: "spiffe_id", ZITI_IDENTITY: "external_id"}

EXTERNAL_SPIRE = "external:spire-server"
BROUGHT_ROOT = "external:root-ca"

# Colours: GitHub's light palette; the trust chain in amber.
TRUST_COLOUR = "#b35900"
CLASS_STYLE = {
    "created": ("#dafbe1", "#1a7f37"),
    "updated": ("#fff8c5", "#9a6700"),
    "replaced": ("#ffe2cc", "#bc4c00"),
    "deleted": ("#ffebe9", "#cf222e"),
    "changed": ("#ddf4ff", "#0969da"),
}
LEGEND = {
    "created": "🟩 created",
    "updated": "🟨 updated",
    "replaced": "🟧 replaced",
    "deleted": "🟥 deleted",
    "changed": "🟦 changed",
}


# -- the graph ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """One resource of the state or the preview: what a diagram may use of it, nothing else."""

    urn: str
    type: str
    parent: str | None
    custom: bool
    dependencies: tuple[str, ...] = ()
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    spiffe_id: str | None = None

    @property
    def name(self) -> str:
        return name_of(self.urn)


@dataclass(frozen=True)
class Node:
    """A drawn resource, component or (`external`) a server outside the stack."""

    key: str  # the URN, or `external:...`
    name: str
    kind: str  # short type
    parent: str | None
    component: bool = False
    external: bool = False
    change: str | None = None


@dataclass(frozen=True)
class Edge:
    """`source` is depended on by `target` (drawn source → target); trust edges carry a label."""

    source: str
    target: str
    label: str | None = None
    trust: bool = False


@dataclass
class Graph:
    stack: str
    source: str  # "state" | "preview" | a file name
    nodes: dict[str, Node]
    edges: list[Edge]

    def by_name(self, name: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.name == name]

    def edge_names(self, *, trust: bool | None = None) -> set[tuple[str, str, str | None]]:
        """(source name, target name, label) of every edge (only trust edges, or only others)."""
        return {
            (self.nodes[e.source].name, self.nodes[e.target].name, e.label)
            for e in self.edges
            if trust is None or e.trust is trust
        }

    def changes(self) -> dict[str, str]:
        """`name (short type)` -> change class, for every changed node."""
        return {f"{n.name} ({n.kind})": n.change for n in self.nodes.values() if n.change}


def name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def stack_of(urn: str) -> str:
    parts = urn.split(":", 3)
    return parts[2] if len(parts) > 2 else ""


def short_type(type_: str) -> str:
    """`pulumi-python:dynamic/ziti:Identity` -> `ziti:Identity`; `docker:index/service:Service` ->
    `docker:Service`; `identity-platform:spire:SpireStack` -> `spire:SpireStack`."""
    if type_.startswith(PROVIDER_PREFIX):
        return "provider:" + type_[len(PROVIDER_PREFIX) :]
    parts = type_.split(":")
    if len(parts) != 3:
        return type_
    pkg, module, name = parts
    if pkg == "pulumi-python" and module.startswith("dynamic/"):
        return f"{module[len('dynamic/') :]}:{name}"
    if pkg == "identity-platform":
        return f"{module}:{name}"
    return f"{pkg}:{name}"


def _spiffe_id(type_: str, inputs: Any) -> str | None:
    key = SPIFFE_INPUTS.get(type_)
    if key is None or not isinstance(inputs, Mapping):
        return None
    value = inputs.get(key)
    if isinstance(value, str) and value.startswith("spiffe://") and re.fullmatch(r"spiffe://[\w.\-/]+", value):
        return value
    return None


def _resource(state: Mapping[str, Any]) -> Resource:
    type_ = str(state.get("type", ""))
    prop_deps = state.get("propertyDependencies") or {}
    return Resource(
        urn=str(state["urn"]),
        type=type_,
        parent=state.get("parent") or None,
        custom=bool(state.get("custom", False)),
        dependencies=tuple(str(u) for u in state.get("dependencies") or ()),
        property_dependencies={str(k): tuple(str(u) for u in v or ()) for k, v in prop_deps.items()},
        spiffe_id=_spiffe_id(type_, state.get("inputs")),
    )


def resources_from_state(doc: Mapping[str, Any]) -> list[Resource]:
    """The resources of a `pulumi stack export` document (or of its `deployment` alone)."""
    deployment = doc.get("deployment", doc)
    if not isinstance(deployment, Mapping):
        raise ValueError("not a stack export: no `deployment` object")
    return [_resource(r) for r in deployment.get("resources") or [] if isinstance(r, Mapping) and "urn" in r]


def resources_from_preview(doc: Mapping[str, Any]) -> tuple[list[Resource], dict[str, str]]:
    """The resources of a `pulumi preview --json` document and the change class of each URN."""
    steps = doc.get("steps")
    if not isinstance(steps, list):
        raise ValueError("not a `pulumi preview --json` document: no `steps` list")
    found: dict[str, Resource] = {}
    changes: dict[str, str] = {}
    for step in steps:
        if not isinstance(step, Mapping):
            continue
        state = step.get("newState") or step.get("oldState")
        urn = step.get("urn") or (state or {}).get("urn")
        if not urn:
            continue
        if state and (urn not in found or step.get("newState")):
            found[urn] = _resource({**state, "urn": urn})
        change = CHANGE_OF_OP.get(str(step.get("op", "")))
        if change and _CHANGE_RANK[change] > _CHANGE_RANK.get(changes.get(urn, ""), -1):
            changes[urn] = change
    return list(found.values()), changes


def load_document(text: str) -> tuple[str, list[Resource], dict[str, str]]:
    """A saved state export or preview JSON: ("state" | "preview", resources, changes)."""
    doc = json.loads(text)
    if not isinstance(doc, Mapping):
        raise ValueError("expected a JSON object")
    if "steps" in doc:
        resources, changes = resources_from_preview(doc)
        return "preview", resources, changes
    return "state", resources_from_state(doc), {}


# -- building the graph ------------------------------------------------------------------------


def build_graph(
    resources: Sequence[Resource],
    *,
    stack: str | None = None,
    source: str = "state",
    changes: Mapping[str, str] | None = None,
) -> Graph:
    """Nodes, reduced dependency edges and the trust chain of `resources`."""
    kept = {
        r.urn: r
        for r in resources
        if r.type != STACK_TYPE and not (r.type.startswith(PROVIDER_PREFIX) and r.name.startswith("default"))
    }
    stack = stack or next((stack_of(u) for u in kept), "")
    parent = {u: (r.parent if r.parent in kept else None) for u, r in kept.items()}
    children: dict[str, list[str]] = {}
    for u, p in parent.items():
        if p is not None:
            children.setdefault(p, []).append(u)
    changes = dict(changes or {})
    nodes = {
        u: Node(u, r.name, short_type(r.type), parent[u], component=u in children, change=changes.get(u))
        for u, r in kept.items()
    }
    tree = _Tree(parent, children)
    deps = {u: _dependencies(r, kept, tree) for u, r in kept.items()}
    plain = _reduce(deps, tree, {u for u, r in kept.items() if r.custom or u not in children})
    trust, extra_nodes, extra_edges = _trust_chain(kept, deps, tree)
    nodes.update({n.key: n for n in extra_nodes})
    # A trust edge says more than the dependency under it (also one from the source's component).
    covered = {(s, e.target) for e in trust for s in (e.source, *tree.ancestors(e.source)) if s in nodes}
    edges = [e for e in (*extra_edges, *plain) if (e.source, e.target) not in covered]
    return Graph(stack, source, nodes, [*trust, *edges])


@dataclass(frozen=True)
class _Tree:
    parent: Mapping[str, str | None]
    children: Mapping[str, list[str]]

    def ancestors(self, u: str) -> list[str]:
        out = []
        p = self.parent.get(u)
        while p is not None:
            out.append(p)
            p = self.parent.get(p)
        return out

    def descendants(self, u: str) -> list[str]:
        out: list[str] = []
        stack = list(self.children.get(u, ()))
        while stack:
            c = stack.pop()
            out.append(c)
            stack.extend(self.children.get(c, ()))
        return out

    def depth(self, u: str) -> int:
        return len(self.ancestors(u))


def _dependencies(r: Resource, kept: Mapping[str, Resource], tree: _Tree) -> set[str]:
    """Every URN `r` depends on (explicit and through inputs), within the drawn resources."""
    urns = set(r.dependencies)
    for values in r.property_dependencies.values():
        urns.update(values)
    related = {r.urn, *tree.ancestors(r.urn)}
    return {u for u in urns if u in kept and u not in related}


def _reduce(deps: Mapping[str, set[str]], tree: _Tree, leaves: set[str]) -> list[Edge]:
    """Readable dependency edges: component collapse, lifting to parents, transitive reduction."""
    components = sorted((u for u in tree.children), key=lambda u: (tree.depth(u), u))
    expansion = {c: {d for d in tree.descendants(c) if d in leaves} for c in components}
    reduced: dict[str, set[str]] = {}
    for u, ds in deps.items():
        ds = set(ds)
        own = {u, *tree.ancestors(u), *tree.descendants(u)}
        for c in components:
            k = expansion[c]
            if c not in own and len(k) >= 2 and k <= ds:
                ds = (ds - k) | {c}
        reduced[u] = ds
    # What a parent depends on, its children need not repeat.
    for u in reduced:
        inherited = set().union(*(reduced.get(a, set()) for a in tree.ancestors(u)))
        reduced[u] = {d for d in reduced[u] if d not in inherited}

    def reach(start: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(start)
        while todo:
            x = todo.pop()
            if x in seen:
                continue
            seen.add(x)
            todo.extend(reduced.get(x, ()))
            todo.extend(tree.descendants(x))  # depending on a component: on everything in it
            for a in tree.ancestors(x):  # and on what its parents depend on
                todo.extend(reduced.get(a, ()))
        return seen

    edges = []
    for u in sorted(reduced):
        ds = reduced[u]
        for d in sorted(ds):
            others = [o for o in ds if o != d]
            if d in reach(others):
                continue
            edges.append(Edge(d, u))
    return edges


def _of_type(kept: Mapping[str, Resource], type_: str) -> list[str]:
    return sorted(u for u, r in kept.items() if r.type == type_)


def _trust_chain(
    kept: Mapping[str, Resource], deps: Mapping[str, set[str]], tree: _Tree
) -> tuple[list[Edge], list[Node], list[Edge]]:
    """The trust-chain edges (and the nodes outside the stack they need), by resource role."""
    edges: list[Edge] = []
    extra_nodes: list[Node] = []
    extra_edges: list[Edge] = []
    cas = _of_type(kept, ZITI_CA)
    spire_stacks = _of_type(kept, SPIRE_STACK)

    # The root CA: what the Ziti CA's certificate input comes from; else the RootCa component's
    # certificate (or the component: a brought root creates nothing); else the brought root of a
    # Swarm stack, which is stack config.
    roots: list[str] = []
    for ca in cas:
        cert_deps = kept[ca].property_dependencies.get("cert_pem", ())
        roots += [u for u in cert_deps if u in kept and kept[u].type in CERT_TYPES]
    for rc in _of_type(kept, ROOT_CA_COMPONENT):
        certs = [d for d in tree.descendants(rc) if kept[d].type in CERT_TYPES]
        roots += certs or [rc]
    if not roots and (cas or spire_stacks):
        roots = [BROUGHT_ROOT]
        extra_nodes.append(Node(BROUGHT_ROOT, "root CA (brought)", "config rootCa", None, external=True))
    roots = sorted(set(roots))

    # The SPIRE server: the Swarm service of a SpireStack that mounts the upstream CA secret;
    # the user's own on platform external.
    servers: list[str] = []
    for st in spire_stacks:
        inside = tree.descendants(st)
        upstream = {d for d in inside if kept[d].type == DOCKER_SECRET and d.endswith("-upstream-cert")}
        upstream |= {d for d in inside if kept[d].type == DOCKER_SECRET and deps[d] & set(roots)}
        servers += [d for d in inside if kept[d].type == DOCKER_SERVICE and deps[d] & upstream]
    if not spire_stacks and (_of_type(kept, SPIRE_ENTRY) or _of_type(kept, SPIRE_REGISTRATIONS)):
        servers = [EXTERNAL_SPIRE]
        extra_nodes.append(Node(EXTERNAL_SPIRE, "SPIRE server (yours)", "external", None, external=True))
        for reg in _of_type(kept, SPIRE_REGISTRATIONS) or _of_type(kept, SPIRE_ENTRY):
            extra_edges.append(Edge(EXTERNAL_SPIRE, reg))
    for root in roots:
        edges += [Edge(root, s, "UpstreamAuthority", True) for s in sorted(set(servers))]
        edges += [Edge(root, ca, "verified", True) for ca in cas]

    # Workloads: the Ziti CA verifies the SVIDs, the identity is matched by its SPIFFE ID.
    identities = _of_type(kept, ZITI_IDENTITY)
    entries = _of_type(kept, SPIRE_ENTRY)
    for ident in identities:
        spiffe = kept[ident].spiffe_id
        for ca in cas:
            if ca in deps[ident] or spiffe:
                edges.append(Edge(ca, ident, spiffe or "SPIFFE ID", True))
        for entry in entries:
            same = spiffe is not None and kept[entry].spiffe_id == spiffe
            by_name = (spiffe is None or kept[entry].spiffe_id is None) and _workload_key(entry) == _workload_key(
                ident
            )
            if same or by_name:
                edges.append(Edge(entry, ident, "SVID", True))

    # Users: Keycloak realm and client -> external JWT signer -> auth policy -> user identities.
    signers = _of_type(kept, ZITI_SIGNER)
    for signer in signers:
        for realm in _of_type(kept, KEYCLOAK_REALM):
            if realm in deps[signer]:
                edges.append(Edge(realm, signer, "issuer, JWKS", True))
        for client in _of_type(kept, KEYCLOAK_CLIENT):
            if client in deps[signer]:
                edges.append(Edge(client, signer, "audience", True))
    user_policies = [p for p in _of_type(kept, ZITI_AUTH_POLICY) if deps[p] & set(signers)]
    for policy in user_policies:
        for signer in signers:
            if signer in deps[policy]:
                edges.append(Edge(signer, policy, "ext-JWT signer", True))
        for ident in identities:
            if policy in deps[ident]:
                edges.append(Edge(policy, ident, "JWT login", True))
    return edges, extra_nodes, extra_edges


def _workload_key(urn: str) -> str:
    """`spire-entries-entry-<key>` / `ziti-trust-identity-<key>` -> `<key>`."""
    name = name_of(urn)
    for marker in ("-entry-", "-identity-"):
        if marker in name:
            return name.split(marker, 1)[1]
    return name


# -- rendering ---------------------------------------------------------------------------------


class _Ids:
    """Stable, readable node ids (`n_spire_server`), unique per graph."""

    def __init__(self, graph: Graph) -> None:
        self.ids: dict[str, str] = {}
        taken: set[str] = set()
        for n in sorted(graph.nodes.values(), key=lambda n: (n.name, n.kind, n.key)):
            prefix = "x" if n.external else "c" if n.component else "n"
            text = n.key.split(":", 1)[1] if n.external else n.name
            base = f"{prefix}_" + re.sub(r"[^A-Za-z0-9_]", "_", text)
            ident, i = base, 2
            while ident in taken:
                ident, i = f"{base}_{i}", i + 1
            taken.add(ident)
            self.ids[n.key] = ident

    def __getitem__(self, key: str) -> str:
        return self.ids[key]


def _ordered_children(graph: Graph) -> dict[str | None, list[Node]]:
    out: dict[str | None, list[Node]] = {}
    for n in sorted(graph.nodes.values(), key=lambda n: (n.component, n.name, n.kind, n.key)):
        out.setdefault(n.parent, []).append(n)
    return out


def _ordered_edges(graph: Graph) -> list[Edge]:
    def key(e: Edge) -> tuple[bool, str, str, str, str]:
        return (not e.trust, graph.nodes[e.source].name, graph.nodes[e.target].name, e.source, e.target)

    return sorted(graph.edges, key=key)


def _title(graph: Graph) -> str:
    return f"identity-platform/{graph.stack}" if graph.stack else "identity-platform"


def _mermaid_text(text: str) -> str:
    """Text for inside a quoted Mermaid label: entity codes for what Mermaid would parse."""
    out = []
    for ch in text:
        if ch.isalnum() or ch in " -_./:()@+,=*":
            out.append(ch)
        else:
            out.append(f"#{ord(ch)};")
    return "".join(out)


def _mermaid_label(node: Node) -> str:
    if node.component:  # one line: Mermaid draws a subgraph's title over its content otherwise
        return f'"{_mermaid_text(node.name)} <small>({_mermaid_text(node.kind)})</small>"'
    return f'"{_mermaid_text(node.name)}<br/><small>{_mermaid_text(node.kind)}</small>"'


def render_mermaid(graph: Graph, *, command: str | None = None) -> str:
    """A Markdown fragment: heading, a fenced Mermaid flowchart and a legend."""
    ids = _Ids(graph)
    children = _ordered_children(graph)
    lines = ["flowchart LR"]

    def emit(parent: str | None, indent: str) -> None:
        for n in children.get(parent, []):
            if n.component:
                lines.append(f"{indent}subgraph {ids[n.key]}[{_mermaid_label(n)}]")
                emit(n.key, indent + "  ")
                lines.append(f"{indent}end")
            elif n.external:
                lines.append(f"{indent}{ids[n.key]}[/{_mermaid_label(n)}/]")
            else:
                lines.append(f"{indent}{ids[n.key]}[{_mermaid_label(n)}]")

    emit(None, "  ")
    edges = _ordered_edges(graph)
    trust_indexes = []
    for i, e in enumerate(edges):
        a, b = ids[e.source], ids[e.target]
        if e.trust:
            trust_indexes.append(i)
            lines.append(f'  {a} ==>|"{_mermaid_text(e.label or "")}"| {b}')
        elif e.label:
            lines.append(f'  {a} -.->|"{_mermaid_text(e.label)}"| {b}')
        else:
            lines.append(f"  {a} --> {b}")
    if trust_indexes:
        lines.append(f"  linkStyle {','.join(map(str, trust_indexes))} stroke:{TRUST_COLOUR},stroke-width:3px")
    for cls, (fill, stroke) in CLASS_STYLE.items():
        dash = ",stroke-dasharray:4 3" if cls == "deleted" else ""
        lines.append(f"  classDef {cls} fill:{fill},stroke:{stroke},stroke-width:2px{dash}")
    lines.append("  classDef external fill:#f6f8fa,stroke:#57606a,stroke-dasharray:4 3")
    by_class: dict[str, list[str]] = {}
    for n in graph.nodes.values():
        if n.change:
            by_class.setdefault(n.change, []).append(ids[n.key])
        if n.external:
            by_class.setdefault("external", []).append(ids[n.key])
    for cls in (*CHANGE_CLASSES, "external"):
        if cls in by_class:
            lines.append(f"  class {','.join(sorted(by_class[cls]))} {cls}")

    counts: dict[str, int] = {}
    for n in graph.nodes.values():
        if n.change:
            counts[n.change] = counts.get(n.change, 0) + 1
    legend = "Thick amber edges: the trust chain. Subgraphs: components."
    if counts:
        legend += " " + ", ".join(f"{LEGEND[c]}: {counts[c]}" for c in CHANGE_CLASSES if c in counts) + "."
    elif graph.source == "preview":
        legend += " No changes."
    origin = f"`{command}`" if command else f"from the {graph.source}"
    return "\n".join(
        [
            f"#### Topology and trust chain: {_title(graph)} ({origin})",
            "",
            "```mermaid",
            *lines,
            "```",
            "",
            legend,
            "",
        ]
    )


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _dot_label(node: Node) -> str:
    return f'<{_html(node.name)}<br/><font point-size="8" color="#57606a">{_html(node.kind)}</font>>'


def render_dot(graph: Graph) -> str:
    """Graphviz source: clusters for components, edges to clusters through `lhead`/`ltail`."""
    ids = _Ids(graph)
    children = _ordered_children(graph)
    lines = [
        "digraph topology {",
        f'  graph [rankdir=LR, compound=true, newrank=true, fontname="Helvetica", fontsize=12, labelloc=t,'
        f' label={_dot_id(_title(graph) + ": topology and trust chain")}, nodesep=0.2, ranksep=0.45];',
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#8c959f", fontname="Helvetica",'
        " fontsize=10, margin=\"0.12,0.04\"];",
        '  edge [color="#8c959f", arrowsize=0.6, fontname="Helvetica", fontsize=9];',
    ]

    def anchor(key: str) -> str:
        """A node inside a component, to attach the component's edges to."""
        node = graph.nodes[key]
        if not node.component:
            return ids[key]
        return anchor(children[key][0].key)

    def emit(parent: str | None, indent: str) -> None:
        for n in children.get(parent, []):
            if n.component:
                fill, stroke = CLASS_STYLE.get(n.change or "", ("#f6f8fa", "#d0d7de"))
                lines.append(f"{indent}subgraph {_dot_id('cluster_' + ids[n.key])} {{")
                lines.append(
                    f'{indent}  label={_dot_label(n)}; style="rounded,filled"; fillcolor="{fill}"; color="{stroke}";'
                )
                emit(n.key, indent + "  ")
                lines.append(f"{indent}}}")
                continue
            attrs = [f"label={_dot_label(n)}"]
            if n.change:
                fill, stroke = CLASS_STYLE[n.change]
                attrs += [f'fillcolor="{fill}"', f'color="{stroke}"', "penwidth=2"]
                if n.change == "deleted":
                    attrs.append('style="rounded,filled,dashed"')
            if n.external:
                attrs += ['style="rounded,dashed"', 'color="#57606a"']
            lines.append(f"{indent}{ids[n.key]} [{', '.join(attrs)}];")

    emit(None, "  ")
    for e in _ordered_edges(graph):
        attrs = []
        if graph.nodes[e.source].component:
            attrs.append(f"ltail={_dot_id('cluster_' + ids[e.source])}")
        if graph.nodes[e.target].component:
            attrs.append(f"lhead={_dot_id('cluster_' + ids[e.target])}")
        if e.trust:
            attrs += [f'color="{TRUST_COLOUR}"', f'fontcolor="{TRUST_COLOUR}"', "penwidth=2.5", "arrowsize=0.8"]
        if e.label:
            attrs.append(f"label={_dot_id(e.label)}")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"  {anchor(e.source)} -> {anchor(e.target)}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_executable() -> str:
    found = shutil.which("dot")
    if found is None:
        raise OpsError(
            ExitCode.FAILED,
            "Graphviz `dot` is not installed (needed for --format svg)",
            "install Debian's graphviz: scripts/apt-packages (or `apt-get install graphviz`); "
            "--format mermaid and --format dot need nothing",
            kind="graphviz_missing",
        )
    return found


def render_svg(graph: Graph) -> str:
    """The DOT source laid out by Graphviz `dot -Tsvg`."""
    done = subprocess.run(
        [dot_executable(), "-Tsvg"], input=render_dot(graph), capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise OpsError(ExitCode.FAILED, f"Graphviz dot failed: {done.stderr.strip()}", kind="graphviz_failed")
    return done.stdout


def render(graph: Graph, fmt: str, *, command: str | None = None) -> str:
    if fmt == "mermaid":
        return render_mermaid(graph, command=command)
    if fmt == "dot":
        return render_dot(graph)
    if fmt == "svg":
        return render_svg(graph)
    raise ValueError(f"unknown format {fmt!r}")


# -- reading a stack ---------------------------------------------------------------------------


def state_resources(
    stack: str,
    *,
    root: Path = PROJECT_ROOT,
    environ: Mapping[str, str] | None = None,
    command: auto.PulumiCommand | None = None,
) -> list[Resource]:
    """The stack's resources from `pulumi stack export`, secrets left encrypted (no passphrase
    needed: the graph reads no secret); exit 4 when it has none."""
    st = open_stack(stack, create=False, root=root, environ=environ, command=command, secrets=False)
    exported = read_masked(st, "stack", "export")
    resources = resources_from_state(exported if isinstance(exported, Mapping) else {})
    if not [r for r in resources if r.type != STACK_TYPE]:
        raise OpsError(
            ExitCode.STACK_NOT_FOUND,
            f"stack {stack!r} has no resources in its state (never deployed)",
            f"draw what `up` would build: python -m ops diagram --stack {stack} --from preview",
        )
    return resources


def preview_document(
    stack: str,
    *,
    root: Path = PROJECT_ROOT,
    environ: Mapping[str, str] | None = None,
    command: auto.PulumiCommand | None = None,
) -> dict[str, Any]:
    """`pulumi preview --json` of the stack, with the workspace `ops preview` uses (no side effects)."""
    validate_stack_config(stack, root)
    st = open_stack(stack, create=True, root=root, environ=environ, command=command)
    ws = st.workspace
    env = dict(ws.env_vars)
    if ws.pulumi_home:
        env["PULUMI_HOME"] = ws.pulumi_home
    try:
        result = ws.pulumi_command.run(["preview", "--json", "--stack", st.name], ws.work_dir, env)
    except auto.CommandError as e:
        raise _preview_failure(e) from None
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def _preview_failure(err: auto.CommandError) -> OpsError:
    """The exit code for a failed `preview --json`; the message: its last error diagnostic."""
    failure = classify_command_error(err)
    text = str(err)  # "\n code: N\n stdout: ...\n stderr: ..." (CommandResult.__str__)
    start, end = text.find("\n stdout: "), text.rfind("\n stderr: ")
    body = text[start + len("\n stdout: ") : end if end > start else None] if start >= 0 else ""
    try:
        doc = json.loads(body)
    except json.JSONDecodeError:
        doc = {}
    errors = [
        str(d.get("message", "")).strip()
        for d in (doc.get("diagnostics") if isinstance(doc, Mapping) else None) or []
        if isinstance(d, Mapping) and d.get("severity") == "error" and str(d.get("message", "")).strip()
    ]
    if errors and failure.code == ExitCode.FAILED:
        failure.message = engine_error(errors)
    return failure


def match_changed(resources: Sequence[Resource], wanted: Sequence[str]) -> dict[str, str]:
    """`--changed` values (URNs, or resource names) -> {urn: "changed"}; unknown ones: exit 64."""
    by_name: dict[str, list[str]] = {}
    for r in resources:
        by_name.setdefault(r.name, []).append(r.urn)
    urns = {r.urn for r in resources}
    out: dict[str, str] = {}
    unknown = []
    for w in wanted:
        if w in urns:
            out[w] = "changed"
        elif w in by_name:
            out.update({u: "changed" for u in by_name[w]})
        else:
            unknown.append(w)
    if unknown:
        raise OpsError(
            ExitCode.USAGE,
            f"--changed names no resource of the stack: {', '.join(unknown)}",
            "pass URNs (or names) of resources in the stack",
        )
    return out


# -- the subcommand ----------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    """Register `diagram` on the `python -m ops` subparsers."""
    p = sub.add_parser(
        "diagram",
        help="draw the stack's topology and trust chain (Mermaid, Graphviz dot, SVG)",
        description="Draw the stack's components, dependencies and trust chain from its state or a preview.",
    )
    p.add_argument("--stack", "-s", required=True, help="stack name: one of the Pulumi.<stack>.yaml files")
    p.add_argument("--format", choices=FORMATS, default="mermaid", help="mermaid (Markdown, default), dot or svg")
    p.add_argument(
        "--from",
        dest="source",
        choices=SOURCES,
        default=None,
        help="the stack's state (default) or a preview, whose changes are marked",
    )
    p.add_argument(
        "--changed", nargs="+", action="extend", default=[], metavar="URN", help="mark these resources as changed"
    )
    p.add_argument(
        "--input",
        metavar="FILE",
        help="read a saved `pulumi stack export` or `pulumi preview --json` instead (`-`: stdin)",
    )
    p.add_argument("--output", "-o", metavar="FILE", help="write the diagram to FILE instead of stdout")


def run(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    *,
    environ: Mapping[str, str] | None = None,
    root: Path = PROJECT_ROOT,
    stdin: Callable[[], str] | None = None,
) -> int:
    """`python -m ops diagram ...`; returns the exit code."""
    try:
        text = _diagram(args, environ=environ, root=root, stdin=stdin)
    except OpsError as e:
        print(f"error: {e.message}", file=err)
        if e.hint:
            print(f"  fix: {e.hint}", file=err)
        return int(e.code)
    except KeyboardInterrupt:
        print("error: interrupted", file=err)
        return ExitCode.INTERRUPTED
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=err)
    else:
        out.write(text)
    return ExitCode.OK


def _diagram(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str] | None,
    root: Path,
    stdin: Callable[[], str] | None,
) -> str:
    changes: dict[str, str] = {}
    if args.input:
        try:
            if args.input == "-":
                raw = (stdin or sys.stdin.read)()
            else:
                raw = Path(args.input).read_text()
            source, resources, changes = load_document(raw)
        except (OSError, ValueError) as e:
            raise OpsError(
                ExitCode.USAGE,
                f"cannot read {args.input}: {e}",
                "give the output of `pulumi stack export` or `pulumi preview --json`",
            ) from None
        if args.source is not None and args.source != source:
            raise OpsError(ExitCode.USAGE, f"{args.input} is a {source}, not a {args.source}")
    elif args.source == "preview":
        source = "preview"
        resources, changes = resources_from_preview(preview_document(args.stack, root=root, environ=environ))
    else:
        source = "state"
        resources = state_resources(args.stack, root=root, environ=environ)
    if args.changed:
        for urn, change in match_changed(resources, args.changed).items():
            changes.setdefault(urn, change)
    graph = build_graph(resources, stack=args.stack, source=source, changes=changes)
    command = f"python -m ops diagram --stack {args.stack} --from {source}"
    return render(graph, args.format, command=command)
