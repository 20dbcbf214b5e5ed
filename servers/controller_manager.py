"""spire-controller-manager at the pinned version (`versions.SPIRE_CONTROLLER_MANAGER`), built from
its Go module (tools module `servers/go/spire-controller-manager`, every dependency pinned with its
checksum) into the cache, for the real-server test of the enterprise topology's CRD-based
registration (tests/real/test_spire_controller_manager.py): the binary the image
`ghcr.io/spiffe/spire-controller-manager:<version>` runs, built as its Dockerfile builds it
(`go build ./cmd`). A tool: built on first use (a few minutes cold), never started by
`scripts/servers`.
"""

from __future__ import annotations

from pathlib import Path

from servers import toolchain
from stack_config import versions

NAME = "spire-controller-manager"
MODULE = "spire-controller-manager"
PACKAGE = "github.com/spiffe/spire-controller-manager/cmd"


def bin_dir() -> Path:
    """Build (first use) and return the directory holding `spire-controller-manager`."""
    return toolchain.go_build(NAME, versions.SPIRE_CONTROLLER_MANAGER, MODULE, (PACKAGE,), "-s -w", binary=NAME)
