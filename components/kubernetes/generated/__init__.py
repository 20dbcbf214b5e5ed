"""GENERATED code and its inputs, each copied from a pinned Go module (`go mod download` against its
`h1:` sum, servers/crds.py):

- scripts/gen_crd_types.py: spire-controller-manager's CRDs as published (crds/) and the typed
  classes made from them (spire_spiffe_io.py);
- scripts/gen_cnpg_operator.py: CloudNativePG's released operator manifest (cnpg-operator.yaml,
  verbatim under its header, sha256 pinned), which components/kubernetes/cnpg_operator.py deploys."""
