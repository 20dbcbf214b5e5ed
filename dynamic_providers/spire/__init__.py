"""SPIRE registration entries as Pulumi resources (`SpireEntry`), over the Entry gRPC API on the
admin socket or the `spire-server` CLI through `docker exec` / `kubectl exec`.

Importing this package has no side effects: the dynamic-provider host imports it to unpickle
the provider.
"""

from dynamic_providers.spire.client import SpireError
from dynamic_providers.spire.provider import SpireEntry, SpireEntryProvider

__all__ = ["SpireEntry", "SpireEntryProvider", "SpireError"]
