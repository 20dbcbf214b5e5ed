"""The stack's secrets: separate config keys set with `pulumi config set --secret`, never part of
the model tree (which is plain data that may be logged or compared).

Checked with the rest of the config at `pulumi preview`: required where the platform needs them,
refused where the program makes its own (swarm generates admin passwords with pulumi-random),
refused in plain text (a value not set with `--secret` sits readable in the stack file), and a
brought root CA key must be the key of the brought certificate. The values reach components as
secret Outputs only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from stack_config.base import PROJECT

SECRET_KEYS: dict[str, str] = {
    "keycloakAdminPassword": "the password of keycloak.adminUser on your Keycloak (platform external)",
    "zitiAdminPassword": "the password of ziti.adminUser on your controller (platform external)",
    "rootCaKey": "the PEM private key of the CA in rootCa.certificate",
}
EXTERNAL_ONLY = ("keycloakAdminPassword", "zitiAdminPassword")


@dataclass(frozen=True)
class StackSecrets:
    """The secrets a stack's components receive, each a secret Output (None when not used)."""

    keycloak_admin_password: pulumi.Output[str] | None = None
    ziti_admin_password: pulumi.Output[str] | None = None
    root_ca_key: pulumi.Output[str] | None = None


def _fix(key: str) -> str:
    return f"(fix: `pulumi config set --secret {key}` and paste the value, or pipe it in on stdin)"


def secret_problems(
    values: Mapping[str, str | None],
    is_secret: Callable[[str], bool],
    *,
    platform: str,
    root_ca_cert: str | None,
) -> list[str]:
    """Every problem with the secret keys, as full `identity-platform:<key>: ...` lines.

    `values`: the secret keys the stack sets (bare key -> value); None is a value the caller
    cannot decrypt (`python -m ops` reads `secure:` entries without the passphrase): present and
    secret, its content unchecked. `is_secret` takes the full `<project>:<key>` name."""
    problems = []
    for key in SECRET_KEYS:
        present = key in values
        full = f"{PROJECT}:{key}"
        if present and not is_secret(full):
            problems.append(f"{full}: set in plain text; it is a secret {_fix(key)}")
        if platform != "external" and key in EXTERNAL_ONLY and present:
            problems.append(
                f"{full}: not used with platform {platform}: the program generates this password "
                f"(fix: `pulumi config rm {key}`)"
            )
        value = values.get(key)
        if platform == "external" and key in EXTERNAL_ONLY and value is not None and not value.strip():
            problems.append(f"{full}: is empty: set the password {_fix(key)}")
        if platform == "external" and key in EXTERNAL_ONLY and not present:
            problems.append(f"{full}: required with platform external: {SECRET_KEYS[key]} {_fix(key)}")
    has_key = "rootCaKey" in values
    key_pem = values.get("rootCaKey")
    if root_ca_cert is not None and not has_key:
        problems.append(f"{PROJECT}:rootCaKey: required with rootCa: {SECRET_KEYS['rootCaKey']} {_fix('rootCaKey')}")
    elif root_ca_cert is None and has_key:
        problems.append(
            f"{PROJECT}:rootCaKey: set without rootCa.certificate: bring both, or neither to let the program "
            "generate the root (fix: `pulumi config set --path 'rootCa.certificate' \"$(cat ca.pem)\"`)"
        )
    elif root_ca_cert is not None and key_pem is not None:
        mismatch = key_mismatch(root_ca_cert, key_pem)
        if mismatch:
            problems.append(f"{PROJECT}:rootCaKey: {mismatch} {_fix('rootCaKey')}")
    return problems


def key_mismatch(cert_pem: str, key_pem: str) -> str | None:
    """Why `key_pem` is not the private key of `cert_pem` (never echoing the key), or None."""
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        return "not an unencrypted PEM private key"
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        return None  # rootCa.certificate reports its own problem
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, public) != cert.public_key().public_bytes(der, public):
        return "is not the private key of rootCa.certificate"
    return None


def read_secrets(get: Callable[[str], str | None], *, platform: str, brought_root: bool) -> StackSecrets:
    """The checked secrets as secret Outputs."""

    def secret(key: str) -> pulumi.Output[str] | None:
        value = get(key)
        return None if value is None else pulumi.Output.secret(value)

    external = platform == "external"
    return StackSecrets(
        keycloak_admin_password=secret("keycloakAdminPassword") if external else None,
        ziti_admin_password=secret("zitiAdminPassword") if external else None,
        root_ca_key=secret("rootCaKey") if brought_root else None,
    )
