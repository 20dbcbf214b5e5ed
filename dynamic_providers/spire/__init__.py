"""SPIRE registration entries as Pulumi resources (`provider.SpireEntry`), over the Entry gRPC API
on the admin socket or the `spire-server` CLI through `docker exec` / `kubectl exec`.

Importing this package has no side effects and imports nothing (the dynamic-provider host imports
it to unpickle the provider; the generated protobuf modules in `_proto` load without pydantic).
"""
