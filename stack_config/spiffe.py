"""SPIFFE and SPIRE naming rules: the one rule source of the stack configuration and the SPIRE
registration-entry provider (`dynamic_providers/spire/models.py` imports these), so a value the
configuration accepts is one the provider's `check` and the SPIRE server accept too.

The rules are SPIRE's own: SPIFFE IDs as go-spiffe parses them (`spiffeid.FromString`), SPIRE's
entry rules (`pkg/server/api/entry.go`, `id.go`, `selector.go`) and its DNS-name check
(`pkg/common/x509util/dns.go`). One deliberate addition: go-spiffe accepts any string of
`[a-z0-9._-]` as a trust domain, including `..`, `.a` and `a.`; those are not names (the trust
domain is a DNS-like name in URI SANs, in Ziti's cluster trust domain and in the controller's
SPIFFE IDs), so a trust domain here is one or more non-empty labels joined by single dots.

Every `*_problem` function returns None when the value is valid, else the broken rule; the
pydantic types at the end carry the same rules into the stack configuration. This module imports
only `stack_config.base` of the package (no cycle: the provider imports this module).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from stack_config.base import checked

SPIFFE_SCHEME = "spiffe://"
MAX_SPIFFE_ID_BYTES = 2048  # SPIFFE-ID.md: implementations SHOULD NOT generate longer URIs
MAX_TRUST_DOMAIN_BYTES = 255
RESERVED_PATH = "/spire"  # idutil.IsReservedPath: agent and server IDs live under it

_TRUST_DOMAIN_CHARS = re.compile(r"^[a-z0-9._-]+$")
_PATH_SEGMENT_CHARS = re.compile(r"^[A-Za-z0-9._-]+$")
_DNS_LABEL_CHARS = re.compile(r"^[A-Za-z0-9-]+$")


def trust_domain_problem(name: str) -> str | None:
    """Why `name` is not a SPIFFE trust domain name (go-spiffe `TrustDomainFromString`, plus
    non-empty labels), or None."""
    if not name:
        return "trust domain is missing"
    if not _TRUST_DOMAIN_CHARS.match(name):
        return "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"
    if len(name.encode()) > MAX_TRUST_DOMAIN_BYTES:
        return f"trust domain is longer than {MAX_TRUST_DOMAIN_BYTES} bytes"
    if name.startswith(".") or name.endswith("."):
        return "trust domain must not start or end with a dot"
    if ".." in name:
        return "trust domain must not contain an empty label ('..')"
    return None


def path_problem(path: str) -> str | None:
    """Why `path` is not a SPIFFE ID path (go-spiffe `ValidatePath`), or None. Empty is valid here."""
    if not path:
        return None
    if not path.startswith("/"):
        return "path must start with '/'"
    segments = path.split("/")[1:]
    for i, segment in enumerate(segments):
        if segment == "":
            if i == len(segments) - 1:
                return "path cannot have a trailing slash"
            return "path cannot contain empty segments"
        if segment in (".", ".."):
            return "path cannot contain dot segments"
        if not _PATH_SEGMENT_CHARS.match(segment):
            return "path segment characters are limited to letters, numbers, dots, dashes, and underscores"
    return None


def is_reserved_path(path: str) -> bool:
    """SPIRE keeps `/spire` and everything under it for agent and server IDs."""
    return path == RESERVED_PATH or path.startswith(RESERVED_PATH + "/")


def split_spiffe_id(value: str) -> tuple[str, str]:
    """(trust domain, path) of a syntactically valid SPIFFE ID; raises ValueError with the rule."""
    if len(value.encode()) > MAX_SPIFFE_ID_BYTES:
        raise ValueError(f"is longer than {MAX_SPIFFE_ID_BYTES} bytes")
    if not value.startswith(SPIFFE_SCHEME):
        raise ValueError("scheme is missing or invalid: a SPIFFE ID starts with 'spiffe://' (lowercase)")
    rest = value[len(SPIFFE_SCHEME) :]
    td, slash, tail = rest.partition("/")
    path = slash + tail
    problem = trust_domain_problem(td) or path_problem(path)
    if problem:
        raise ValueError(problem)
    return td, path


def spiffe_id_problem(value: str, trust_domain: str | None, *, workload: bool) -> str | None:
    """Why `value` cannot be an entry's SPIFFE ID (workload=True) or parent ID, or None.

    SPIRE needs both in the server's trust domain with a non-empty path; a workload ID must not
    sit in the reserved `/spire` namespace (agents and the server live there).
    """
    try:
        td, path = split_spiffe_id(value)
    except ValueError as e:
        return f"{value!r} is not a valid SPIFFE ID: {e}"
    if not path:
        return f"{value!r} has an empty path: entries need one, e.g. spiffe://{td}/ns/app"
    if trust_domain is not None and td != trust_domain:
        return f"{value!r} is not a member of the server's trust domain {trust_domain!r}"
    if workload and is_reserved_path(path):
        return f"{value!r} is in the reserved /spire namespace (agent and server IDs): choose another path"
    return None


def selector_problem(type_: str, value: str) -> str | None:
    """SPIRE's selector rules (`api.SelectorsFromProto`)."""
    if not type_:
        return "type is empty"
    if ":" in type_:
        return "type must not contain ':'"
    if not value:
        return "value is empty"
    return None


def dns_name_problem(name: str) -> str | None:
    """Why SPIRE rejects `name` as an entry DNS name (`x509util.ValidateLabel`), or None.

    ASCII only (punycode `xn--` labels for IDNs), at most one wildcard and only as the whole first
    label, no trailing dot, and a strict host name otherwise: labels of 1-63 letters, digits and
    hyphens that neither start nor end with '-', 253 characters at most.
    """
    if not name.isascii():
        return "must be ASCII (write internationalized names in their xn-- punycode form)"
    stars = name.count("*")
    if stars > 1:
        return "has more than one wildcard"
    if stars == 1:
        if not name.startswith("*."):
            return "may only use a wildcard as the whole first label, as in *.example.com"
        name = name[2:]
    if not name.strip():
        return "is empty"
    if name.endswith("."):
        return "must not end with a dot"
    if len(name) > 253:
        return "is longer than 253 characters"
    for label in name.split("."):
        if not label:
            return "contains an empty label"
        if len(label) > 63:
            return f"has a label longer than 63 characters ({label[:16]}...)"
        if not _DNS_LABEL_CHARS.match(label):
            return f"label {label!r} may contain only letters, digits and '-'"
        if label.startswith("-") or label.endswith("-"):
            return f"label {label!r} must not start or end with '-'"
        if label[2:4] == "--":
            if label[:4].lower() != "xn--":
                return f"label {label!r} must not have '--' in the 3rd and 4th positions (only xn-- punycode may)"
            try:
                label[4:].encode().decode("punycode")
            except UnicodeError:
                return f"label {label!r} is not valid punycode"
    return None


# --- the same rules as pydantic types, for the stack configuration -----------------------------


def _workload_path(v: str) -> str:
    problem = path_problem(v) or ("path is empty: a workload needs one, e.g. /ns/payments/sa/api" if not v else None)
    if problem:
        raise ValueError(f"{v!r} is not a SPIFFE ID path: {problem}")
    if is_reserved_path(v):
        raise ValueError(f"{v!r} is in SPIRE's reserved /spire namespace (agent and server IDs): choose another path")
    return v


def _spiffe_id(v: str) -> str:
    try:
        _, path = split_spiffe_id(v)
    except ValueError as e:
        raise ValueError(f"{v!r} is not a SPIFFE ID: {e}") from None
    if not path:
        raise ValueError(f"{v!r} has an empty path: use the full ID, e.g. spiffe://<trust domain>/spire/agent/...")
    return v


def _selector(v: str) -> str:
    if ":" not in v:
        raise ValueError(f'{v!r} is not a "type:value" selector (no \':\'), e.g. docker:label:app:api or unix:uid:1000')
    type_, _, value = v.partition(":")
    problem = selector_problem(type_, value)
    if problem:
        raise ValueError(f"selector {v!r}: {problem} (write type:value, e.g. unix:uid:1000)")
    return v


TrustDomain = Annotated[
    str,
    checked(
        trust_domain_problem,
        lambda v, p: f"{v!r} is not a SPIFFE trust domain: {p}; write the name alone, without a scheme, port or "
        "path (e.g. prod.acme.net)",
    ),
]
"""A SPIFFE trust domain name, e.g. prod.acme.net."""
SpiffePath = Annotated[str, AfterValidator(_workload_path)]
"""The path of a workload's SPIFFE ID, e.g. /ns/payments/sa/api (not under /spire)."""
SpiffeId = Annotated[str, AfterValidator(_spiffe_id)]
"""A full SPIFFE ID with a path, e.g. spiffe://prod.acme.net/spire/agent/x509pop/worker-1."""
Selector = Annotated[str, AfterValidator(_selector)]
"""A registration-entry selector, "type:value" (split at the first ':', as SPIRE's CLI does)."""
DnsName = Annotated[str, checked(dns_name_problem, lambda v, p: f"{v!r} is not a DNS name SPIRE accepts: {p}")]
"""A DNS name SPIRE puts into an X.509 SVID."""
