"""The one pin table: the server versions the stacks deploy and the test suites run.

`stack_config/images.py` builds its default image tags from these, and `scripts/servers install`
builds or fetches exactly these (the Go tools modules in `servers/go/` require the same versions;
a test fails if any of them drift). Why each pin is where it is: docs/architecture.md, "Pinned versions".
"""

from __future__ import annotations

from typing import Final

SPIRE: Final = "1.15.3"
"""SPIRE server and agent: `github.com/spiffe/spire` (Go module), `ghcr.io/spiffe/spire-*`."""

ZITI: Final = "1.7.2"
"""OpenZiti controller, router and CLI (`github.com/openziti/ziti`, the `ziti` binary). 2.0.x is not
served by the Go module proxy here; 1.7.2 is the newest release that is (README)."""

KEYCLOAK: Final = "26.7.0"
"""Keycloak (`org.keycloak:keycloak-quarkus-dist` on Maven Central, `quay.io/keycloak/keycloak`).
26.6.x is not served by Maven Central here; 26.7.0 is the nearest release that is."""

POSTGRES: Final = "15.18"
"""PostgreSQL: Debian bookworm's `postgresql-15` (15.18-0+deb12u1) and the `postgres:15.18-bookworm`
image built on the same Debian release."""

POSTGRES_DEBIAN: Final = "15.18-0+deb12u1"
"""The Debian package version of POSTGRES (`apt-get install postgresql-15=<this>`)."""

JAVA_FOR_KEYCLOAK: Final = 21
"""Keycloak 26.7 needs Java 21 or newer; the tests use the machine's Temurin 25 JDK."""

PULUMI: Final = "3.274.1"
"""The Pulumi engine the real-engine tests run and `scripts/servers install pulumi` builds: the CLI
(`github.com/pulumi/pulumi/pkg/v3/cmd/pulumi`) and the Python language host, built against
`github.com/pulumi/pulumi/sdk/v3` at this version (tools module `servers/go/pulumi`). 3.272.0, the
Python SDK's version, is not served by the Go module proxy here; 3.274.1 is the nearest that is, and
a CLI runs programs of older SDKs (docs/architecture.md, "Pinned versions")."""

PULUMI_PYTHON_SDK: Final = "3.272.0"
"""The `pulumi` Python package (requirements.txt): the newest release on PyPI. Not newer than PULUMI."""

PULUMI_TLS: Final = "5.6.2"
"""The `pulumi-tls` Python package (requirements.txt). Its provider plugin must be the same version;
`github.com/pulumi/pulumi-tls/provider/v5` is not served by the Go module proxy here (README)."""

PULUMI_KUBERNETES: Final = "4.25.0"
"""The `pulumi-kubernetes` Python package (requirements.txt) and its provider plugin, built by
`scripts/servers install pulumi-kubernetes` (tools module `servers/go/pulumi-kubernetes`). The Go
module proxy refuses `github.com/pulumi/pulumi-kubernetes/provider/v4` at the six tagged releases tried
(4.18.0 to 4.34.2, 4.25.0 among them) and serves only `v4.0.0-20260115033456-f47bc2d6f199`, the commit
tagged v4.25.0; the SDK is pinned to the same release, so the plugin it asks for is the one built
(servers/pulumi_kubernetes.py)."""

PULUMI_RANDOM: Final = "4.21.4"
"""The `pulumi-random` Python package (requirements.txt). Its provider plugin must be the same version;
`github.com/pulumi/pulumi-random/provider/v4` is not served by the Go module proxy here (README)."""

KUBERNETES: Final = "1.37.2"
"""The Kubernetes API the `platform: kubernetes` stacks target and the tests run: kube-apiserver built
from `k8s.io/kubernetes` at this version (tools module `servers/go/kubernetes`, every staging module
`k8s.io/*` replaced by its published v0.37.2), run on loopback without nodes as envtest does."""

ETCD: Final = "3.7.3"
"""etcd for that API server (`go.etcd.io/etcd/server/v3`, tools module `servers/go/etcd`): the newest
patch of the 3.7 line Kubernetes 1.37 is built against (its go.mod requires the 3.7.0 client)."""

CNPG: Final = "1.27.1"
"""The CloudNativePG operator (`github.com/cloudnative-pg/cloudnative-pg`): the program deploys its
released manifest (that Go module's `releases/cnpg-<version>.yaml`, committed by
scripts/gen_cnpg_operator.py), whose `clusters` CRD the real-server tier also installs."""

CNPG_MANIFEST_SHA256: Final = "0c60c2682eeacf5339d87368a87f4a8ff2e46b70a4f85dc7783cb1bb9cc5b9d7"
"""sha256 of `releases/cnpg-1.27.1.yaml` in the module zip `go mod download` verified against its
`h1:` sum (servers/crds.py): the generator refuses another file, the program another commit."""

CNPG_POSTGRES: Final = "18.0"
"""PostgreSQL of the CNPG instances: the operand image CNPG 1.27.1 defaults to
(`ghcr.io/cloudnative-pg/postgresql:18.0-system-trixie`, pkg/versions/versions.go)."""

ISTIO: Final = "1.28.0"
"""The Istio API the mesh objects target (`istio.io/api`: its CRDs are installed in the real-server
tier); the cluster's Istio control plane is the user's, this minor or newer."""

ARGO_CD: Final = "3.2.0"
"""ArgoCD's ApplicationSet API (`github.com/argoproj/argo-cd/v3`, manifests/crds)."""

SPIRE_CONTROLLER_MANAGER: Final = "0.7.0"
"""spire-controller-manager (`github.com/spiffe/spire-controller-manager`, image
`ghcr.io/spiffe/spire-controller-manager`): its CRDs (config/crd/bases) are what the enterprise
topology installs, its typed classes are generated from, and the real-server tier creates."""

LOKI: Final = "3.4.2"
"""Loki and Promtail (`grafana/loki`, `grafana/promtail`: released together) of kubernetes.iam.observability."""

PROMETHEUS: Final = "3.2.1"
"""Prometheus (`prom/prometheus`) scraping Keycloak and the SPIRE servers (kubernetes.iam.observability)."""

GRAFANA: Final = "11.6.0"
"""Grafana (`grafana/grafana`) with Loki and Prometheus provisioned (kubernetes.iam.observability)."""
