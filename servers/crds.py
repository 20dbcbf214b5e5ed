"""The CustomResourceDefinitions of the IAM design and of spire-controller-manager (the enterprise
topology), at the pinned versions, for the real API server.

CloudNativePG, Istio, ArgoCD and spire-controller-manager publish their CRDs inside their Go
modules (CNPG and spire-controller-manager `config/crd/bases/`, `istio.io/api`
`kubernetes/customresourcedefinitions.gen.yaml`, ArgoCD `manifests/crds/`), so the Go module
proxy, which the server builds already use, serves exactly the released files; `go mod download`
checks each module against the `h1:` sum pinned here (and the checksum database). The wanted CRDs
are copied into a cache entry (`crds-<versions>-<digest>`), so a second install takes no download.
`scripts/servers install kubernetes` installs them with the API server; the real-server tests
(tests/real/test_kubernetes_iam.py, test_kubernetes_enterprise.py) create them in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from servers import cache
from servers.errors import ServerError
from stack_config import versions

NAME = "crds"


@dataclass(frozen=True)
class CrdSource:
    module: str
    version: str
    sum: str  # the module zip's h1: hash, as go.sum records it
    files: tuple[str, ...]  # paths inside the module
    names: tuple[str, ...]  # the CRDs (metadata.name) taken from those files


# spire-controller-manager's kinds (plural names), as its module's config/crd/bases names them.
SPIRE_KINDS = ("clusterspiffeids", "clusterfederatedtrustdomains", "clusterstaticentries")

# CloudNativePG's module: its `clusters` CRD for the real tier, and its released operator manifest
# (`releases/cnpg-<version>.yaml`), which scripts/gen_cnpg_operator.py copies into the repository.
CNPG = CrdSource("github.com/cloudnative-pg/cloudnative-pg", f"v{versions.CNPG}",
                 "h1:w+bbtXyEPoaa7sZGXxbb8qJ+/bUGWQ3M48kbNUEpKlk=",
                 ("config/crd/bases/postgresql.cnpg.io_clusters.yaml",), ("clusters.postgresql.cnpg.io",))

SOURCES = (
    CNPG,
    CrdSource("istio.io/api", f"v{versions.ISTIO}", "h1:0fYY9G03CAdFwE/fCkpr0v7kKsy+Hz9OCCjLNBNLbnU=",
              ("kubernetes/customresourcedefinitions.gen.yaml",),
              ("peerauthentications.security.istio.io", "authorizationpolicies.security.istio.io",
               "gateways.networking.istio.io", "virtualservices.networking.istio.io")),
    CrdSource("github.com/argoproj/argo-cd/v3", f"v{versions.ARGO_CD}",
              "h1:m2eGAV+nXQGgzZbH5SyJD5laaPW27mzWXBrgisUHY/0=",
              ("manifests/crds/applicationset-crd.yaml", "manifests/crds/application-crd.yaml"),
              ("applicationsets.argoproj.io", "applications.argoproj.io")),
    CrdSource("github.com/spiffe/spire-controller-manager", f"v{versions.SPIRE_CONTROLLER_MANAGER}",
              "h1:KdTVULlQyYVH7EUHzMfFwTtH2Lk+zURmQoNgK0DadIs=",
              tuple(f"config/crd/bases/spire.spiffe.io_{k}.yaml" for k in SPIRE_KINDS),
              tuple(f"{k}.spire.spiffe.io" for k in SPIRE_KINDS)),
)


def _entry() -> Path:
    pins = json.dumps([[s.module, s.version, s.sum, s.files, s.names] for s in SOURCES]).encode()
    return cache.entry(NAME, f"cnpg{versions.CNPG}-istio{versions.ISTIO}-argocd{versions.ARGO_CD}"
                       f"-scm{versions.SPIRE_CONTROLLER_MANAGER}",
                       cache.key(pins))


def download(source: CrdSource, workdir: Path) -> Path:
    """The module's extracted directory, after `go mod download` verified it against `source.sum`."""
    ref = f"{source.module}@{source.version}"
    done = subprocess.run(["go", "mod", "download", "-json", ref], capture_output=True, text=True, check=False,
                          cwd=workdir, env={**os.environ, "GOFLAGS": "-mod=mod"}, timeout=900)
    try:
        info: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        raise ServerError(NAME, f"go mod download {ref} failed: {done.stderr.strip()[-2000:]}") from None
    if done.returncode != 0 or "Error" in info:
        raise ServerError(NAME, f"go mod download {ref} failed: {info.get('Error') or done.stderr.strip()[-2000:]}")
    if info.get("Sum") != source.sum:
        raise ServerError(NAME, f"{ref}: the proxy served {info.get('Sum')}, pinned {source.sum}: refusing it")
    return Path(info["Dir"])


def install() -> Path:
    """The directory holding one `<crd name>.yaml` per CRD (downloaded once, then from the cache)."""
    dest = _entry()
    with cache.building(dest) as must_build:
        if must_build:
            with tempfile.TemporaryDirectory(prefix="crds-") as tmp:
                for source in SOURCES:
                    root = download(source, Path(tmp))
                    found = {}
                    for rel in source.files:
                        for doc in yaml.safe_load_all((root / rel).read_text()):
                            if doc and doc.get("kind") == "CustomResourceDefinition":
                                found[doc["metadata"]["name"]] = doc
                    missing = set(source.names) - set(found)
                    if missing:
                        raise ServerError(NAME, f"{source.module}@{source.version} has no CRD {sorted(missing)}")
                    for name in source.names:
                        (dest / f"{name}.yaml").write_text(yaml.safe_dump(found[name], sort_keys=False))
    return dest


def definitions() -> list[dict[str, Any]]:
    """Every pinned CRD, parsed (installing them first when needed)."""
    root = install()
    return [yaml.safe_load((root / f"{n}.yaml").read_text()) for s in SOURCES for n in s.names]
