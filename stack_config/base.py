"""Shared base for the stack configuration model tree: the model class, the value types several
sections use (host names, object names, realm names, Go durations, pinned images), the
placeholder and local-address rules of strict mode, and the rendering of every problem as one
`identity-platform:<key>: <problem> (fix: ...)` line.

Every model is frozen (config is parsed once and never mutated) and forbids unknown keys, so a
typo in `Pulumi.<stack>.yaml` fails at `pulumi preview` instead of being silently ignored.
Keys are camelCase in YAML (Pulumi's convention) and snake_case in Python.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import socket
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from policy.image_ref import pin_problem

PROJECT = "identity-platform"


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


# --- strict mode: placeholders and local addresses ---------------------------------------------

# RFC 2606 / RFC 6761 reserve these top-level names for tests and documentation; `localhost` is
# a local address (below).
RESERVED_TLDS = ("example", "test", "invalid")
# Second-level labels under which registries sell names (example.co.uk, example.com.au): with a
# two-letter country code after them, `example` is the registered name.
_SECOND_LEVEL = frozenset({"ac", "co", "com", "edu", "go", "gob", "gov", "ltd", "mil", "ne", "net", "nom", "or", "org",
                           "plc", "sch"})  # fmt: skip
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def host_of(value: str) -> str:
    """The host of a URL (`https://h:1/x` -> `h`), or `value` itself when it is not a URL."""
    if "://" in value:
        try:
            return urlsplit(value).hostname or ""
        except ValueError:
            return ""
    return value


def is_placeholder_domain(value: str) -> bool:
    """True for documentation names (RFC 2606): `example.<tld>` and `example.<sld>.<cc>` with any
    subdomains (auth.example.com, example.co.uk), and anything under `.example`, `.test` or
    `.invalid`."""
    labels = value.strip().lower().rstrip(".").split(".")
    if labels[-1] in RESERVED_TLDS:
        return True
    if "example" not in labels[:-1]:
        return False
    after = labels[len(labels) - 1 - labels[::-1].index("example") + 1 :]
    return len(after) == 1 or (len(after) == 2 and after[0] in _SECOND_LEVEL and len(after[1]) == 2)


def is_local_host(host: str) -> bool:
    """True when `host` names this machine or no machine: localhost in any spelling (`LOCALHOST`,
    `localhost.`, `*.localhost`), loopback addresses (`127.x.y.z`, `::1`, `127.1`, `0x7f000001`)
    and the unspecified addresses (`0.0.0.0`, `::`, `[::]`)."""
    h = host.strip().lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    h = h.rstrip(".")
    if not h:
        return False
    if h in _LOCAL_NAMES or h.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        if not re.fullmatch(r"[0-9a-fx.]+", h):
            return False
        try:  # the BSD spellings of IPv4 (127.1, 0x7f.1, 2130706433) that resolvers accept
            ip = ipaddress.IPv4Address(socket.inet_aton(h))
        except OSError:
            return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def is_localhost(value: str) -> bool:
    """True when a host or a URL's host points at the local machine (see `is_local_host`)."""
    return is_local_host(host_of(value))


# --- value types -------------------------------------------------------------------------------


def checked(problem: Callable[[str], str | None], explain: Callable[[str, str], str]) -> AfterValidator:
    """A pydantic validator from a rule: `problem(v)` says what is wrong (None: nothing), and
    `explain(v, problem)` is the message the config line carries."""

    def check(v: str) -> str:
        found = problem(v)
        if found:
            raise ValueError(explain(v, found))
        return v

    return AfterValidator(check)


_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def hostname_problem(v: str) -> str | None:
    """Why `v` is not a host name clients can be given (DNS name or IPv4 address), or None."""
    if "://" in v or "/" in v:
        return "is a URL or a path: give the host name alone (e.g. auth.acme.net), without scheme or path"
    if any(c.isspace() for c in v):
        return "contains whitespace: give one host name (e.g. auth.acme.net)"
    if ":" in v:
        return "has a port or is an IPv6 address: give a DNS name or an IPv4 address without a port"
    if v.endswith("."):
        return "ends with a dot: write the name without it (certificates and URLs use that form)"
    if _IPV4.match(v):
        try:
            ipaddress.IPv4Address(v)
        except ValueError:
            return "is not a valid IPv4 address"
        return None
    if len(v) > 253:
        return "is longer than 253 characters"
    for label in v.split("."):
        if not _HOST_LABEL.match(label):
            return (
                f"is not a host name: label {label!r} must be 1-63 letters, digits or '-', not starting or "
                "ending with '-'"
            )
    return None


_OBJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def object_name_problem(v: str) -> str | None:
    """Docker's object-name rule (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`), at most 63 characters: the name
    becomes Docker container and volume names, Pulumi resource names and Ziti entity names."""
    if not _OBJECT_NAME.match(v):
        return (
            "is not a valid name: use 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit "
            "(it names Docker objects and Ziti entities)"
        )
    return None


_REALM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def realm_problem(v: str) -> str | None:
    """A Keycloak realm name must be safe in URL paths (`/realms/<name>`, `/admin/realms/<name>`)
    and not be the admin realm."""
    if v.lower() == "master":
        return "is Keycloak's administration realm: the platform's users live in a realm of their own (e.g. platform)"
    if not _REALM.match(v):
        return (
            "is not a path-safe realm name: use letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(it is a segment of every Keycloak URL)"
        )
    return None


# Go's time.ParseDuration grammar, without a sign: SPIRE reads its TTLs with it.
_GO_DURATION = re.compile(r"^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$")
_GO_UNIT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_NANOS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
          "h": 3600 * 10**9}  # fmt: skip
_MAX_GO_NANOS = 2**63 - 1
DURATION_HINT = (
    "write a Go duration, the pattern <number><unit>... such as 90s, 45m, 24h or 1h30m (units ns, us, ms, s, m, h; "
    "no days)"
)


_NO_UNIT = "has no unit: a bare number is ambiguous for a duration; write it with its unit, e.g. 24h, 45m or 90s"


def _duration_text(v: Any) -> Any:
    """A YAML number where a duration is expected: refused, since its unit is anyone's guess."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        raise ValueError(f"{v} {_NO_UNIT}")
    return v


def _scalar_text(v: Any) -> Any:
    """A YAML boolean or integer where text is expected, as the text a user meant: `true`,
    `false`, `12345` (`pulumi config set --path k true` stores a boolean)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return v


def whole_number(what: str, example: int, give: str = "one") -> BeforeValidator:
    """A whole-number key's guard: a YAML boolean (`pulumi config set --path k true` stores one) is
    refused instead of read as 1 or 0, as pydantic's lax mode would. Digits as text (`"30"`) stay
    the number."""

    def refuse_bool(v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError(f"{'true' if v else 'false'} is not {what}: give {give}, e.g. {example}")
        return v

    return BeforeValidator(refuse_bool)


def port_number(example: int) -> BeforeValidator:
    """A port key's guard (see `whole_number`)."""
    return whole_number("a port number", example, give="the port")


def go_duration_seconds(text: str) -> float:
    """The length of a positive Go duration (`1h30m` -> 5400.0); raises ValueError with the rule."""
    if text.startswith(("-", "+")):
        raise ValueError(f"{text!r} has a sign: a TTL is a positive duration; {DURATION_HINT}")
    if text == "0":  # Go's one unitless duration
        raise ValueError(f"{text!r} is zero: SPIRE would silently use its default; {DURATION_HINT}")
    if re.fullmatch(r"[0-9.]+", text):
        raise ValueError(f"{text!r} {_NO_UNIT}")
    if not _GO_DURATION.match(text):
        raise ValueError(f"{text!r} is not a duration SPIRE can read: {DURATION_HINT}")
    nanos = sum(float(n) * _NANOS[unit] for n, unit in _GO_UNIT.findall(text))
    if nanos <= 0:
        raise ValueError(f"{text!r} is zero: SPIRE would silently use its default; {DURATION_HINT}")
    if nanos > _MAX_GO_NANOS:
        raise ValueError(f"{text!r} is longer than Go's longest duration (about 292 years)")
    return nanos / 10**9


def _go_duration(v: str) -> str:
    go_duration_seconds(v)
    return v


def format_duration(seconds: float) -> str:
    """A Go duration for `seconds` (`16200` -> `4h30m`), for messages that propose a value."""
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s or not whole else "")
    return out


def check_pinned_image(ref: str) -> str:
    """Return `ref` if it is pinned (`policy.image_ref`: a full version tag or a digest)."""
    problem = pin_problem(ref)
    if problem:
        raise ValueError(problem)
    return ref


Hostname = Annotated[str, checked(hostname_problem, lambda v, p: f"{v!r} {p}")]
"""A DNS name or IPv4 address, without scheme, port, path or trailing dot."""
ObjectName = Annotated[str, checked(object_name_problem, lambda v, p: f"{v!r} {p}")]
"""A name that is valid for Docker objects and Ziti entities."""
RealmName = Annotated[str, checked(realm_problem, lambda v, p: f"{v!r} {p}")]
"""A path-safe Keycloak realm name other than master."""
GoDuration = Annotated[str, BeforeValidator(_duration_text), AfterValidator(_go_duration)]
"""A positive Go duration (`24h`, `1h30m`), as SPIRE's configuration takes it."""
ScalarText = Annotated[str, BeforeValidator(_scalar_text)]
"""Text where a user naturally types a YAML boolean or integer (a label value, an id, a revision):
`true` -> "true", `12345` -> "12345". Every other text key stays strict."""


# --- problems as lines -------------------------------------------------------------------------


def key_path(loc: list[Any]) -> str:
    """A config key path as `pulumi config set --path` takes it: `a.b[0]["zt.db"]`."""
    out = ""
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", str(p)):
            out += f".{p}" if out else str(p)
        else:
            out += f'["{p}"]'
    return out


def known_keys(model: type[BaseModel], loc: list[Any]) -> list[str]:
    """The keys a model of the tree accepts at `loc` (the location of an unknown key)."""
    return _model_keys(annotation_at(model, loc[:-1]))


def _model_keys(annotation: Any) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f.alias or n for n, f in annotation.model_fields.items()]
    return []


def annotation_at(model: type[BaseModel], loc: list[Any]) -> Any:
    """The type the tree expects at `loc` (None when `loc` leaves the tree): a model, a
    `dict[K, V]`, a `list[X]` or a scalar type, without `| None` and `Annotated`."""
    current: Any = model
    for p in loc:
        origin = typing.get_origin(current)
        if origin is dict and not isinstance(p, int):
            current = _unwrap(typing.get_args(current)[1])
        elif origin is list and isinstance(p, int):
            current = _unwrap(typing.get_args(current)[0])
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = next((f for n, f in current.model_fields.items() if p in (f.alias or n, n)), None)
            if field is None:
                return None
            current = _unwrap(field.annotation)
        else:
            return None
    return current


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X, `Annotated[X, ...]` -> X."""
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else annotation
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def closest(word: str, candidates: list[str]) -> str | None:
    """The candidate `word` is most likely a misspelling of, or None."""
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def did_you_mean(word: str, candidates: list[str]) -> str:
    """` (did you mean 'x'?)` for the closest candidate, or ``."""
    near = closest(word, candidates)
    return f" (did you mean {near!r}?)" if near else ""


def problem_line(loc: list[Any], msg: str, kind: str = "value_error", known: list[str] | None = None) -> str:
    """One `<project>:<key>: <message> (fix: ...)` line; the fix is `pulumi config rm` when the
    message says to remove the value, else `pulumi config set`."""
    if loc and loc[-1] == "[key]":  # a map entry whose name is invalid
        loc = loc[:-1]
        msg = f"{msg}: remove the entry and set it again under a valid name"
        kind = "entry_name"
    path = key_path(loc)
    full = f"{PROJECT}:{path}"
    if kind == "extra_forbidden":
        msg = f"unknown key{did_you_mean(str(loc[-1]), known or [])}: remove it or check its spelling"
    elif kind == "missing":
        msg = "required: set it"
    if "(fix: `" in msg:
        return f"{full}: {msg}"
    path_flag = " --path" if len(loc) > 1 else ""
    verb = "rm" if kind in ("extra_forbidden", "entry_name") or "remove it" in msg else "set"
    value = "" if verb == "rm" else " <value>"
    return f"{full}: {msg} (fix: `pulumi config {verb}{path_flag} '{path}'{value}`)"


# A model-level line: a key path (dotted, or with `key_path`'s ["name"] and [0] parts), ": ", the problem.
_KEYED_LINE = re.compile(r'^((?:[A-Za-z0-9_.-]|\["[^"]*"\]|\[[0-9]+\])+): (.*)$', re.S)
_KEY_PART = re.compile(r'\["([^"]*)"\]|\[([0-9]+)\]|([^.\[\]]+)')


def parse_key_path(path: str) -> list[Any]:
    """`key_path`'s inverse: `a.b[0]["zt.db"]` -> ["a", "b", 0, "zt.db"]."""
    return [
        m.group(1) if m.group(1) is not None else int(m.group(2)) if m.group(2) is not None else m.group(3)
        for m in _KEY_PART.finditer(path)
    ]


# --- pydantic's errors in the user's words -----------------------------------------------------

_PATTERN_FORMATS: dict[str, str] = {}


def formatted(pattern: str, description: str) -> str:
    """`pattern` for a Field, registered with the format it stands for: a value that does not match
    is refused with `description` (what the format is, with an example), never the regex."""
    _PATTERN_FORMATS[pattern] = description
    return pattern


# What a user calls a map's keys, by the map's config key.
_MAP_KEY_NOUNS = {
    "nodes": "node name", "workloads": "workload name", "users": "user name", "imports": "resource name",
    "clusters": "cluster name", "agents": "agent name", "labels": "label", "gatewaySelector": "label",
    "images": "role",
}  # fmt: skip


def _shown(value: Any) -> str:
    """A value a user typed, for a message: a short scalar as written; anything else by its kind."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 80 and "\n" not in value else "a long text"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "another kind of value"


def _kind(annotation: Any, loc: list[Any]) -> str:
    """What the tree expects at `loc`, in words: `a map of node name to {dockerHost, labels}`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "{" + ", ".join(_model_keys(annotation)) + "}"
    origin = typing.get_origin(annotation)
    if origin is dict:
        noun = _MAP_KEY_NOUNS.get(str(loc[-1]) if loc else "", "name")
        return f"a map of {noun} to {_kind(_unwrap(typing.get_args(annotation)[1]), [])}"
    if origin is list:
        return f"a list of {_kind(_unwrap(typing.get_args(annotation)[0]), [])}"
    return {str: "text", int: "whole number", bool: "true or false"}.get(annotation, "value")


def _expected(model: type[BaseModel] | None, loc: list[Any]) -> str:
    annotation = annotation_at(model, loc) if model is not None else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"must be an object with keys {', '.join(_model_keys(annotation))}"
    if typing.get_origin(annotation) in (dict, list):
        return f"must be {_kind(annotation, loc)}"
    return "must be an object (key: value lines)"


def _literal(error: Any) -> str:
    allowed = re.findall(r"'([^']*)'", error["ctx"]["expected"])
    return f"{_shown(error['input'])} is not one of {', '.join(allowed)}"


def _pattern(error: Any) -> str:
    described = _PATTERN_FORMATS.get(error["ctx"]["pattern"])
    return f"{_shown(error['input'])} is not {described}" if described else (
        f"{_shown(error['input'])} is not in the format this key takes (docs/configuration.md)"
    )


def _count(n: int, what: str) -> str:
    return f"{'one' if n == 1 else n} {what}{'' if n == 1 else 's'}"


_Messages = dict[str, Callable[[Any, "type[BaseModel] | None", list[Any]], str]]
# pydantic's error type -> the message a config line carries; a type not here keeps pydantic's own.
PLAIN_MESSAGES: _Messages = {
    "literal_error": lambda e, m, loc: _literal(e),
    "less_than_equal": lambda e, m, loc: f"must be at most {e['ctx']['le']}, not {_shown(e['input'])}",
    "less_than": lambda e, m, loc: f"must be less than {e['ctx']['lt']}, not {_shown(e['input'])}",
    "greater_than_equal": lambda e, m, loc: f"must be at least {e['ctx']['ge']}, not {_shown(e['input'])}",
    "greater_than": lambda e, m, loc: f"must be more than {e['ctx']['gt']}, not {_shown(e['input'])}",
    "int_parsing": lambda e, m, loc: f"must be a whole number, not {_shown(e['input'])}",
    "int_type": lambda e, m, loc: f"must be a whole number, not {_shown(e['input'])}",
    "int_from_float": lambda e, m, loc: f"must be a whole number, not {_shown(e['input'])}",
    "bool_parsing": lambda e, m, loc: f"must be true or false, not {_shown(e['input'])}",
    "bool_type": lambda e, m, loc: f"must be true or false, not {_shown(e['input'])}",
    "string_type": lambda e, m, loc: f"must be text, not {_shown(e['input'])}" + (
        f': write it in quotes ("{_shown(e["input"])}")' if isinstance(e["input"], (int, float)) else ""
    ),
    "dict_type": lambda e, m, loc: f"{_expected(m, loc)}, not {_shown(e['input'])}",
    "model_type": lambda e, m, loc: f"{_expected(m, loc)}, not {_shown(e['input'])}",
    "model_attributes_type": lambda e, m, loc: f"{_expected(m, loc)}, not {_shown(e['input'])}",
    "list_type": lambda e, m, loc: f"{_expected(m, loc)} (- item lines, or [a, b]), not {_shown(e['input'])}",
    "string_pattern_mismatch": lambda e, m, loc: _pattern(e),
    "string_too_short": lambda e, m, loc: "must not be empty" if e["ctx"]["min_length"] == 1 else (
        f"must have at least {e['ctx']['min_length']} characters"
    ),
    "string_too_long": lambda e, m, loc: f"must have at most {e['ctx']['max_length']} characters",
    "too_short": lambda e, m, loc: "must not be empty" if e["input"] == "" else (
        f"needs at least {_count(e['ctx']['min_length'], 'item')}"
    ),
    "too_long": lambda e, m, loc: f"takes at most {_count(e['ctx']['max_length'], 'item')}",
}


def plain_message(error: Any, model: type[BaseModel] | None = None) -> str:
    """The message of one pydantic error in the user's words: the allowed values, range or format,
    never pydantic's wording or a model class name."""
    plain = PLAIN_MESSAGES.get(error["type"])
    if plain is not None:
        return plain(error, model, [p for p in error["loc"] if p != "[key]"])
    return str(error["msg"]).removeprefix("Value error, ")


def error_lines(error: Any, model: type[BaseModel] | None = None) -> list[str]:
    """One pydantic error (an item of `ValidationError.errors()`) as lines: one for a field, one
    per "<key.path>: <what to do>" line of a model-level validator's message."""
    loc: list[Any] = list(error["loc"])
    msg = plain_message(error, model)
    if not loc:
        lines = []
        for line in msg.split("\n"):
            m = _KEYED_LINE.match(line)
            keyed = parse_key_path(m.group(1)) if m else []
            lines.append(problem_line(keyed, m.group(2) if m else line, error["type"]))
        return lines
    known = known_keys(model, loc) if model is not None and error["type"] == "extra_forbidden" else None
    return [problem_line(loc, msg, error["type"], known)]


def validation_lines(err: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    """Every error of `err` as `<project>:<key>: <problem> (fix: ...)` lines. A required key that
    an unknown key of the same object misspells has one line: the unknown key's did-you-mean."""
    errors = err.errors()
    misspelt = set()
    for e in errors:
        if e["type"] == "extra_forbidden" and model is not None:
            near = closest(str(e["loc"][-1]), known_keys(model, list(e["loc"])))
            if near is not None:
                misspelt.add((*e["loc"][:-1], near))
    return [
        line
        for e in errors
        if not (e["type"] == "missing" and tuple(e["loc"]) in misspelt)
        for line in error_lines(e, model)
    ]


HEADER = "invalid stack configuration:"


def join_lines(lines: list[str]) -> str:
    """The ConfigError text: the header, then one indented line per problem."""
    return HEADER + "\n  " + "\n  ".join(lines)


def format_validation_error(err: ValidationError, model: type[BaseModel] | None = None) -> str:
    """Render pydantic errors as `<project>:<key>.<path>: <message>` lines with a fix hint."""
    return join_lines(validation_lines(err, model))


def required(value: str | None, key: str) -> str:
    """A setting the platform needs; `StackConfig` has already refused a stack without it."""
    if value is None:
        raise ConfigError(f"{PROJECT}:{key}: required: set it (fix: `pulumi config set --path '{key}' <value>`)")
    return value
