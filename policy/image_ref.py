"""The one parser of container image references and the one rule of what a pinned image is.

Both gates use it: the stack configuration (`stack_config.base.check_pinned_image`, at
`pulumi preview` before any resource exists) and the policy pack (`policy.validators`, on every
image the program registers). Standard library only: the policy pack runs in its own virtualenv
(policy/requirements.txt) and imports nothing of the program.

Grammar: Docker's (`github.com/distribution/reference`, regexp.go):
`[domain[:port]/]path[:tag][@digest]`, path components lowercase `[a-z0-9]+` joined by `.`, `_`,
`__` or `-`+, tags `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, names at most 255 characters.

The pin rule. A reference is pinned when
  * it carries a digest `@sha256:<64 hex>` (with or without a tag: the digest is what is pulled), or
  * its tag names one release:
      - a version of at least three numeric parts, major.minor.patch (`1.15.3`, `v2.0.1`,
        `3.13.7-alpine`, `amd64-1.71.2`: the version is a `-`/`_` separated part of the tag);
      - for the repositories whose releases have two parts, major.minor (`postgres:15.18-bookworm`:
        PostgreSQL numbers its releases major.minor since 10; `TWO_PART_RELEASES`);
      - or a date, YYYYMMDD or YYYY-MM-DD / YYYY.MM.DD (`jammy-20240111`).
Everything else moves under a running stack: no tag (Docker pulls `latest`), `latest`, `stable`
and other channel names, and the floating versions `1`, `17`, `26`, `1.15`, `17-alpine` that
upstreams re-point at each release. A tag that looks like a full version but is re-pushed by its
publisher cannot be told apart here; only a digest is immutable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_NAME_LENGTH = 255  # reference.NameTotalLengthMax
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
# Channel names that never name a release (a tag without any version is refused anyway; these get
# a more precise message).
MOVING_TAGS = frozenset({"latest", "stable", "edge", "nightly", "main", "master", "dev", "beta", "rc", "current"})
# Repositories (last path component) whose releases are numbered major.minor.
TWO_PART_RELEASES = frozenset({"postgres", "postgresql"})  # docker.io/library/postgres, CNPG's operand

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_RE = re.compile(_DOMAIN)
_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_VERSION_3 = re.compile(r"v?\d+\.\d+\.\d+(?:\.\d+)*[a-z0-9.]*")
_VERSION_2 = re.compile(r"v?\d+\.\d+(?:\.\d+)*[a-z0-9.]*")
_DATE = re.compile(r"(?<![0-9])(?:19|20)\d\d([-.]?)(?:0[1-9]|1[0-2])\1(?:0[1-9]|[12]\d|3[01])(?![0-9])")

HOW_TO_PIN = "pin a release (name:<major.minor.patch>) or a digest (name@sha256:<64 hex>)"


@dataclass(frozen=True)
class ImageRef:
    """A parsed reference: `domain` None for Docker Hub short names, `tag`/`digest` None when absent."""

    domain: str | None
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        """The last path component (`postgres` of docker.io/library/postgres)."""
        return self.path.rsplit("/", 1)[-1]


def parse_image_ref(ref: str) -> ImageRef:
    """Split `ref` into its parts; raises ValueError naming what breaks Docker's grammar."""
    if not ref or ref != ref.strip():
        raise ValueError("is empty or has surrounding whitespace")
    name, at, digest = ref.partition("@")
    if at and not DIGEST_RE.fullmatch(digest):
        raise ValueError("has a malformed digest: use @sha256:<64 lowercase hex>")
    head, slash, rest = name.partition("/")
    domain: str | None = None
    remote = name
    if slash and (head == "localhost" or "." in head or ":" in head or head.lower() != head):
        domain, remote = head, rest
        if not _DOMAIN_RE.fullmatch(domain):
            raise ValueError(f"has an invalid registry host {domain!r}")
    tag: str | None = None
    if ":" in remote:
        remote, _, tag = remote.rpartition(":")
        if not _TAG_RE.fullmatch(tag):
            raise ValueError(f"has an invalid tag {tag!r} (letters, digits, '_', '.', '-'; at most 128)")
    if not _PATH_RE.fullmatch(remote):
        raise ValueError(
            f"has an invalid repository {remote!r} (lowercase letters and digits, separated by '.', '_', '-' or '/')"
        )
    if len(name) - (len(tag) + 1 if tag is not None else 0) > MAX_NAME_LENGTH:
        raise ValueError(f"has a name longer than {MAX_NAME_LENGTH} characters")
    return ImageRef(domain, remote, tag, digest if at else None)


def names_a_release(tag: str, repository: str) -> bool:
    """True when `tag` names one release by the pin rule (module docstring)."""
    if _DATE.search(tag):
        return True
    version = _VERSION_2 if repository in TWO_PART_RELEASES else _VERSION_3
    return any(version.fullmatch(part.lower()) for part in re.split(r"[-_+]", tag))


def pin_problem(ref: str) -> str | None:
    """Why `ref` is not a pinned image reference, or None when it is."""
    try:
        parsed = parse_image_ref(ref)
    except ValueError as e:
        return f"image {ref!r} {e}"
    if parsed.digest is not None:
        return None
    if parsed.tag is None:
        return f"image {ref!r} has no tag (Docker pulls :latest), so it is not pinned: {HOW_TO_PIN}"
    if parsed.tag.lower() in MOVING_TAGS:
        return f"image {ref!r} uses the moving tag {parsed.tag!r}, so it is not pinned: {HOW_TO_PIN}"
    if not names_a_release(parsed.tag, parsed.repository):
        parts = "major.minor" if parsed.repository in TWO_PART_RELEASES else "major.minor.patch"
        return (
            f"image {ref!r}: the tag {parsed.tag!r} is not a full version ({parts}) or a date, so it is not "
            f"pinned (floating tags such as '1', '17' or '1.15' move to each new release): {HOW_TO_PIN}"
        )
    return None
