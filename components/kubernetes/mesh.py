"""IamMesh: the Istio side of the IAM design: mTLS, authorization, and Keycloak's way in.

- PeerAuthentication `default` STRICT in every mesh namespace (`iam-system`, `observability`):
  no plaintext between pods there.
- One exception, by port: the `keycloak-db` instances accept plaintext (PERMISSIVE) on 8000 only,
  the CNPG instance manager's status endpoint the operator (no sidecar) polls; 5432 stays STRICT,
  so only sidecar-carrying callers reach PostgreSQL at all.
- AuthorizationPolicies: `deny-all` (an empty ALLOW-less policy) for the namespace, then one ALLOW
  per service naming its callers by their mTLS principal (the service account's SPIFFE identity
  in the mesh's trust domain): the ingress gateway and the Keycloak pods (JGroups) to Keycloak;
  Keycloak and the instances themselves (replication) to 5432; anyone to 8000, the port the
  operator reaches from outside the mesh (its callers have no principal to name).
- A Gateway for the public host name (HTTPS with the TLS Secret, HTTP redirected; plain HTTP only
  without one, which strict mode refuses) and a VirtualService routing it to Keycloak's Service.

The mesh is the cluster's: istiod and the ingress gateway are the user's installation (or the
ArgoCD ApplicationSet's first waves); the program writes policies and routes, never the control plane.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.kubernetes import security as sec
from components.kubernetes.custom_resources import (
    AuthorizationPolicy,
    AuthorizationPolicySpec,
    AuthorizationRule,
    Gateway,
    GatewayServer,
    PeerAuthentication,
    PeerAuthenticationSpec,
    VirtualService,
)
from components.kubernetes.iam import (
    CNPG_STATUS_PORT,
    DB_CLUSTER,
    DB_PORT,
    HTTP_PORT,
    IAM_NAMESPACE,
    JGROUPS_PORTS,
    KEYCLOAK,
    MANAGEMENT_PORT,
    SCRAPER,
)

MESH_TRUST_DOMAIN = "cluster.local"  # Istio's default; the principals below are in it
OBSERVABILITY_NAMESPACE = "observability"
GATEWAY_NAME = KEYCLOAK


def principal(namespace: str, service_account: str) -> str:
    """A workload's mTLS identity as AuthorizationPolicy names it."""
    return f"{MESH_TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True)
class IamMeshArgs:
    hostname: str
    tls_credential: str | None
    gateway_namespace: str
    gateway_selector: dict[str, str]
    gateway_service_account: str
    mesh_namespaces: tuple[str, ...]  # namespaces whose mTLS is STRICT
    # Namespaces allowed to call Keycloak's HTTP port inside the mesh (e.g. the Ziti controller's).
    http_clients: tuple[str, ...] = ()
    scrapers: tuple[str, ...] = ()


def peer_authentications(args: IamMeshArgs) -> dict[tuple[str, str], PeerAuthenticationSpec]:
    """By (namespace, name): STRICT everywhere, 8000 PERMISSIVE on the CNPG instances only."""
    out: dict[tuple[str, str], PeerAuthenticationSpec] = {
        (ns, "default"): {"mtls": {"mode": "STRICT"}} for ns in args.mesh_namespaces
    }
    out[(IAM_NAMESPACE, DB_CLUSTER)] = {
        "selector": {"matchLabels": sec.selector(DB_CLUSTER)},
        "mtls": {"mode": "STRICT"},
        "portLevelMtls": {str(CNPG_STATUS_PORT): {"mode": "PERMISSIVE"}},
    }
    return out


def authorization_policies(args: IamMeshArgs) -> dict[tuple[str, str], AuthorizationPolicySpec]:
    """By (namespace, name): deny all in iam-system, then who may call each service."""
    keycloak_rules: list[AuthorizationRule] = [
        {"from": [{"source": {"principals": [principal(args.gateway_namespace, args.gateway_service_account)]}}],
         "to": [{"operation": {"ports": [str(HTTP_PORT)]}}]},
        {"from": [{"source": {"principals": [principal(IAM_NAMESPACE, KEYCLOAK)]}}],
         "to": [{"operation": {"ports": [str(p) for p in JGROUPS_PORTS]}}]},
    ]
    if args.http_clients:  # the realms' public documents only (discovery, JWKS), never the admin API
        keycloak_rules.append({"from": [{"source": {"namespaces": list(args.http_clients)}}],
                               "to": [{"operation": {"ports": [str(HTTP_PORT)], "methods": ["GET"],
                                                     "paths": ["/realms/*"]}}]})
    if args.scrapers:
        keycloak_rules.append({"from": [{"source": {"principals": [principal(n, SCRAPER) for n in args.scrapers]}}],
                               "to": [{"operation": {"ports": [str(MANAGEMENT_PORT)], "methods": ["GET"],
                                                     "paths": ["/metrics"]}}]})
    return {
        (IAM_NAMESPACE, "deny-all"): {},
        (IAM_NAMESPACE, KEYCLOAK): {
            "selector": {"matchLabels": sec.selector(KEYCLOAK)}, "action": "ALLOW", "rules": keycloak_rules,
        },
        (IAM_NAMESPACE, DB_CLUSTER): {
            "selector": {"matchLabels": sec.selector(DB_CLUSTER)},
            "action": "ALLOW",
            "rules": [
                {"from": [{"source": {"principals": [principal(IAM_NAMESPACE, KEYCLOAK),
                                                     # CNPG runs the instances as the Cluster's name.
                                                     principal(IAM_NAMESPACE, DB_CLUSTER)]}}],
                 "to": [{"operation": {"ports": [str(DB_PORT)]}}]},
                {"to": [{"operation": {"ports": [str(CNPG_STATUS_PORT)]}}]},
            ],
        },
    }


def gateway_servers(args: IamMeshArgs) -> list[GatewayServer]:
    """HTTPS with the TLS Secret (and port 80 redirecting to it), or plain HTTP without one."""
    if args.tls_credential is None:
        return [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": [args.hostname]}]
    return [
        {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": [args.hostname],
         "tls": {"mode": "SIMPLE", "credentialName": args.tls_credential, "minProtocolVersion": "TLSV1_2"}},
        {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": [args.hostname],
         "tls": {"httpsRedirect": True}},
    ]


class IamMesh(pulumi.ComponentResource):
    """PeerAuthentications, AuthorizationPolicies, the Gateway and the VirtualService."""

    virtual_service: VirtualService

    def __init__(self, name: str, args: IamMeshArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:kubernetes:IamMesh", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        for (ns, pname), pspec in peer_authentications(args).items():
            PeerAuthentication(f"{name}-peer-{ns}-{pname}", metadata=sec.meta(pname, ns, pname, "mesh"), spec=pspec,
                               opts=child)
        for (ns, pname), aspec in authorization_policies(args).items():
            AuthorizationPolicy(f"{name}-authz-{ns}-{pname}", metadata=sec.meta(pname, ns, pname, "mesh"),
                                spec=aspec, opts=child)
        gateway = Gateway(
            f"{name}-gateway",
            metadata=sec.meta(GATEWAY_NAME, IAM_NAMESPACE, KEYCLOAK, "gateway"),
            spec={"selector": dict(args.gateway_selector), "servers": gateway_servers(args)},
            opts=child,
        )
        self.virtual_service = VirtualService(
            f"{name}-virtual-service",
            metadata=sec.meta(KEYCLOAK, IAM_NAMESPACE, KEYCLOAK, "gateway"),
            spec={
                "hosts": [args.hostname],
                "gateways": [f"{IAM_NAMESPACE}/{GATEWAY_NAME}"],
                "http": [{"name": KEYCLOAK, "route": [{"destination": {
                    "host": f"{KEYCLOAK}.{IAM_NAMESPACE}.svc.cluster.local", "port": {"number": HTTP_PORT}}}]}],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway]),
        )
        self.register_outputs({})
