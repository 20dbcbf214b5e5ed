"""A `platform: external` stack pointed at the servers `scripts/servers start` runs.

`scripts/servers configure STACK` writes the plain settings into `Pulumi.<STACK>.yaml` and sets
the secrets (the admin passwords, the root CA key) with `pulumi config set --secret`, so the
stack file holds only ciphertext. The root CA is the one the local SPIRE server already uses as
its `UpstreamAuthority "disk"` — brought, as an enterprise root would be — so the SVIDs its agent
issues chain to the CA the program registers with Ziti. The workload is this user's processes
(`unix:uid`), attested by the local agent; the user is a Keycloak user you create.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from servers.errors import ServerError

PROJECT = "identity-platform"
NAME = "configure"


def external_settings(
    state: dict[str, Any], *, workload_uid: int | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """(plain config keys -> values, secret keys -> values) for a stack against `state`'s servers."""
    missing = [n for n in ("spire", "keycloak", "ziti") if n not in state]
    if missing:
        raise ServerError(NAME, f"the started servers lack {', '.join(missing)}: `scripts/servers start` them all")
    spire, kc, ziti = state["spire"], state["keycloak"], state["ziti"]
    uid = os.getuid() if workload_uid is None else workload_uid
    td = spire["trust_domain"]
    plain: dict[str, Any] = {
        "environment": "dev",
        "platform": "external",
        "strict": False,
        "spire": {
            "trustDomain": td,
            "transport": {"kind": "grpc", "socketPath": spire["admin_socket"]},
            "agents": {"local": spire["agent_spiffe_id"]},
        },
        "rootCa": {"certificate": Path(spire["x509pop"]["root_cert"]).read_text()},
        "keycloak": {"url": kc["url"], "adminUser": kc["admin_user"]},
        "ziti": {"controllerUrl": ziti["url"], "adminUser": ziti["admin_user"], "caBundle": ziti["ca_pem"]},
        "workloads": {
            "local-shell": {
                "spiffePath": "/local/shell",
                "node": "local",
                "selectors": [f"unix:uid:{uid}"],
                "zitiRoleAttributes": ["local"],
            }
        },
    }
    secrets = {
        "keycloakAdminPassword": kc["admin_password"],
        "zitiAdminPassword": ziti["admin_password"],
        "rootCaKey": Path(spire["x509pop"]["root_key"]).read_text(),
    }
    return plain, secrets


def write_stack_file(project_dir: Path, stack: str, plain: dict[str, Any]) -> Path:
    """`plain` as the project's settings in `Pulumi.<stack>.yaml`: other plain project keys go,
    what the CLI wrote stays (the salt, `secure:` values, other namespaces)."""
    path = project_dir / f"Pulumi.{stack}.yaml"
    doc: dict[str, Any] = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
    config = {
        k: v for k, v in (doc.get("config") or {}).items()
        if not k.startswith(f"{PROJECT}:") or (isinstance(v, dict) and set(v) == {"secure"})
    }
    doc["config"] = config
    for key, value in plain.items():
        config[f"{PROJECT}:{key}"] = value
    path.write_text(yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, width=200))
    return path


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PEM certificates) as `|` blocks, readable in the stack file."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def set_secrets(secrets: dict[str, str], *, stack: str, cwd: Path, env: dict[str, str] | None = None,
                pulumi: str = "pulumi") -> None:
    """`pulumi config set --secret` each value, on stdin (never on a command line)."""
    for key, value in secrets.items():
        done = subprocess.run(
            [pulumi, "config", "set", "--secret", f"{PROJECT}:{key}", "--stack", stack, "--non-interactive"],
            input=value, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
        )
        if done.returncode != 0:
            raise ServerError(NAME, f"`pulumi config set --secret {key}` failed: {done.stderr.strip()}")


def configure(stack: str, state: dict[str, Any], project_dir: Path) -> Path:
    """Point `stack` (already `pulumi stack init`ed in `project_dir`) at the started servers."""
    plain, secrets = external_settings(state)
    path = write_stack_file(project_dir, stack, plain)
    set_secrets(secrets, stack=stack, cwd=project_dir)
    return path
