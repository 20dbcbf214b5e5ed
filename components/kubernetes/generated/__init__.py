"""GENERATED code and its inputs (scripts/gen_crd_types.py): spire-controller-manager's CRDs as
published in its pinned module (crds/) and the typed classes made from them (spire_spiffe_io.py)."""
