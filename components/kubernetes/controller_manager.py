"""SpireControllerManager: spire-controller-manager beside a SPIRE server, the CRD-based
registration path: `ClusterSPIFFEID` resources register the pods they select.

It is a container of the server's pod (`Sidecar`), as in spire-controller-manager's own demo and
the hardened chart: it speaks to the server's admin API, which is a Unix socket
(`spireServerSocketPath`), so it cannot be a Deployment of its own. This component makes what it
needs besides: its config, its RBAC (bound to the server pod's service account), the CRDs of its
pinned release (components/kubernetes/generated/crds/) and the `ClusterSPIFFEID` resources, typed
by the generated classes (components/kubernetes/generated/spire_spiffe_io.py).

Coexisting with the program's own `SpireEntry` resources:
- `entryIDPrefix` (`k8s-<cluster>`): the manager creates entries with that ID prefix and leaves
  entries without it alone, so the `pulumi.<stack>.<hash>` entries of SpireEntry are never
  deleted by its reconciler (spire-controller-manager README, "entryIDPrefix");
- `className`: it handles only the ClusterSPIFFEIDs and ClusterFederatedTrustDomains of this
  platform, not others' in the cluster;
- federation reconciling is on when the topology gives it `ClusterFederatedTrustDomain`s (the
  enterprise topology's relationship with the peer trust domain, seeded with the peer's bundle:
  components/kubernetes/federation.py). Its federation reconciler deletes every dynamic
  relationship of the server it has not declared, so the relationships of this server are the
  program's alone; without any, the switch stays off and it touches none.
- no validating webhook (`ENABLE_WEBHOOKS=false`): it would need to patch
  ValidatingWebhookConfigurations cluster-wide; the API server validates the CRDs' schemas.

RBAC: read pods, nodes, namespaces and endpoints (to render entries), read ClusterSPIFFEIDs,
ClusterStaticEntries and ClusterFederatedTrustDomains and write only their status and finalizers;
leases and events in its own namespace for leader election between the server replicas. Nothing
else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.kubernetes import security as sec
from components.kubernetes.generated.spire_spiffe_io import (
    ClusterFederatedTrustDomain,
    ClusterFederatedTrustDomainSpec,
    ClusterSPIFFEID,
    ClusterSPIFFEIDSpec,
)
from components.kubernetes.spire_config import SERVER_NAME, SERVER_SOCKET, SERVER_SOCKET_DIR
from components.kubernetes.spire_server import Sidecar

NAME = "spire-controller-manager"
CRD_DIR = Path(__file__).resolve().parent / "generated" / "crds"
CONF_DIR = "/etc/spire-controller-manager"
HEALTH_PORT = 8083
CLASS_NAME = "identity-platform"
RESOURCES = sec.Resources("50m", "64Mi", "500m", "256Mi")
# The kinds it reads (the CRDs of components/kubernetes/generated/crds/).
KINDS = ("clusterspiffeids", "clusterstaticentries", "clusterfederatedtrustdomains")
IGNORED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "spire-system", "spire-server")


@dataclass(frozen=True)
class FederatedTrustDomain:
    """A `ClusterFederatedTrustDomain`: its spec (className set here) and the peer's initial bundle,
    an Output of the root (components/kubernetes/federation.py)."""

    spec: ClusterFederatedTrustDomainSpec
    seed_bundle: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class SpireControllerManagerArgs:
    namespace: pulumi.Input[str]  # the server's
    cluster: str
    trust_domain: str
    image: str
    # ClusterSPIFFEID name -> spec (its className is set here).
    spiffe_ids: Mapping[str, ClusterSPIFFEIDSpec]
    # ClusterFederatedTrustDomain name -> relationship; none: the manager leaves the server's
    # federation relationships alone.
    federated_trust_domains: Mapping[str, FederatedTrustDomain] = field(default_factory=dict)


def manager_config(cluster: str, trust_domain: str, namespace: str, *, federation: bool = False) -> dict[str, object]:
    """The ControllerManagerConfig (spire-controller-manager api/v1alpha1, v0.7.0 field names);
    `federation`: reconcile ClusterFederatedTrustDomains into the server's relationships."""
    return {
        "apiVersion": "spire.spiffe.io/v1alpha1",
        "kind": "ControllerManagerConfig",
        "metrics": {"bindAddress": "0"},  # no metrics listener: nothing scrapes it
        "health": {"healthProbeBindAddress": f":{HEALTH_PORT}"},
        "leaderElection": {"leaderElect": True, "resourceName": f"{NAME}-{cluster}",
                           "resourceNamespace": namespace},
        "clusterName": cluster,
        "trustDomain": trust_domain,
        "ignoreNamespaces": list(IGNORED_NAMESPACES),
        "spireServerSocketPath": SERVER_SOCKET,
        "entryIDPrefix": f"k8s-{cluster}",
        "className": CLASS_NAME,
        "watchClassless": False,
        "reconcile": {"clusterSPIFFEIDs": True, "clusterStaticEntries": True,
                      "clusterFederatedTrustDomains": federation},
    }


def crd_documents() -> list[dict[str, Any]]:
    """The pinned CRDs, as committed (scripts/gen_crd_types.py copies them from the module)."""
    return [yaml.safe_load(p.read_text()) for p in sorted(CRD_DIR.glob("*.yaml"))]


class SpireControllerManager(pulumi.ComponentResource):
    """Config, RBAC, CRDs and ClusterSPIFFEIDs; `sidecar` is the container the server pod runs."""

    sidecar: Sidecar
    spiffe_ids: dict[str, ClusterSPIFFEID]
    federated_trust_domains: dict[str, ClusterFederatedTrustDomain]

    def __init__(self, name: str, args: SpireControllerManagerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:kubernetes:SpireControllerManager", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        labels = sec.labels(NAME, "controller")

        crds = [
            k8s.apiextensions.v1.CustomResourceDefinition(
                f"{name}-crd-{doc['spec']['names']['plural']}",
                metadata={"name": doc["metadata"]["name"], "labels": labels},
                # The spec as published, in the API's own field names (they reach the API server as written).
                spec=cast(k8s.apiextensions.v1.CustomResourceDefinitionSpecArgsDict, doc["spec"]),
                opts=child,
            )
            for doc in crd_documents()
        ]
        conf = k8s.core.v1.ConfigMap(
            f"{name}-conf",
            metadata=sec.meta(NAME, ns, NAME, "controller"),
            data={"config.yaml": pulumi.Output.from_input(ns).apply(
                lambda n: yaml.safe_dump(manager_config(args.cluster, args.trust_domain, n,
                                          federation=bool(args.federated_trust_domains)), sort_keys=False))},
            opts=child,
        )
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-role",
            metadata={"name": f"identity-platform-{NAME}", "labels": labels},
            rules=[
                {"api_groups": [""], "resources": ["pods", "nodes", "namespaces", "endpoints"],
                 "verbs": ["get", "list", "watch"]},
                {"api_groups": ["spire.spiffe.io"], "resources": list(KINDS),
                 "verbs": ["get", "list", "watch"]},
                {"api_groups": ["spire.spiffe.io"], "resources": [f"{k}/status" for k in KINDS],
                 "verbs": ["get", "patch", "update"]},
                {"api_groups": ["spire.spiffe.io"], "resources": [f"{k}/finalizers" for k in KINDS],
                 "verbs": ["update"]},
            ],
            opts=child,
        )
        subjects: list[k8s.rbac.v1.SubjectArgsDict] = [{"kind": "ServiceAccount", "name": SERVER_NAME, "namespace": ns}]
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-role-binding",
            metadata={"name": f"identity-platform-{NAME}", "labels": labels},
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role.metadata.name},
            subjects=subjects,
            opts=child,
        )
        election = k8s.rbac.v1.Role(
            f"{name}-leader-election",
            metadata=sec.meta(f"{NAME}-leader-election", ns, NAME, "controller"),
            rules=[
                {"api_groups": ["coordination.k8s.io"], "resources": ["leases"],
                 "verbs": ["get", "list", "watch", "create", "update", "patch"]},
                {"api_groups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            ],
            opts=child,
        )
        k8s.rbac.v1.RoleBinding(
            f"{name}-leader-election-binding",
            metadata=sec.meta(f"{NAME}-leader-election", ns, NAME, "controller"),
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "Role", "name": election.metadata.name},
            subjects=subjects,
            opts=child,
        )
        self.spiffe_ids = {
            sname: ClusterSPIFFEID(
                f"{name}-{sname}",
                metadata={"name": sname, "labels": labels},
                spec={**spec, "className": CLASS_NAME},
                opts=pulumi.ResourceOptions(parent=self, depends_on=crds),
            )
            for sname, spec in sorted(args.spiffe_ids.items())
        }
        self.federated_trust_domains = {
            fname: ClusterFederatedTrustDomain(
                f"{name}-{fname}",
                metadata={"name": fname, "labels": labels},
                spec=_with_bundle({**fed.spec, "className": CLASS_NAME}, fed.seed_bundle),
                opts=pulumi.ResourceOptions(parent=self, depends_on=crds),
            )
            for fname, fed in sorted(args.federated_trust_domains.items())
        }
        container: k8s.core.v1.ContainerArgsDict = {
            "name": NAME,
            "image": args.image,
            "args": [f"--config={CONF_DIR}/config.yaml"],
            # No validating webhook (see the module docstring).
            "env": [{"name": "ENABLE_WEBHOOKS", "value": "false"}],
            "ports": [{"name": "manager-health", "container_port": HEALTH_PORT}],
            "liveness_probe": {"http_get": {"path": "/healthz", "port": HEALTH_PORT}, "period_seconds": 30},
            "readiness_probe": {"http_get": {"path": "/readyz", "port": HEALTH_PORT}, "period_seconds": 10},
            "resources": RESOURCES.spec(),
            "security_context": sec.restricted_container(),
            "volume_mounts": [
                {"name": "admin-socket", "mount_path": SERVER_SOCKET_DIR, "read_only": True},
                {"name": "manager-conf", "mount_path": CONF_DIR, "read_only": True},
            ],
        }
        self.sidecar = Sidecar(
            container=container,
            volumes=[{"name": "manager-conf", "config_map": {"name": conf.metadata.name}}],
        )
        self.register_outputs({})


def _with_bundle(spec: ClusterFederatedTrustDomainSpec,
                 bundle: pulumi.Input[str] | None) -> ClusterFederatedTrustDomainSpec:
    """`spec` with `trustDomainBundle` set to `bundle`, an Input: the SDK resolves an Output nested
    in a resource's inputs, so the rest of the spec stays known at preview (the TypedDict, generated
    from the CRD, types the field as the `str` the API server receives)."""
    if bundle is None:
        return spec
    return cast(ClusterFederatedTrustDomainSpec, {**spec, "trustDomainBundle": bundle})
