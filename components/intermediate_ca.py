"""IntermediateCa: a CA the root signs, for a SPIRE server that must not hold the root's key.

The enterprise topology's downstream server uses it as `UpstreamAuthority "disk"` (certificate
`cert_pem`, the root as `bundle_file_path`): its trust domain's SVIDs chain to the same root as the
upstream's, which OpenZiti registers, while the downstream cluster only ever holds this
intermediate's key (a Pulumi secret, renewed by `pulumi up` inside the early-renewal window).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

PROJECT = "identity-platform"


@dataclass(frozen=True)
class IntermediateCaArgs:
    common_name: str
    root_cert_pem: pulumi.Input[str]
    root_key_pem: pulumi.Input[str]
    validity_hours: int
    early_renewal_hours: int


class IntermediateCa(pulumi.ComponentResource):
    """A P-384 key and its CA certificate signed by the root (path length 1: SPIRE's own CA below it)."""

    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]

    def __init__(self, name: str, args: IntermediateCaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:pki:IntermediateCa", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P384", opts=child)
        csr = tls.CertRequest(
            f"{name}-csr",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=args.common_name, organization=PROJECT),
            opts=child,
        )
        cert = tls.LocallySignedCert(
            f"{name}-cert",
            cert_request_pem=csr.cert_request_pem,
            ca_private_key_pem=args.root_key_pem,
            ca_cert_pem=args.root_cert_pem,
            is_ca_certificate=True,
            set_subject_key_id=True,
            validity_period_hours=args.validity_hours,
            early_renewal_hours=args.early_renewal_hours,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=child,
        )
        self.cert_pem = cert.cert_pem
        self.key_pem = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs({"cert_pem": self.cert_pem})
