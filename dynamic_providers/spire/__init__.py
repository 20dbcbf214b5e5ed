"""SPIRE registration entries as Pulumi resources (`provider.SpireEntry`; docs/providers/spire.md).
Imports nothing: the provider host imports this package to unpickle the provider, and `_proto`
loads without pydantic."""
