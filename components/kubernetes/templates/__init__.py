"""The observability configs of kubernetes.iam, kept as files (YAML with `$name` placeholders) so
they read as the servers' own documentation shows them, and a reviewer diffs them as config.

`render(name, **values)` substitutes the placeholders (`string.Template`: a missing value is an
error, `$$` is a literal `$`) and parses the result with PyYAML, so a template that is not valid
YAML fails when the program builds its ConfigMaps, not when the pod starts. What a placeholder
holds (ports, service names, retention) comes from the constants the Kubernetes objects use.
"""

from __future__ import annotations

from importlib import resources
from string import Template
from typing import Any

import yaml


def text(name: str) -> str:
    """The raw template `components/kubernetes/templates/<name>`."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def render(name: str, **values: object) -> str:
    """The template with every placeholder filled; checked to parse as one YAML mapping."""
    out = Template(text(name)).substitute({k: str(v) for k, v in values.items()})
    parsed: Any = yaml.safe_load(out)
    if not isinstance(parsed, dict):
        raise ValueError(f"template {name} does not render to a YAML mapping")
    return out


def names() -> list[str]:
    """Every template file (not this module), sorted."""
    return sorted(p.name for p in resources.files(__name__).iterdir()
                  if p.is_file() and not p.name.startswith("__"))
