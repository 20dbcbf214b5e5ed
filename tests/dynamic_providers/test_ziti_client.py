"""The Edge Management client: sessions, retries only where repeating is harmless, the error
envelope, paging, and TLS trust that is never blind (bundle, pinned root, or system store)."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from dynamic_providers.ziti.client import PAGE_LIMIT, ZitiApiError, ZitiClient, sha256_fingerprint, zitiql_string
from dynamic_providers.ziti.models import ZitiConnection
from tests.fakes import ziti as fake_ziti
from tests.fakes.ziti import API, ZitiController

CAS = f"{API}/cas"
CA = f"{API}/cas/{{id}}"
IDENTITIES = f"{API}/identities"
AUTH = f"{API}/authenticate"


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def ziti(loopback) -> tuple[ZitiController, Any]:
    return fake_ziti.start(loopback)


def client(fake: ZitiController, srv: Any, sleeps: Sleeps | None = None, **conn: Any) -> ZitiClient:
    connection = ZitiConnection.model_validate(fake_ziti.connection(srv, fake, **conn))
    return ZitiClient(connection, sleep=sleeps if sleeps is not None else Sleeps())


def identity(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "Default", "isAdmin": False, **extra}


class TestSession:
    def test_logs_in_once_and_again_only_after_expiry(self, ziti) -> None:
        fake, srv = ziti
        with client(fake, srv) as c:
            c.list_all("cas")
            c.list_all("cas")
            assert fake.authentications == 1
            fake.expire_sessions()
            assert c.list_all("cas") == []
        assert fake.authentications == 2
        assert srv.counts()[f"GET {CAS}"] == 4  # the 401 and its repeat

    def test_a_second_401_is_an_error_not_a_loop(self, loopback) -> None:
        fake, srv = fake_ziti.start(loopback, session_max_requests=0)
        with client(fake, srv) as c, pytest.raises(ZitiApiError) as err:
            c.list_all("cas")
        assert err.value.status == 401 and err.value.code == "UNAUTHORIZED"
        assert fake.authentications == 2

    def test_wrong_password_names_the_user_never_the_password(self, ziti) -> None:
        fake, srv = ziti
        with client(fake, srv, password="not-the-password") as c, pytest.raises(ZitiApiError) as err:
            c.list_all("cas")
        assert err.value.code == "INVALID_AUTH" and "'admin'" in str(err.value)
        assert "not-the-password" not in str(err.value)
        assert err.value.response is None and "not-the-password" not in repr(vars(err.value))  # no login request kept
        assert srv.count("POST", AUTH) == 1  # a refusal is not retried


class TestRetries:
    def test_429_waits_for_retry_after(self, ziti) -> None:
        fake, srv = ziti
        srv.inject("GET", CAS, status=429, headers={"Retry-After": "3"}, body={"error": {"code": "RATE_LIMITED"}})
        sleeps = Sleeps()
        with client(fake, srv, sleeps) as c:
            assert c.list_all("cas") == []
        assert sleeps == [3.0]

    def test_the_pause_honours_the_error_s_retry_after(self, ziti) -> None:
        fake, srv = ziti
        sleeps = Sleeps()
        err = ZitiApiError("busy", status=429, retry_after=7.0)
        with client(fake, srv, sleeps) as c:
            c.pause(1, err)
        assert sleeps == [7.0]

    def test_5xx_and_resets_on_reads_are_retried_with_backoff(self, ziti) -> None:
        fake, srv = ziti
        srv.inject("GET", CAS, status=503, times=1)
        srv.inject("GET", CAS, reset=True, times=1)
        sleeps = Sleeps()
        with client(fake, srv, sleeps) as c:
            assert c.list_all("cas") == []
        assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.25 and 0 <= sleeps[1] <= 0.5  # full jitter, doubling

    def test_retries_stop_after_the_budget_with_the_last_error(self, ziti) -> None:
        fake, srv = ziti
        srv.inject("GET", CAS, status=502, times=10)
        with client(fake, srv) as c, pytest.raises(ZitiApiError) as err:
            c.list_all("cas")
        assert err.value.status == 502
        assert srv.count("GET", CAS) == 4

    def test_slow_answer_beyond_the_timeout_is_retried(self, ziti) -> None:
        fake, srv = ziti
        srv.inject("GET", CAS, delay=1.5, times=1)
        with client(fake, srv, timeout=0.5) as c:
            assert c.list_all("cas") == []
        deadline = time.monotonic() + 5
        while srv.count("GET", CAS) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the slow first answer is logged only when its handler finishes
        assert srv.count("GET", CAS) == 2

    def test_create_is_never_repeated_after_a_lost_answer(self, ziti) -> None:
        fake, srv = ziti
        srv.inject("POST", IDENTITIES, reset_after=True)
        with client(fake, srv) as c, pytest.raises(ZitiApiError) as err:
            c.create("identities", identity("w"))
        assert err.value.outcome_unknown
        assert srv.count("POST", IDENTITIES) == 1
        assert [i["name"] for i in fake.all("identities")] == ["w"]  # it landed: the caller must look it up

    def test_create_5xx_is_reported_uncertain_429_is_retried(self, ziti) -> None:
        fake, srv = ziti
        srv.inject("POST", IDENTITIES, status=503)
        srv.inject("POST", IDENTITIES, status=429, headers={"Retry-After": "1"})
        sleeps = Sleeps()
        with client(fake, srv, sleeps) as c:
            with pytest.raises(ZitiApiError) as err:
                c.create("identities", identity("w"))
            assert err.value.outcome_unknown and err.value.status == 503
            c.create("identities", identity("w"))  # a 429 is answered instead of acting: sent again
        assert sleeps == [1.0]
        assert srv.count("POST", IDENTITIES) == 3 and [i["name"] for i in fake.all("identities")] == ["w"]


class TestErrorsAndLists:
    def test_duplicate_is_parsed_from_the_envelope(self, ziti) -> None:
        fake, srv = ziti
        with client(fake, srv) as c:
            c.create("identities", identity("w"))
            with pytest.raises(ZitiApiError) as err:
                c.create("identities", identity("w"))
        e = err.value
        assert (e.status, e.code, e.cause.field, e.is_duplicate) == (400, "COULD_NOT_VALIDATE", "name", True)
        assert "duplicate value 'w' in unique index on identities store" in str(e)
        assert e.request_id

    @pytest.mark.parametrize(
        ("error", "duplicate"),
        [
            ({"code": "COULD_NOT_VALIDATE", "cause": "duplicate value 'w' in unique index on x store"}, True),
            ({"code": "COULD_NOT_VALIDATE", "causeMessage": "name: duplicate value 'w' in unique index"}, True),
            ({"code": "COULD_NOT_VALIDATE", "cause": {"field": "certPem", "reason": "certificate already used"}}, True),
            # The swagger defines no duplicate code or wording: other phrasings of the same refusal.
            ({"code": "COULD_NOT_VALIDATE", "cause": {"field": "name", "reason": "an entity named 'w' already exists"}},
             True),
            ({"code": "COULD_NOT_VALIDATE", "cause": {"field": "name", "reason": "Duplicate name 'w'"}}, True),
            ({"code": "COULD_NOT_VALIDATE", "cause": {"field": "name", "reason": "name is required"}}, False),
            ({"code": "INVALID_FIELD", "cause": {"field": "name", "reason": "duplicate value 'w'"}}, False),
        ],
    )
    def test_duplicate_wherever_the_envelope_says_it(self, ziti, error: dict[str, Any], duplicate: bool) -> None:
        fake, srv = ziti
        srv.inject("POST", IDENTITIES, status=400, body={"error": {"message": "invalid", **error}, "meta": {}})
        with client(fake, srv) as c, pytest.raises(ZitiApiError) as err:
            c.create("identities", identity("w"))
        assert err.value.is_duplicate is duplicate and err.value.code == error["code"]

    def test_not_found(self, ziti) -> None:
        fake, srv = ziti
        with client(fake, srv) as c:
            assert c.get_or_none("cas", "nope") is None
            assert c.delete("cas", "nope") is False
            with pytest.raises(ZitiApiError) as err:
                c.get("cas", "nope")
        assert err.value.status == 404 and err.value.code == "NOT_FOUND"

    def test_an_error_that_is_not_an_envelope_quotes_the_body(self, ziti) -> None:
        fake, srv = ziti
        srv.inject("GET", CAS, status=404, body="<html>no such route</html>")
        with client(fake, srv) as c, pytest.raises(ZitiApiError) as err:
            c.list_all("cas")
        assert str(err.value) == f"GET {CAS}: HTTP 404 <html>no such route</html>"
        srv.inject("GET", CAS, status=404, body="")
        with client(fake, srv) as c, pytest.raises(ZitiApiError) as err:
            c.list_all("cas")
        assert str(err.value) == f"GET {CAS}: HTTP 404 Not Found"

    def test_lists_page_through_everything(self, ziti) -> None:
        fake, srv = ziti
        for i in range(2 * PAGE_LIMIT + 3):
            fake.put_entity("identities", {**identity(f"w{i:04d}"), "authPolicyId": "default", "roleAttributes": ["x"]})
        with client(fake, srv) as c:
            names = [e["name"] for e in c.list_all("identities")]
        assert len(names) == 2 * PAGE_LIMIT + 3 and len(set(names)) == len(names)
        assert srv.count("GET", IDENTITIES) == 3

    def test_a_list_answered_with_null_data_is_empty(self, ziti) -> None:
        """A Go server renders an empty slice as `null`; the swagger's list envelopes allow it."""
        fake, srv = ziti
        empty = {"data": None, "meta": {"pagination": {"limit": PAGE_LIMIT, "offset": 0, "totalCount": 0}}}
        srv.inject("GET", IDENTITIES, status=200, body=empty)
        with client(fake, srv) as c:
            assert c.find_by_name("identities", "w") is None

    def test_lookup_by_name_quotes_the_filter(self, ziti) -> None:
        fake, srv = ziti
        recorded: list[Any] = []
        fake.on_request = recorded.append
        with client(fake, srv) as c:
            c.create("identities", identity('we"ird\\name'))
            c.create("identities", identity("plain"))
            assert c.find_by_name("identities", 'we"ird\\name')["name"] == 'we"ird\\name'
            assert c.find_by_name("identities", "absent") is None
        assert zitiql_string('a"b') == '"a\\"b"'
        filters = [r.query.get("filter") for r in recorded if r.method == "GET" and r.path == IDENTITIES]
        assert filters == [['name="we\\"ird\\\\name"'], ['name="absent"']]


class TestWrites:
    """Which writes are repeated after a fault: the idempotent ones (PATCH of the same fields, the
    CA proof, a router's new enrollment) and nothing the controller refused for good; what the
    CA endpoints answer."""

    def _identity(self, c: ZitiClient) -> str:
        return c.create("identities", identity("w", authPolicyId="default"))

    def test_a_patch_is_repeated_after_a_lost_answer(self, ziti) -> None:
        fake, srv = ziti
        with client(fake, srv) as c:
            id_ = self._identity(c)
            srv.inject("PATCH", f"{IDENTITIES}/{{id}}", reset_after=True)
            c.patch("identities", id_, {"roleAttributes": ["edge"]})
        assert srv.count("PATCH", f"{IDENTITIES}/{{id}}") == 2
        assert fake.all("identities")[0]["roleAttributes"] == ["edge"]

    def test_a_500_that_is_a_unique_index_refusal_is_not_repeated(self, ziti) -> None:
        fake, srv = ziti
        refusal = {"error": {"code": "UNHANDLED", "message": "An unhandled error occurred",
                             "cause": {"code": "UNHANDLED", "message": "duplicate value 'x' in unique index on cas"}}}
        with client(fake, srv) as c:
            id_ = self._identity(c)
            srv.inject("PATCH", f"{IDENTITIES}/{{id}}", status=500, body=refusal, times=5)
            with pytest.raises(ZitiApiError) as err:
                c.patch("identities", id_, {"roleAttributes": ["edge"]})
        assert err.value.status == 500 and err.value.is_duplicate and err.value.duplicate_value == "x"
        assert srv.count("PATCH", f"{IDENTITIES}/{{id}}") == 1

    def test_any_other_500_on_a_patch_is_repeated(self, ziti) -> None:
        fake, srv = ziti
        other = {"error": {"code": "UNHANDLED", "message": "An unhandled error occurred", "cause": "bolt: timeout"}}
        with client(fake, srv) as c:
            id_ = self._identity(c)
            srv.inject("PATCH", f"{IDENTITIES}/{{id}}", status=500, body=other)
            c.patch("identities", id_, {"roleAttributes": ["edge"]})
        assert srv.count("PATCH", f"{IDENTITIES}/{{id}}") == 2
        assert fake.all("identities")[0]["roleAttributes"] == ["edge"]

    @pytest.fixture
    def ca(self, ziti) -> Iterator[tuple[ZitiController, Any, ZitiClient, str, str]]:
        """A CA on the fake, not yet verified, and the proof of its key (CN = its token)."""
        from dynamic_providers.ziti.provider import verification_certificate

        fake, srv = ziti
        cert, key = fake_ziti.make_ca()
        with client(fake, srv) as c:
            id_ = c.create("cas", fake_ziti.ca_body("spire", cert))
            proof = verification_certificate(cert, key, c.get("cas", id_)["verificationToken"])
            yield fake, srv, c, id_, proof

    def test_verify_says_whether_this_call_verified_the_ca(self, ca) -> None:
        fake, srv, c, id_, proof = ca
        assert c.verify_ca(id_, proof) is True
        assert fake.all("cas")[0]["isVerified"] is True
        assert c.verify_ca(id_, proof) is False  # 409 CA_ALREADY_VERIFIED
        assert srv.count("POST", f"{CA}/verify") == 2

    def test_a_verification_repeated_after_a_lost_answer_finds_it_done(self, ca) -> None:
        fake, srv, c, id_, proof = ca
        srv.inject("POST", f"{CA}/verify", reset_after=True)
        assert c.verify_ca(id_, proof) is False
        assert srv.count("POST", f"{CA}/verify") == 2 and fake.all("cas")[0]["isVerified"] is True

    def test_another_409_or_a_refused_proof_is_an_error(self, ca) -> None:
        fake, srv, c, id_, proof = ca
        srv.inject("POST", f"{CA}/verify", status=409, body={"error": {"code": "CONFLICT", "message": "busy"}})
        with pytest.raises(ZitiApiError) as err:
            c.verify_ca(id_, proof)
        assert (err.value.status, err.value.code) == (409, "CONFLICT")
        with pytest.raises(ZitiApiError) as err:
            c.verify_ca(id_, fake_ziti.make_ca("not the token")[0])
        assert (err.value.status, err.value.code) == (400, "INVALID_COMMON_NAME")
        assert fake.all("cas")[0]["isVerified"] is False

    def test_a_re_enrollment_is_repeated_after_a_lost_answer(self, ziti) -> None:
        fake, srv = ziti
        with client(fake, srv) as c:
            id_ = c.create("edge-routers", {"name": "r1"})
            first = c.get("edge-routers", id_)["enrollmentJwt"]
            srv.inject("POST", f"{API}/edge-routers/{{id}}/re-enroll", reset_after=True)
            c.re_enroll_edge_router(id_)
            assert c.get("edge-routers", id_)["enrollmentJwt"] not in (None, first)
        assert srv.count("POST", f"{API}/edge-routers/{{id}}/re-enroll") == 2

    def test_the_ca_jwt_is_the_body_as_text(self, ca) -> None:
        _, _, c, id_, _ = ca
        token = c.ca_jwt(id_)
        assert token.count(".") == 2 and not token.endswith("\n")

    def test_a_lost_create_answer_names_the_call_and_not_reachability(self, ziti) -> None:
        fake, srv = ziti
        srv.inject("POST", IDENTITIES, reset_after=True)
        with client(fake, srv, ready_timeout=5) as c, pytest.raises(ZitiApiError) as err:
            c.create("identities", identity("w"))
        assert (err.value.method, err.value.path, err.value.code) == ("POST", "/identities", "NO_RESPONSE")
        assert str(err.value).startswith("POST /identities: ") and "not reachable" not in str(err.value)

    def test_a_create_answered_without_an_id_may_have_created(self, ziti) -> None:
        fake, srv = ziti
        srv.inject("POST", IDENTITIES, status=201, body={"data": {}, "meta": {}})
        with client(fake, srv) as c, pytest.raises(ZitiApiError) as err:
            c.create("identities", identity("w"))
        assert err.value.outcome_unknown and (err.value.method, err.value.path) == ("POST", "/identities")
        assert str(err.value) == "POST /identities: create answered without an id"


class RealSleeps(Sleeps):
    def __call__(self, seconds: float) -> None:
        super().__call__(seconds)
        time.sleep(seconds)


class DelayedRelay:
    """A port that refuses connections until `open()`, then relays bytes to the real server
    (TLS passes through untouched): a controller whose API comes up late."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        self.port = self.sock.getsockname()[1]

    def open(self) -> None:
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client_sock, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((client_sock, upstream), (upstream, client_sock)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.sock.close()


class TestStartingController:
    def test_waits_for_a_controller_that_is_not_listening_yet(self, ziti) -> None:
        fake, srv = ziti
        relay = DelayedRelay(srv.port)
        try:
            threading.Timer(1.0, relay.open).start()
            sleeps = RealSleeps()
            with client(fake, srv, sleeps, url=f"https://localhost:{relay.port}", ready_timeout=30) as c:
                assert c.list_all("cas") == []
            assert len(sleeps) >= 2  # refused at least twice before the API came up
        finally:
            relay.close()

    def test_gives_up_after_ready_timeout_naming_it(self, ziti) -> None:
        fake, srv = ziti
        relay = DelayedRelay(srv.port)  # never opened
        try:
            with (
                client(fake, srv, RealSleeps(), url=f"https://localhost:{relay.port}", ready_timeout=1) as c,
                pytest.raises(ZitiApiError) as err,
            ):
                c.list_all("cas")
        finally:
            relay.close()
        assert err.value.code == "NO_RESPONSE" and "not reachable within 1s" in str(err.value)
        assert not err.value.outcome_unknown

    def test_a_tls_failure_is_not_waited_for(self, ziti) -> None:
        fake, srv = ziti
        other, _ = fake_ziti.make_ca("someone else")
        sleeps = Sleeps()
        with client(fake, srv, sleeps, ca_bundle_pem=other) as c, pytest.raises(ZitiApiError) as err:
            c.list_all("cas")
        assert err.value.code == "TLS_ERROR" and sleeps == []
        assert "ca_bundle_pem" in str(err.value)


class TestTrust:
    def test_a_bundle_that_did_not_sign_the_server_is_refused(self, ziti) -> None:
        fake, srv = ziti
        other, _ = fake_ziti.make_ca("someone else")
        with client(fake, srv, ca_bundle_pem=other) as c, pytest.raises(ZitiApiError) as err:
            c.list_all("cas")
        assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)
        assert fake.authentications == 0

    def test_without_a_bundle_the_system_store_applies(self, ziti) -> None:
        fake, srv = ziti
        with client(fake, srv, ca_bundle_pem=None) as c, pytest.raises(ZitiApiError) as err:
            c.list_all("cas")
        assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)

    def test_pinned_root_from_est_cacerts(self, ziti) -> None:
        fake, srv = ziti
        pin = sha256_fingerprint(x509.load_pem_x509_certificate(srv.ca_pem.encode()))
        with client(
            fake, srv, ca_bundle_pem=None, ca_fingerprint=":".join(pin[i : i + 2] for i in range(0, 64, 2))
        ) as c:
            assert c.list_all("cas") == []
        assert srv.count("GET", "/.well-known/est/cacerts") == 1

    def test_a_wrong_pin_fails_before_any_credentials_are_sent(self, ziti) -> None:
        fake, srv = ziti
        with pytest.raises(ZitiApiError) as err, client(fake, srv, ca_bundle_pem=None, ca_fingerprint="ab" * 32):
            pass
        assert "pinned fingerprint" in str(err.value) and "ab" * 32 in str(err.value)
        assert srv.count("POST", AUTH) == 0

    @pytest.mark.parametrize(
        ("fault", "says"),
        [
            ({"status": 404, "body": {"error": {"code": "NOT_FOUND"}}},
             "could not fetch the controller CA bundle (HTTP 404)"),
            ({"status": 200, "body": "this is not PKCS#7"}, "the controller CA bundle is not base64 PKCS#7"),
        ],
    )
    def test_a_bundle_that_cannot_be_had_fails_before_any_credentials_are_sent(self, ziti, fault, says) -> None:
        fake, srv = ziti
        srv.inject("GET", "/.well-known/est/cacerts", **fault)
        with pytest.raises(ZitiApiError) as err, client(fake, srv, ca_bundle_pem=None, ca_fingerprint="ab" * 32):
            pass
        assert (err.value.method, err.value.path) == ("GET", "/.well-known/est/cacerts")
        assert str(err.value).startswith(f"GET /.well-known/est/cacerts: {says}")
        assert srv.count("POST", AUTH) == 0

    def test_a_controller_that_never_answers_the_bundle_request_is_named(self, ziti) -> None:
        fake, srv = ziti
        relay = DelayedRelay(srv.port)  # never opened
        try:
            conn = {"url": f"https://localhost:{relay.port}", "ready_timeout": 1, "ca_bundle_pem": None,
                    "ca_fingerprint": "ab" * 32}
            with pytest.raises(ZitiApiError) as err, client(fake, srv, RealSleeps(), **conn):
                pass
        finally:
            relay.close()
        assert (err.value.method, err.value.path, err.value.code) == ("GET", "/.well-known/est/cacerts", "NO_RESPONSE")
        assert "could not fetch the controller CA bundle from localhost within 1s" in str(err.value)


def _issue(
    subject: str, key: Any, issuer: tuple[x509.Certificate, Any] | None, *, ca: bool, uris: tuple[str, ...] = ()
) -> x509.Certificate:
    """A certificate as Ziti's PKI makes them: SKI/AKI, CA key usage on CAs, SANs on the server."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_cert, issuer_key = issuer if issuer is not None else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
    if not ca:
        sans += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import serialization

    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


class TestControllerPki:
    """The program's setup: a Pulumi-owned root (with the cluster's SPIFFE URI) signs the
    intermediate that the controller's bootstrap creates, which signs the server certificate; the
    controller presents leaf + intermediate and the provider trusts only the root."""

    @pytest.fixture
    def pki(self, loopback) -> Any:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
        root = _issue("ziti pki root", keys[0], None, ca=True, uris=("spiffe://ziti-cluster",))
        intermediate = _issue("ziti intermediate", keys[1], (root, keys[0]), ca=True)
        leaf = _issue("localhost", keys[2], (intermediate, keys[1]), ca=False)
        fake = ZitiController()
        srv = loopback(fake.app, tls=False)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as d:
            chain, key = Path(d, "chain.pem"), Path(d, "key.pem")
            chain.write_text(_pem(leaf, intermediate))
            key.write_bytes(
                keys[2].private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
            ctx.load_cert_chain(chain, key)
        srv._httpd.socket = ctx.wrap_socket(srv._httpd.socket, server_side=True)
        srv.scheme = "https"
        fake.tls_ca_pem = _pem(root, intermediate)  # what /.well-known/est/cacerts serves
        return fake, srv, root, intermediate

    def test_the_root_alone_verifies_a_controller_that_sends_its_intermediate(self, pki) -> None:
        fake, srv, root, _ = pki
        with client(fake, srv, ca_bundle_pem=_pem(root)) as c:
            assert c.list_all("cas") == []
        assert fake.authentications == 1

    def test_the_issuing_intermediate_alone_is_enough_too(self, pki) -> None:
        fake, srv, _, intermediate = pki
        with client(fake, srv, ca_bundle_pem=_pem(intermediate)) as c:
            assert c.list_all("cas") == []

    def test_the_pinned_root_is_found_among_the_controllers_cacerts(self, pki) -> None:
        fake, srv, root, _ = pki
        with client(fake, srv, ca_bundle_pem=None, ca_fingerprint=sha256_fingerprint(root)) as c:
            assert c.list_all("cas") == []

    def test_a_pinned_root_verifies_a_controller_reached_by_its_ip_address(self, pki) -> None:
        """The host is matched as an IP SAN: a certificate for the address, not a DNS name spelt like one."""
        fake, srv, root, _ = pki
        by_ip = srv.url.replace("://localhost:", "://127.0.0.1:")
        assert by_ip != srv.url
        with client(fake, srv, url=by_ip, ca_bundle_pem=None, ca_fingerprint=sha256_fingerprint(root)) as c:
            assert c.list_all("cas") == []

    def test_another_root_with_the_same_name_is_refused(self, pki) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        fake, srv, _, _ = pki
        impostor = _issue("ziti pki root", ec.generate_private_key(ec.SECP256R1()), None, ca=True)
        with client(fake, srv, ca_bundle_pem=_pem(impostor)) as c, pytest.raises(ZitiApiError) as err:
            c.list_all("cas")
        assert err.value.code == "TLS_ERROR" and fake.authentications == 0
