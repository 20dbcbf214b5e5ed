"""Shared base for the stack configuration model tree.

Every model is frozen (config is parsed once and never mutated) and forbids unknown keys, so a
typo in `Pulumi.<stack>.yaml` fails at `pulumi preview` instead of being silently ignored.
Keys are camelCase in YAML (Pulumi's convention) and snake_case in Python.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from policy.image_ref import pin_problem

PROJECT = "identity-platform"

PLACEHOLDER_DOMAINS = ("example.org", "example.com", "example.net")


class Model(BaseModel):
    """Frozen, closed pydantic model with camelCase aliases."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=True,
    )


class ConfigError(ValueError):
    """One actionable message per bad config value, naming the full config key."""


def is_placeholder_domain(value: str) -> bool:
    """True for example.* domains (and their subdomains) that strict mode rejects."""
    v = value.lower().rstrip(".")
    return any(v == d or v.endswith("." + d) for d in PLACEHOLDER_DOMAINS)


def is_localhost(value: str) -> bool:
    """True when a host or URL points at the local machine."""
    v = value.lower()
    return bool(re.search(r"(^|[/@.])(localhost|127\.0\.0\.1|\[::1\])([:/]|$)", v))


def check_pinned_image(ref: str) -> str:
    """Return `ref` if it is pinned (`policy.image_ref`: a full version tag or a digest)."""
    problem = pin_problem(ref)
    if problem:
        raise ValueError(problem)
    return ref


def _line(loc: list[Any], msg: str, kind: str, root_keys: dict[str, str]) -> str:
    """One `<project>:<key>: <message> (fix: ...)` line."""
    head = str(loc[0]) if loc else ""
    key = f"{PROJECT}:{root_keys.get(head, head)}"
    rest = ".".join(str(p) for p in loc[1:])
    full = f"{key}.{rest}" if rest else key
    if kind == "extra_forbidden":
        msg = "unknown key: remove it or check its spelling"
    elif kind == "missing":
        msg = "required: set it"
    if "(fix: `" in msg:
        return f"{full}: {msg}"
    path_flag = " --path" if rest else ""
    verb = "rm" if kind == "extra_forbidden" or "remove it" in msg else "set"
    value = "" if verb == "rm" else " <value>"
    return f"{full}: {msg} (fix: `pulumi config {verb}{path_flag} '{full.split(':', 1)[1]}'{value}`)"


def format_validation_error(err: ValidationError, root_keys: dict[str, str]) -> str:
    """Render pydantic errors as `<project>:<key>.<path>: <message>` lines with a fix hint.

    `root_keys` maps the model's top-level field alias to the Pulumi config key it came from.
    """
    lines = []
    for e in err.errors():
        loc: list[Any] = list(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if not loc:
            # Model-level validators phrase each problem as a "<key.path>: <what to do>" line.
            for line in msg.split("\n"):
                m = re.match(r"^([A-Za-z0-9_.-]+): (.*)$", line, re.S)
                if m:
                    lines.append(_line(m.group(1).split("."), m.group(2), e["type"], root_keys))
                else:
                    lines.append(_line([], line, e["type"], root_keys))
            continue
        lines.append(_line(loc, msg, e["type"], root_keys))
    return "invalid stack configuration:\n  " + "\n  ".join(lines)


def required(value: str | None, key: str) -> str:
    """A setting the platform needs; `StackConfig` has already refused a stack without it."""
    if value is None:
        raise ConfigError(f"{PROJECT}:{key}: required: set it (fix: `pulumi config set --path '{key}' <value>`)")
    return value
