"""The components see only their own args (docs/architecture.md: "never the whole `StackConfig`").

`components/assembly.py` translates the configuration into each component's frozen args, and
`components/spire_connection.py` translates it into the SPIRE connection `ops` shares; no other
module under components/ may import `StackConfig` or take one, or a component could start
reading any setting again and the assembly would no longer say what each one depends on."""

from __future__ import annotations

import ast
from pathlib import Path

COMPONENTS = Path(__file__).resolve().parents[2] / "components"
# The translators from the configuration: the only modules that read the whole of it.
TRANSLATORS = {COMPONENTS / "assembly.py", COMPONENTS / "spire_connection.py"}


def _names_stack_config(node: ast.expr | None) -> bool:
    """True when an annotation mentions StackConfig (a name, `stack_config.StackConfig`, or a string)."""
    if node is None:
        return False
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id == "StackConfig":
            return True
        if isinstance(sub, ast.Attribute) and sub.attr == "StackConfig":
            return True
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and "StackConfig" in sub.value:
            return True
    return False


def stack_config_uses(path: Path) -> list[str]:
    """Where a module imports StackConfig, or annotates a parameter, field or variable with it."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "stack_config":
            if any(alias.name == "StackConfig" for alias in node.names):
                found.append(f"{node.lineno}: imports StackConfig")
        elif isinstance(node, ast.Attribute) and node.attr == "StackConfig":
            found.append(f"{node.lineno}: names stack_config.StackConfig")
        elif isinstance(node, ast.arg) and _names_stack_config(node.annotation):
            found.append(f"{node.lineno}: parameter {node.arg} takes a StackConfig")
        elif isinstance(node, ast.AnnAssign) and _names_stack_config(node.annotation):
            found.append(f"{node.lineno}: field or variable annotated with StackConfig")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _names_stack_config(node.returns):
            found.append(f"{node.lineno}: {node.name} returns a StackConfig")
    return found


def test_components_take_no_stack_config() -> None:
    modules = sorted(p for p in COMPONENTS.rglob("*.py") if p not in TRANSLATORS)
    assert any(p.parent.name == "kubernetes" for p in modules)  # the walk reaches the subpackages
    problems = [
        f"{p.relative_to(COMPONENTS.parent)}:{use}" for p in modules for use in stack_config_uses(p)
    ]
    assert not problems, "build the component's args in components/assembly.py instead:\n" + "\n".join(problems)


def test_the_check_sees_each_way_of_taking_the_config(tmp_path: Path) -> None:
    """The checker itself: an import, a parameter, a field, a quoted annotation, a qualified name."""
    cases = {
        "from stack_config import StackConfig\n": 1,
        "def f(c: 'StackConfig') -> None: ...\n": 1,
        "from dataclasses import dataclass\n@dataclass(frozen=True)\nclass A:\n    config: StackConfig\n": 1,
        "import stack_config\ndef f(c: stack_config.StackConfig) -> None: ...\n": 2,
        "from stack_config import Images\ndef f(images: Images) -> None: ...\n": 0,
    }
    for i, (source, expected) in enumerate(cases.items()):
        path = tmp_path / f"m{i}.py"
        path.write_text(source)
        assert len(stack_config_uses(path)) == expected, source
