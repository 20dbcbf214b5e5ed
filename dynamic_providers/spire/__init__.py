"""SPIRE registration entries as Pulumi resources (`SpireEntry`), over the Entry gRPC API on the
admin socket or the `spire-server` CLI through `docker exec` / `kubectl exec`.

Importing this package has no side effects (the dynamic-provider host imports it to unpickle
the provider) and is lazy: the generated protobuf modules in `_proto` load without pulling in
Pulumi and pydantic, which keeps CLI-side tools that only need the messages fast to start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dynamic_providers.spire.client import SpireError
    from dynamic_providers.spire.provider import SpireEntry, SpireEntryProvider

_EXPORTS = {
    "SpireEntry": "dynamic_providers.spire.provider",
    "SpireEntryProvider": "dynamic_providers.spire.provider",
    "SpireError": "dynamic_providers.spire.client",
}
__all__ = ["SpireEntry", "SpireEntryProvider", "SpireError"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
