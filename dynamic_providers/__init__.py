"""Python dynamic providers: keycloak/, ziti/, spire/ on the kernel (`_kernel`) and transport
(`_transport`). Importing any of them installs `_serialization`'s fix of the SDK's serialization."""

from dynamic_providers import _serialization

_serialization.install()
