"""TLS and X.509 helpers shared by the HTTP clients: trust from a CA bundle, the one way to tell a
verification failure from a transient one, fingerprints, a server certificate checked against a root."""

from __future__ import annotations

import functools
import ipaddress
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.verification import PolicyBuilder, Store


@functools.lru_cache(maxsize=32)
def ssl_context(ca_bundle_pem: str | None, *, system_roots: bool = True) -> ssl.SSLContext:
    """A verifying context: the system roots plus `ca_bundle_pem`, or (`system_roots=False`) the
    bundle alone. Any certificate of the bundle may end a chain (an issuing intermediate as well
    as a root). Cached by content (a different bundle is a different key): loading the system
    store costs about 25 ms, more than a round trip."""
    if ca_bundle_pem and not system_roots:
        ctx = ssl.create_default_context(cadata=ca_bundle_pem)
    else:
        ctx = ssl.create_default_context()
        if ca_bundle_pem:
            ctx.load_verify_locations(cadata=ca_bundle_pem)
    if ca_bundle_pem:
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return ctx


def tls_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind a transport error, if any: never transient."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def sha256_fingerprint(cert: x509.Certificate) -> str:
    """Lower-case hex SHA-256 of the DER certificate, as pins are written."""
    return cert.fingerprint(hashes.SHA256()).hex()


def verify_server(leaf_der: bytes, root: x509.Certificate, intermediates: list[x509.Certificate], host: str) -> None:
    """Chain, validity and host name of a server certificate against `root` alone (cryptography's
    verifier; raises `cryptography.x509.verification.VerificationError`)."""
    try:
        subject: x509.DNSName | x509.IPAddress = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        subject = x509.DNSName(host)
    verifier = PolicyBuilder().store(Store([root])).build_server_verifier(subject)
    verifier.verify(x509.load_der_x509_certificate(leaf_der), intermediates)
