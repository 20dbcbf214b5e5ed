"""IamStack: the IAM design of `kubernetes.iam` in one cluster.

    cnpg-system     the CloudNativePG operator (no sidecar)                    KeycloakOnCnpg
    iam-system      keycloak-db (CNPG Cluster), Keycloak, PDB, policies          KeycloakOnCnpg
                    PeerAuthentication / AuthorizationPolicy / Gateway / VS      IamMesh
    observability   Loki, Promtail, Prometheus, Grafana                         Observability
    argocd          the ApplicationSet (kubernetes.iam.gitops)                   IamGitOps

The args are built from the stack configuration by components/assembly.py (`iam_stack_args`);
sizes come from `environment` (`stack_config.kubernetes_iam.REPLICAS`), never from a second knob.
Each part documents its own choices.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.kubernetes.gitops import IamGitOps, IamGitOpsArgs
from components.kubernetes.iam import KeycloakOnCnpg, KeycloakOnCnpgArgs
from components.kubernetes.mesh import IamMesh, IamMeshArgs
from components.kubernetes.observability import Observability, ObservabilityArgs


@dataclass(frozen=True)
class IamStackArgs:
    keycloak: KeycloakOnCnpgArgs
    mesh: IamMeshArgs
    admin_url: str  # where the program's Keycloak providers write (through the Gateway)
    gitops: IamGitOpsArgs | None = None
    observability: ObservabilityArgs | None = None


class IamStack(pulumi.ComponentResource):
    """Keycloak on CNPG and its mesh objects; `ready` is what the realm and client wait for."""

    keycloak: KeycloakOnCnpg
    mesh: IamMesh
    admin_url: str
    public_url: str
    ready: list[pulumi.Resource]

    def __init__(self, name: str, args: IamStackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:kubernetes:IamStack", name, None, opts)
        self.admin_url = args.admin_url
        self.public_url = args.keycloak.public_url
        self.keycloak = KeycloakOnCnpg(f"{name}-keycloak", args.keycloak, opts=pulumi.ResourceOptions(parent=self))
        namespaces: list[pulumi.Resource] = [self.keycloak.namespace]
        if args.observability is not None:
            namespaces.append(Observability(f"{name}-observability", args.observability,
                                            opts=pulumi.ResourceOptions(parent=self)).namespace)
        self.mesh = IamMesh(f"{name}-mesh", args.mesh, opts=pulumi.ResourceOptions(parent=self, depends_on=namespaces))
        if args.gitops is not None:
            IamGitOps(f"{name}-gitops", args.gitops, opts=pulumi.ResourceOptions(parent=self))
        # Keycloak Ready (pulumi-kubernetes awaits the Deployment's rollout) and the route the
        # program reaches it through.
        self.ready = [self.keycloak.deployment, self.mesh.virtual_service]
        self.register_outputs({"admin_url": self.admin_url, "public_url": self.public_url})
