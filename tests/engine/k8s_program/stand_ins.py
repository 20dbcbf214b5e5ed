"""Stand-ins for the resources of the two provider plugins that cannot be built here (pulumi-random,
pulumi-tls: docs/testing.md, "The Pulumi engine"), for the test program `__main__.py` beside this
file only. Each is a dynamic resource with the same name, arguments and outputs the program uses, so
the project's own components run unchanged; `install()` puts them in place of the real classes.

- `RandomPassword`: letters and digits from Python's `secrets` (`result` a secret output); the
  basic topology's, the enterprise sides' and Keycloak's database passwords come from it.
- `PrivateKey`, `CertRequest`, `LocallySignedCert`: what `components/intermediate_ca.py` asks of
  pulumi-tls for the enterprise topology's downstream CA, made with `cryptography` as pulumi-tls
  makes them with Go's crypto/x509 (an ECDSA P-384 key; a CSR with the subject; a certificate the
  root signs with the CSR's subject and key, CA basic constraints, the key usages asked for, subject
  and authority key identifiers). Private keys are secret outputs, as pulumi-tls marks them. Any
  other argument than those the program passes is refused, so a new use is never silently faked.
- `SelfSignedCert`: the root CAs of `components.docker_helpers.self_signed_ca` (kubernetes.ziti's
  controller PKI root, a generated root CA): issuer = subject (common name and organization), CA
  basic constraints, the key usages asked for, the subject key identifier and the URI SANs, signed
  by the `PrivateKey` stand-in's key with SHA-384 (what Go picks for P-384). Like Go's crypto/x509,
  no authority key identifier on a self-signed certificate.

These classes are pickled by reference into the state (`tests.engine.k8s_program.stand_ins`): the
dynamic provider host imports this module through the CLI's PYTHONPATH (tests/engine/cli.py).
"""

from __future__ import annotations

import datetime
import secrets
import string
from typing import Any

import pulumi
import pulumi.dynamic
import pulumi_random
import pulumi_tls
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

# pulumi-tls `allowed_uses` -> the KeyUsage flag it sets (the ones the program asks for).
KEY_USAGES = {"cert_signing": "key_cert_sign", "crl_signing": "crl_sign", "digital_signature": "digital_signature"}


def _key_usage(allowed_uses: list[str]) -> x509.KeyUsage:
    """The KeyUsage extension pulumi-tls sets for `allowed_uses` (only those flags set)."""
    usages = {flag: False for flag in ("digital_signature", "content_commitment", "key_encipherment",
                                       "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                                       "encipher_only", "decipher_only")}
    return x509.KeyUsage(**usages | {KEY_USAGES[u]: True for u in allowed_uses})


def _known_uses(allowed_uses: list[str]) -> None:
    unknown = set(allowed_uses) - set(KEY_USAGES)
    if unknown:
        raise ValueError(f"the stand-in knows the key usages {sorted(KEY_USAGES)}, not {sorted(unknown)}")


def _ec_key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the stand-in signs with ECDSA keys only")
    return key


def _subject_args(subject: Any, args_class: type) -> None:
    """Refuse a subject with more than a common name and organization (the program's only use)."""
    others = {k for k in dir(args_class)
              if not k.startswith("_") and k not in ("common_name", "organization") and getattr(subject, k)}
    if others:
        raise ValueError(f"the stand-in's subject has a common name and organization only, not {sorted(others)}")


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, organization)])


def _certificate(subject: x509.Name, issuer: x509.Name, public_key: CertificatePublicKeyTypes,
                 props: Any) -> x509.CertificateBuilder:
    """What every pulumi-tls certificate resource sets: validity from now, basic constraints, the
    key usages asked for, the subject key identifier when asked."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
        .public_key(public_key).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(hours=int(props["validity_period_hours"])))
        .add_extension(x509.BasicConstraints(ca=bool(props["is_ca_certificate"]), path_length=None), critical=True)
        .add_extension(_key_usage(props["allowed_uses"]), critical=True)
    )
    if props["set_subject_key_id"]:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    return builder


def _replace_on_change(olds: dict[str, Any], news: dict[str, Any],
                       inputs: tuple[str, ...]) -> pulumi.dynamic.DiffResult:
    """pulumi-tls replaces its resources when an input changes (every input forces a new one)."""
    changed = [k for k in inputs if olds.get(k) != news.get(k)]
    return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)


class _Passwords(pulumi.dynamic.ResourceProvider):
    def create(self, props: Any) -> pulumi.dynamic.CreateResult:
        alphabet = string.ascii_letters + string.digits
        result = "".join(secrets.choice(alphabet) for _ in range(int(props["length"])))
        return pulumi.dynamic.CreateResult(secrets.token_hex(8), {**props, "result": result})

    def diff(self, _id: str, olds: Any, news: Any) -> pulumi.dynamic.DiffResult:
        return _replace_on_change(olds, news, ("length",))


class StandInPassword(pulumi.dynamic.Resource):
    """`length` letters and digits (the program asks for `special=False` everywhere)."""

    result: pulumi.Output[str]

    def __init__(self, name: str, length: int, special: bool = False,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        if special:
            raise ValueError("the stand-in makes letters and digits only")
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["result"]))
        super().__init__(_Passwords(), name, {"length": length, "result": None}, opts)


class _Keys(pulumi.dynamic.ResourceProvider):
    def create(self, props: Any) -> pulumi.dynamic.CreateResult:
        key = ec.generate_private_key(ec.SECP384R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        return pulumi.dynamic.CreateResult(secrets.token_hex(8),
                                           {**props, "private_key_pem": pem, "public_key_pem": public})

    def diff(self, _id: str, olds: Any, news: Any) -> pulumi.dynamic.DiffResult:
        return _replace_on_change(olds, news, ("algorithm", "ecdsa_curve"))


class StandInPrivateKey(pulumi.dynamic.Resource):
    """tls.PrivateKey for `algorithm="ECDSA", ecdsa_curve="P384"`."""

    private_key_pem: pulumi.Output[str]
    public_key_pem: pulumi.Output[str]

    def __init__(self, name: str, algorithm: str, ecdsa_curve: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        if (algorithm, ecdsa_curve) != ("ECDSA", "P384"):
            raise ValueError(f"the stand-in makes ECDSA P384 keys only, not {algorithm} {ecdsa_curve}")
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["private_key_pem"]))
        super().__init__(_Keys(), name, {"algorithm": algorithm, "ecdsa_curve": ecdsa_curve,
                                         "private_key_pem": None, "public_key_pem": None}, opts)


class _Requests(pulumi.dynamic.ResourceProvider):
    def create(self, props: Any) -> pulumi.dynamic.CreateResult:
        key = _ec_key(props["private_key_pem"])
        subject = _name(props["common_name"], props["organization"])
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA384())
        pem = csr.public_bytes(serialization.Encoding.PEM).decode()
        return pulumi.dynamic.CreateResult(secrets.token_hex(8), {**props, "cert_request_pem": pem})

    def diff(self, _id: str, olds: Any, news: Any) -> pulumi.dynamic.DiffResult:
        return _replace_on_change(olds, news, ("private_key_pem", "common_name", "organization"))


class StandInCertRequest(pulumi.dynamic.Resource):
    """tls.CertRequest with a subject of common name and organization."""

    cert_request_pem: pulumi.Output[str]

    def __init__(self, name: str, private_key_pem: pulumi.Input[str], subject: pulumi_tls.CertRequestSubjectArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        _subject_args(subject, pulumi_tls.CertRequestSubjectArgs)
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["private_key_pem"]))
        super().__init__(_Requests(), name, {"private_key_pem": private_key_pem, "common_name": subject.common_name,
                                             "organization": subject.organization, "cert_request_pem": None}, opts)


SIGNED_INPUTS = ("cert_request_pem", "ca_private_key_pem", "ca_cert_pem", "is_ca_certificate", "set_subject_key_id",
                 "validity_period_hours", "early_renewal_hours", "allowed_uses")


class _Certificates(pulumi.dynamic.ResourceProvider):
    """A certificate signed with SHA-384 (what Go picks for P-384), replaced when an input changes."""

    inputs: tuple[str, ...] = ()

    def build(self, props: Any) -> tuple[x509.CertificateBuilder, ec.EllipticCurvePrivateKey]:
        raise NotImplementedError

    def create(self, props: Any) -> pulumi.dynamic.CreateResult:
        builder, signer = self.build(props)
        pem = builder.sign(signer, hashes.SHA384()).public_bytes(serialization.Encoding.PEM).decode()
        return pulumi.dynamic.CreateResult(secrets.token_hex(8), {**props, "cert_pem": pem})

    def diff(self, _id: str, olds: Any, news: Any) -> pulumi.dynamic.DiffResult:
        return _replace_on_change(olds, news, self.inputs)


class _Signed(_Certificates):
    inputs = SIGNED_INPUTS

    def build(self, props: Any) -> tuple[x509.CertificateBuilder, ec.EllipticCurvePrivateKey]:
        csr = x509.load_pem_x509_csr(props["cert_request_pem"].encode())
        ca_cert = x509.load_pem_x509_certificate(props["ca_cert_pem"].encode())
        ca_key = _ec_key(props["ca_private_key_pem"])
        builder = _certificate(csr.subject, ca_cert.subject, csr.public_key(), props).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        return builder, ca_key


class StandInLocallySignedCert(pulumi.dynamic.Resource):
    """tls.LocallySignedCert of an ECDSA CA, with the arguments components/intermediate_ca.py passes."""

    cert_pem: pulumi.Output[str]

    def __init__(self, name: str, *, cert_request_pem: pulumi.Input[str], ca_private_key_pem: pulumi.Input[str],
                 ca_cert_pem: pulumi.Input[str], is_ca_certificate: bool, set_subject_key_id: bool,
                 validity_period_hours: int, early_renewal_hours: int, allowed_uses: list[str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        _known_uses(allowed_uses)
        opts = pulumi.ResourceOptions.merge(opts,
                                            pulumi.ResourceOptions(additional_secret_outputs=["ca_private_key_pem"]))
        super().__init__(_Signed(), name, {
            "cert_request_pem": cert_request_pem, "ca_private_key_pem": ca_private_key_pem, "ca_cert_pem": ca_cert_pem,
            "is_ca_certificate": is_ca_certificate, "set_subject_key_id": set_subject_key_id,
            "validity_period_hours": validity_period_hours, "early_renewal_hours": early_renewal_hours,
            "allowed_uses": allowed_uses, "cert_pem": None,
        }, opts)


SELF_SIGNED_INPUTS = ("private_key_pem", "common_name", "organization", "is_ca_certificate", "set_subject_key_id",
                      "validity_period_hours", "allowed_uses", "uris")


class _SelfSigned(_Certificates):
    inputs = SELF_SIGNED_INPUTS

    def build(self, props: Any) -> tuple[x509.CertificateBuilder, ec.EllipticCurvePrivateKey]:
        key = _ec_key(props["private_key_pem"])
        name = _name(props["common_name"], props["organization"])
        builder = _certificate(name, name, key.public_key(), props)
        if props["uris"]:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in props["uris"]]), critical=False)
        return builder, key


class StandInSelfSignedCert(pulumi.dynamic.Resource):
    """tls.SelfSignedCert of an ECDSA key, with the arguments `self_signed_ca` passes."""

    cert_pem: pulumi.Output[str]

    def __init__(self, name: str, *, private_key_pem: pulumi.Input[str], is_ca_certificate: bool,
                 set_subject_key_id: bool, validity_period_hours: int, allowed_uses: list[str],
                 subject: pulumi_tls.SelfSignedCertSubjectArgs, uris: list[str] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        _known_uses(allowed_uses)
        _subject_args(subject, pulumi_tls.SelfSignedCertSubjectArgs)
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["private_key_pem"]))
        super().__init__(_SelfSigned(), name, {
            "private_key_pem": private_key_pem, "common_name": subject.common_name,
            "organization": subject.organization, "is_ca_certificate": is_ca_certificate,
            "set_subject_key_id": set_subject_key_id, "validity_period_hours": validity_period_hours,
            "allowed_uses": allowed_uses, "uris": uris, "cert_pem": None,
        }, opts)


def install() -> None:
    """The stand-ins in place of the real classes, before the program's components use them."""
    pulumi_random.RandomPassword = StandInPassword  # type: ignore[misc,assignment]
    pulumi_tls.PrivateKey = StandInPrivateKey  # type: ignore[misc,assignment]
    pulumi_tls.CertRequest = StandInCertRequest  # type: ignore[misc,assignment]
    pulumi_tls.LocallySignedCert = StandInLocallySignedCert  # type: ignore[misc,assignment]
    pulumi_tls.SelfSignedCert = StandInSelfSignedCert  # type: ignore[misc,assignment]
