"""One pin table (stack_config/versions.py) for what the stacks deploy and what the tests build:
the image defaults, the Go tools modules and the Keycloak/PostgreSQL sources must all name it."""

from __future__ import annotations

import re

import yaml

from servers import crds, keycloak, postgres, toolchain
from stack_config import versions
from stack_config.images import Images
from tests.harness.mock_engine import ROOT, stack_files


def _tag(image: str) -> str:
    return image.rsplit(":", 1)[1]


def test_the_deployed_images_carry_the_pinned_versions() -> None:
    images = Images()
    assert _tag(images.spire_server) == _tag(images.spire_agent) == versions.SPIRE
    assert _tag(images.ziti_controller) == _tag(images.ziti_router) == versions.ZITI
    assert _tag(images.keycloak) == versions.KEYCLOAK
    assert _tag(images.postgres).split("-")[0] == versions.POSTGRES
    # The controller manager runs the release whose CRDs the program installs and the tests create.
    (scm,) = [s for s in crds.SOURCES if s.module == "github.com/spiffe/spire-controller-manager"]
    assert _tag(images.spire_controller_manager) == versions.SPIRE_CONTROLLER_MANAGER == scm.version.lstrip("v")


def test_the_go_tools_modules_build_the_pinned_versions() -> None:
    go = toolchain.GO_MODULES
    assert toolchain.go_module_require(go / "spire", "github.com/spiffe/spire") == f"v{versions.SPIRE}"
    assert toolchain.go_module_require(go / "ziti", "github.com/openziti/ziti") == f"v{versions.ZITI}"
    assert toolchain.go_module_require(go / "kubernetes", "k8s.io/kubernetes") == f"v{versions.KUBERNETES}"
    assert toolchain.go_module_require(go / "etcd", "go.etcd.io/etcd/server/v3") == f"v{versions.ETCD}"
    assert toolchain.go_module_require(go / "spire-controller-manager", "github.com/spiffe/spire-controller-manager") \
        == f"v{versions.SPIRE_CONTROLLER_MANAGER}"


def test_every_kubernetes_staging_module_is_the_release_of_the_pinned_version() -> None:
    """k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with paths inside
    its own repository; the tools module must replace each with the published v0.<minor>.<patch>
    of the same release, or the API server would be built from mismatched libraries."""
    staging = f"v0.{versions.KUBERNETES.split('.', 1)[1]}"
    text = (toolchain.GO_MODULES / "kubernetes" / "go.mod").read_text()
    replaced = dict(re.findall(r"^\s*(k8s\.io/[a-z-]+) => \1 (v\S+)$", text, re.MULTILINE))
    assert {"k8s.io/api", "k8s.io/apiserver", "k8s.io/client-go", "k8s.io/apimachinery"} <= set(replaced)
    assert set(replaced.values()) == {staging}, replaced


def test_keycloak_and_postgres_come_from_the_pinned_versions() -> None:
    assert keycloak.SERVER.version == versions.KEYCLOAK
    assert postgres.SERVER.version == versions.POSTGRES
    assert versions.POSTGRES_DEBIAN.startswith(versions.POSTGRES + "-")
    assert postgres.BIN.parts[-2] == versions.POSTGRES.split(".")[0]


def test_no_stack_file_overrides_a_server_image_with_another_version() -> None:
    pinned = {"spireServer": versions.SPIRE, "spireAgent": versions.SPIRE, "zitiController": versions.ZITI,
              "zitiRouter": versions.ZITI, "keycloak": versions.KEYCLOAK}
    for stack in stack_files():
        doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}
        images = (doc.get("config") or {}).get("identity-platform:images") or {}
        for key, version in pinned.items():
            if key in images:
                assert _tag(images[key]) == version, f"Pulumi.{stack}.yaml images.{key} drifts from the pin table"


def test_the_readme_names_the_pinned_versions() -> None:
    text = (ROOT / "README.md").read_text()
    for version in (versions.SPIRE, versions.ZITI, versions.KEYCLOAK, versions.POSTGRES):
        assert re.search(rf"\b{re.escape(version)}\b", text), f"README does not mention {version}"
