"""Entry point of the policy pack: `pulumi preview --policy-pack <this directory>`.

The CLI runs this file with the pack's own interpreter (`python <pack dir> <engine address>`, or
`python -m pulumi.policy <engine address> <pack dir>` with older CLIs); building the `PolicyPack`
starts the analyzer's gRPC server and blocks, so nothing else may import this module. The rules
live in `validators.py`, which tests import directly.

Self-contained, so the directory can be copied, published (`pulumi policy publish`) or run under
any name: its modules import each other relatively, and this file loads the directory as the
package `identity_platform_policy` from its own location, never by the folder's name and never
from the project around it. It needs only `requirements.txt` (pulumi-policy and its pins).
"""

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PACKAGE = "identity_platform_policy"


def _load(directory: Path) -> ModuleType:
    """`directory` as the package PACKAGE, then its `validators` module."""
    spec = importlib.util.spec_from_file_location(
        PACKAGE, directory / "__init__.py", submodule_search_locations=[str(directory)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the policy pack in {directory}")
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)
    return importlib.import_module(f"{PACKAGE}.validators")


if __name__ == "__main__":
    from pulumi_policy import EnforcementLevel, PolicyPack

    validators = _load(Path(__file__).resolve().parent)
    PolicyPack(
        name=validators.PACK_NAME,
        policies=validators.policies(),
        enforcement_level=EnforcementLevel.MANDATORY,
        description="Guard rails for the identity platform's Swarm services and Spaces buckets.",
    )
