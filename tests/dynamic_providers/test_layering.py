"""The direction of imports inside dynamic_providers/ is the design: the systems (keycloak/, ziti/,
spire/) import the kernel and the transport; the kernel and the transport import no system, so no
import circle can form. Read from the source (every `import`, also inside functions), not from a
running interpreter, so a lazy import cannot hide.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "dynamic_providers"
SYSTEMS = ("keycloak", "ziti", "spire")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, absolute, including `from X import name` as X.name."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def _identifiers(path: Path) -> set[str]:
    """Every name the code uses or defines (prose in docstrings and comments may name a system)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.add(node.name)
        elif isinstance(node, ast.alias):
            out.add(node.asname or node.name)
    return out


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "_proto" not in p.parts)


def _shared(path: Path) -> bool:
    """The kernel and the transport, as modules or packages."""
    top = path.relative_to(PACKAGE).parts[0]
    return top.startswith(("_kernel", "_transport"))


def test_the_kernel_exists() -> None:
    assert any(_shared(p) and p.relative_to(PACKAGE).parts[0].startswith("_kernel") for p in _sources())


@pytest.mark.parametrize("path", [p for p in _sources() if _shared(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_kernel_and_transport_import_no_system(path: Path) -> None:
    systems = {f"dynamic_providers.{s}" for s in SYSTEMS}
    bad = sorted(m for m in _imports(path) if any(m == s or m.startswith(f"{s}.") for s in systems))
    assert not bad, f"{path.relative_to(ROOT)} imports a system: {bad}"
    named = sorted({n for n in _identifiers(path) if any(s in n.lower() for s in SYSTEMS)})
    assert not named, f"{path.relative_to(ROOT)} names a system in its code: {named}"


@pytest.mark.parametrize("system", SYSTEMS)
def test_each_system_provider_is_built_on_the_kernel(system: str) -> None:
    assert "dynamic_providers._kernel" in _imports(PACKAGE / system / "provider.py")


def test_no_import_cycle_among_the_package_modules() -> None:
    modules = {_module(p): p for p in _sources()}
    graph = {
        name: {m for m in _imports(path) if m in modules and m != name and not name.startswith(f"{m}.")}
        for name, path in modules.items()
    }
    # A package's `__init__` re-exporting its own modules is not a cycle through them.
    graph = {n: {m for m in deps if not m.startswith(f"{n}.")} for n, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def _private_uses(path: Path) -> list[str]:
    """Private names (`_x`) of dynamic_providers that `path` imports or reaches as an attribute of
    a name it imported from there."""
    tree = ast.parse(path.read_text(), str(path))
    imported: set[str] = set()
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dynamic_providers"):
            for alias in node.names:
                if alias.name.startswith("_"):
                    bad.append(f"{node.module}.{alias.name}")
                imported.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in imported
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            bad.append(f"{node.value.id}.{node.attr}")
    return bad


@pytest.mark.parametrize("path", sorted((ROOT / "stack_config").glob("*.py")), ids=lambda p: p.name)
def test_stack_config_reuses_provider_rules_by_public_names(path: Path) -> None:
    """The configuration applies the providers' own URL rules at load; a private name could be
    renamed or changed by the provider without anyone seeing that the config relies on it."""
    assert _private_uses(path) == [], f"stack_config/{path.name} uses private provider names"
