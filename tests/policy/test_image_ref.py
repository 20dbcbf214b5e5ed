"""One image reference parser and one pin rule for the stack configuration and the policy pack
(`policy/image_ref.py`): the same verdict on every reference, written out here."""

from __future__ import annotations

import pytest

from policy import validators as v
from policy.image_ref import ImageRef, parse_image_ref, pin_problem
from stack_config.base import check_pinned_image

HEX = "0123456789abcdef" * 4

# (reference, pinned?, fragment of the problem when not)
VERDICTS = [
    ("ghcr.io/spiffe/spire-server:1.15.3", True, ""),
    ("quay.io/keycloak/keycloak:26.7.0", True, ""),
    ("docker.io/library/postgres:15.18-bookworm", True, ""),
    ("postgres:15.18", True, ""),
    ("docker.io/library/python:3.13.7-alpine", True, ""),
    ("rclone/docker-volume-rclone:amd64-1.71.2", True, ""),
    ("docker.io/openziti/ziti-router:v1.7.2", True, ""),
    ("localhost:5000/spire-server:1.11.2", True, ""),
    ("[fd00::1]:5000/team/tool:2.4.1", True, ""),
    ("ubuntu:jammy-20240111", True, ""),
    ("ubuntu:2024.01.11", True, ""),
    (f"ghcr.io/spiffe/spire-agent@sha256:{HEX}", True, ""),
    (f"quay.io/keycloak/keycloak:26@sha256:{HEX}", True, ""),
    ("ghcr.io/spiffe/spire-agent:1", False, "the tag '1' is not a full version (major.minor.patch)"),
    ("postgres:17", False, "the tag '17' is not a full version (major.minor)"),
    ("docker.io/library/postgres:17-alpine", False, "the tag '17-alpine' is not a full version"),
    ("quay.io/keycloak/keycloak:26", False, "the tag '26' is not a full version"),
    ("ghcr.io/spiffe/spire-server:1.15", False, "the tag '1.15' is not a full version (major.minor.patch)"),
    ("python:3.13-alpine", False, "the tag '3.13-alpine' is not a full version"),
    ("debian:bookworm", False, "the tag 'bookworm' is not a full version"),
    ("quay.io/keycloak/keycloak:latest", False, "uses the moving tag 'latest'"),
    ("ghcr.io/acme/tool:Stable", False, "uses the moving tag 'Stable'"),
    ("postgres", False, "has no tag (Docker pulls :latest)"),
    ("localhost:5000/spire-server", False, "has no tag"),
    ("postgres@sha256:abc", False, "has a malformed digest"),
    (f"postgres@sha512:{HEX}", False, "has a malformed digest"),
    ("Postgres:15.18", False, "has an invalid repository 'Postgres'"),
    ("ghcr.io/spiffe/spire server:1.15.3", False, "has an invalid repository"),
    ("ghcr.io/spiffe/spire-server:1.15.3 ", False, "is empty or has surrounding whitespace"),
    ("ghcr.io/spiffe/spire-server:-1.15.3", False, "has an invalid tag '-1.15.3'"),
]


@pytest.mark.parametrize(("ref", "pinned", "fragment"), VERDICTS, ids=[r for r, _, _ in VERDICTS])
def test_config_and_policy_give_the_same_verdict(ref: str, pinned: bool, fragment: str) -> None:
    policy = v.image_pin_problem(ref)
    if pinned:
        assert policy is None
        assert check_pinned_image(ref) == ref
    else:
        assert policy is not None and fragment in policy, policy
        with pytest.raises(ValueError) as config:
            check_pinned_image(ref)
        assert str(config.value) == policy
        assert pin_problem(ref) == policy


def test_parts_of_a_reference() -> None:
    assert parse_image_ref(f"registry.acme.net:5000/team/tool:2.4.1@sha256:{HEX}") == ImageRef(
        "registry.acme.net:5000", "team/tool", "2.4.1", f"sha256:{HEX}"
    )
    assert parse_image_ref("postgres") == ImageRef(None, "postgres", None, None)
    assert parse_image_ref("rclone/docker-volume-rclone:amd64-1.71.2").repository == "docker-volume-rclone"


def test_an_image_id_passes_the_policy_only() -> None:
    """docker.RemoteImage exposes the pulled image's id; the policy sees it, config never holds one."""
    assert v.image_pin_problem(f"sha256:{HEX}") is None
    with pytest.raises(ValueError, match=r"the tag '0123456789abcdef.*' is not a full version"):
        check_pinned_image(f"sha256:{HEX}")
