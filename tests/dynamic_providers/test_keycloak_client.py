"""The Admin REST client: token lifetime handling, retries that are safe, readiness, TLS.

Driven in-process against the loopback Keycloak; the fake's request log is the witness.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from dynamic_providers.keycloak.client import KeycloakAdmin, KeycloakApiError, RetryPolicy, forget_tokens
from dynamic_providers.keycloak.models import ClientRepresentation, Connection, RealmRepresentation, connection_url_rule
from tests.fakes import keycloak as fake_keycloak
from tests.fakes.keycloak import SERVER_ERROR_BODY, KeycloakFake
from tests.harness.loopback import LoopbackServer

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
CLIENTS = "/admin/realms/{realm}/clients"
CLIENT = "/admin/realms/{realm}/clients/{uuid}"
TOKEN = "/realms/{realm}/protocol/openid-connect/token"


@pytest.fixture(autouse=True)
def _cold_tokens() -> Iterator[None]:
    forget_tokens()
    yield
    forget_tokens()


@pytest.fixture
def fake(loopback: Callable[..., LoopbackServer]) -> KeycloakFake:
    return fake_keycloak.start(loopback)


class Sleeps:
    """Records requested back-off delays instead of sleeping them (the test asserts on them)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def admin(fake: KeycloakFake, sleeps: Sleeps | None = None, **conn: Any) -> KeycloakAdmin:
    return KeycloakAdmin(Connection.model_validate(fake.connection(**conn)), retry=FAST, sleep=sleeps or Sleeps())


def statuses(fake: KeycloakFake, method: str, pattern: str) -> list[int | None]:
    assert fake.server is not None
    return [r.status for r in fake.server.log if r.method == method and r.pattern == pattern]


class TestTokenLifetime:
    def test_one_login_serves_many_calls_and_sessions(self, fake: KeycloakFake) -> None:
        for _ in range(3):
            with admin(fake) as kc:
                assert kc.get_realm("master") is not None
        assert fake.grants == {"password": 1}

    def test_token_is_renewed_at_90_percent_of_its_lifetime_before_it_fails(self, fake: KeycloakFake) -> None:
        fake.access_token_lifespan = 1.0
        with admin(fake) as kc:
            kc.get_realm("master")
            time.sleep(0.95)  # past 90 % of 1 s, still inside the lifetime on the server
            kc.get_realm("master")
        assert fake.grants == {"password": 1, "refresh_token": 1}
        assert 401 not in statuses(fake, "GET", "/admin/realms/{realm}")

    def test_a_token_answer_without_expires_in_is_used_until_refused(
        self, fake: KeycloakFake, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """RFC 6749 §5.1 makes expires_in RECOMMENDED, not REQUIRED: a token without it is used, and
        a 401 renews it as any expired token."""
        issue = KeycloakFake._issue

        def without_expiry(self: KeycloakFake, *args: Any, **kwargs: Any) -> dict[str, Any]:
            body = issue(self, *args, **kwargs)
            del body["expires_in"]
            return body

        monkeypatch.setattr(KeycloakFake, "_issue", without_expiry)
        with admin(fake) as kc:
            assert kc.get_realm("master") is not None
            fake.expire_tokens()
            assert kc.get_realm("master") is not None
        assert fake.grants == {"password": 1, "refresh_token": 1}

    def test_a_token_answer_that_is_not_a_token_never_quotes_it(
        self, fake: KeycloakFake, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        issue = KeycloakFake._issue
        issued: list[str] = []

        def malformed(self: KeycloakFake, *args: Any, **kwargs: Any) -> dict[str, Any]:
            body = issue(self, *args, **kwargs)
            issued.append(body["refresh_token"])
            del body["access_token"]
            return {"refresh_token": body.pop("refresh_token"), **body}  # first: what a quote would show

        monkeypatch.setattr(KeycloakFake, "_issue", malformed)
        with admin(fake) as kc, pytest.raises(KeycloakApiError) as err:
            kc.get_realm("master")
        assert "did not return a token" in str(err.value)
        assert issued and issued[0][:8] not in str(err.value) and "input_value" not in str(err.value)

    def test_401_renews_with_the_refresh_token_and_retries_once(self, fake: KeycloakFake) -> None:
        with admin(fake) as kc:
            kc.get_realm("master")
            fake.expire_tokens()  # as after 60 s in master
            assert kc.get_realm("master") is not None
        assert statuses(fake, "GET", "/admin/realms/{realm}") == [200, 401, 200]
        assert fake.grants == {"password": 1, "refresh_token": 1}

    def test_refused_refresh_falls_back_to_a_new_login(self, fake: KeycloakFake) -> None:
        with admin(fake) as kc:
            kc.get_realm("master")
            fake.end_sessions()
            assert kc.get_realm("master") is not None
        assert fake.grants == {"password": 2, "refresh_token": 1}

    def test_client_credentials_log_in_again_because_there_is_no_refresh_token(self, fake: KeycloakFake) -> None:
        with admin(fake, username=None, password=None, client_id="temp-admin", client_secret="bootstrap") as kc:
            kc.get_realm("master")
            fake.expire_tokens()
            kc.get_realm("master")
        assert fake.grants == {"client_credentials": 2}

    def test_403_on_a_realm_newer_than_the_token_renews_and_succeeds(self, fake: KeycloakFake) -> None:
        fake.new_realm_needs_new_token = True  # older Keycloaks (26.7 answers 200)
        with admin(fake) as kc:
            kc.get_realm("master")
            fake.seed_realm("newer")
            rep = kc.get_realm("newer")
        assert rep is not None and rep.realm == "newer"
        assert statuses(fake, "GET", "/admin/realms/{realm}") == [200, 403, 200]

    def test_a_realm_just_created_is_readable_after_one_renewal(self, fake: KeycloakFake) -> None:
        fake.new_realm_needs_new_token = True
        with admin(fake) as kc:
            kc.create_realm(RealmRepresentation(realm="fresh", enabled=True))
            assert kc.get_realm("fresh") is not None
        assert statuses(fake, "GET", "/admin/realms/{realm}") == [403, 200]
        assert fake.grants == {"password": 1, "refresh_token": 1}

    def test_a_persistent_403_names_the_missing_role(self, fake: KeycloakFake) -> None:
        assert fake.server is not None
        fake.server.inject("GET", "/admin/realms/{realm}", status=403, body={"error": "HTTP 403 Forbidden"}, times=2)
        with admin(fake) as kc, pytest.raises(KeycloakApiError, match="lacks the admin role") as err:
            kc.get_realm("master")
        assert err.value.status == 403

    def test_concurrent_calls_share_one_login(self, fake: KeycloakFake) -> None:
        errors: list[BaseException] = []

        def work() -> None:
            try:
                with admin(fake) as kc:
                    kc.get_realm("master")
            except BaseException as e:  # noqa: BLE001 (collected and asserted below)
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert fake.grants == {"password": 1}


class TestLoginErrors:
    def test_wrong_password_names_the_connection_and_hides_the_password(self, fake: KeycloakFake) -> None:
        with admin(fake, password="not-the-password") as kc, pytest.raises(KeycloakApiError) as err:
            kc.get_realm("master")
        text = str(err.value)
        # 400 invalid_grant, as Keycloak 26.7 answers (tests/real/test_keycloak_fidelity.py).
        assert "400" in text and "check the credentials in connection" in text and "invalid_grant" in text
        assert "not-the-password" not in text
        assert err.value.response is None and "not-the-password" not in repr(vars(err.value))  # no login request kept

    def test_wrong_base_path_says_so(self, fake: KeycloakFake) -> None:
        with admin(fake, base_path="/auth") as kc, pytest.raises(KeycloakApiError, match="base_path") as err:
            kc.get_realm("master")
        assert err.value.status == 404

    def test_legacy_auth_base_path_works_when_configured(self, loopback: Callable[..., LoopbackServer]) -> None:
        kc_fake = KeycloakFake(base_path="/auth")
        kc_fake.serve(loopback)
        with admin(kc_fake) as kc:
            assert kc.get_realm("master") is not None

    def test_missing_credentials_fail_before_any_request(self, fake: KeycloakFake) -> None:
        # The connection model holds the rule: no client can be made without credentials.
        with pytest.raises(ValidationError, match="client_secret"):
            admin(fake, username=None, password=None)
        assert fake.server is not None and fake.server.count() == 0


class TestRetries:
    def test_503_on_get_is_retried_honouring_retry_after(self, fake: KeycloakFake) -> None:
        assert fake.server is not None
        fake.server.inject("GET", "/admin/realms/{realm}", status=503, headers={"Retry-After": "2"}, times=2)
        sleeps = Sleeps()
        with admin(fake, sleeps) as kc:
            assert kc.get_realm("master") is not None
        assert sleeps.delays == [2.0, 2.0]
        assert statuses(fake, "GET", "/admin/realms/{realm}") == [503, 503, 200]

    def test_429_on_post_is_retried_after_the_delay_the_server_asks_for(self, fake: KeycloakFake) -> None:
        assert fake.server is not None
        fake.server.inject("POST", CLIENTS, status=429, headers={"Retry-After": "1"})
        sleeps = Sleeps()
        with admin(fake, sleeps) as kc:
            kc.create_client("master", ClientRepresentation(client_id="rate", public_client=True))
        assert sleeps.delays == [1.0]
        assert fake.count_clients("master", "rate") == 1

    def test_retry_after_http_date_is_understood(self, fake: KeycloakFake) -> None:
        assert fake.server is not None
        from email.utils import formatdate

        fake.server.inject(
            "GET",
            "/admin/realms/{realm}",
            status=429,
            headers={"Retry-After": formatdate(time.time() + 3, usegmt=True)},
        )
        sleeps = Sleeps()
        with admin(fake, sleeps) as kc:
            kc.get_realm("master")
        assert len(sleeps.delays) == 1 and 1.0 <= sleeps.delays[0] <= 3.0

    def test_retry_after_longer_than_the_cap_fails_with_a_clear_message(self, fake: KeycloakFake) -> None:
        assert fake.server is not None
        fake.server.inject("GET", "/admin/realms/{realm}", status=503, headers={"Retry-After": "3600"})
        with admin(fake) as kc, pytest.raises(KeycloakApiError, match="after 3600 s"):
            kc.get_realm("master")

    def test_a_login_keycloak_refuses_for_now_says_what_it_answered(self, fake: KeycloakFake) -> None:
        """A 429 to the token POST asking for longer than the policy waits: one attempt, and the
        error is Keycloak's answer (status, Retry-After), not "did not answer after 4 attempts"."""
        assert fake.server is not None
        fake.server.inject("POST", TOKEN, status=429, times=10, headers={"Retry-After": "120"},
                           body={"error": "too_many_requests"})
        with admin(fake) as kc, pytest.raises(KeycloakApiError) as err:
            kc.get_realm("master")
        assert err.value.status == 429 and err.value.retry_after == 120.0
        assert "retry after 120 s" in str(err.value) and "did not answer" not in str(err.value)
        assert statuses(fake, "POST", TOKEN) == [429]

    def test_a_login_answered_503_on_every_attempt_says_so(self, fake: KeycloakFake) -> None:
        assert fake.server is not None
        fake.server.inject("POST", TOKEN, status=503, times=10)
        with admin(fake) as kc, pytest.raises(KeycloakApiError) as err:
            kc.get_realm("master")
        assert err.value.status == 503 and "answered 503" in str(err.value)
        assert statuses(fake, "POST", TOKEN) == [503] * 4  # the policy's attempts

    @pytest.mark.parametrize(
        ("method", "pattern", "body", "call"),
        [("GET", "/admin/realms/{realm}", ["not", "a", "realm"], lambda kc: kc.get_realm("master")),
         ("GET", CLIENTS, {"clientId": "not a list"}, lambda kc: kc.find_client("master", "admin-cli"))],
    )
    def test_an_answer_of_the_wrong_shape_is_a_keycloak_error(
        self, fake: KeycloakFake, method: str, pattern: str, body: Any, call: Callable[[KeycloakAdmin], Any]
    ) -> None:
        """A 200 whose JSON is not the representation asked for (a proxy, another server) fails as
        a `KeycloakApiError` naming the call, like every other bad answer, not as pydantic's error."""
        assert fake.server is not None
        fake.server.inject(method, pattern, status=200, body=body)
        with admin(fake) as kc, pytest.raises(KeycloakApiError, match="not the representation") as err:
            call(kc)
        assert err.value.status == 200

    def test_connection_reset_on_get_is_retried(self, fake: KeycloakFake) -> None:
        assert fake.server is not None
        fake.server.inject("GET", "/admin/realms/{realm}", reset=True)
        with admin(fake) as kc:
            assert kc.get_realm("master") is not None
        assert statuses(fake, "GET", "/admin/realms/{realm}") == [None, 200]

    def test_get_slower_than_the_timeout_is_retried(self, fake: KeycloakFake) -> None:
        assert fake.server is not None
        fake.server.inject("GET", "/admin/realms/{realm}", delay=1.5)
        with admin(fake, timeout=0.5) as kc:
            assert kc.get_realm("master") is not None
        assert fake.server.count("GET", "/admin/realms/{realm}") >= 1

    @pytest.mark.parametrize(
        "fault",
        [
            pytest.param({"reset": True}, id="reset-before-handler"),
            pytest.param({"reset_after": True}, id="answer-lost"),
            pytest.param({"status": 502}, id="bad-gateway"),
        ],
    )
    def test_a_post_whose_outcome_is_unknown_is_not_repeated(self, fake: KeycloakFake, fault: dict[str, Any]) -> None:
        assert fake.server is not None
        fake.server.inject("POST", CLIENTS, **fault)
        with admin(fake) as kc, pytest.raises(KeycloakApiError) as err:
            kc.create_client("master", ClientRepresentation(client_id="once", public_client=True))
        assert err.value.outcome_unknown
        assert fake.server.count("POST", CLIENTS) == 1

    def test_a_post_that_times_out_is_not_repeated(self, fake: KeycloakFake) -> None:
        assert fake.server is not None
        fake.server.inject("POST", CLIENTS, delay=1.0)
        with admin(fake, timeout=0.3) as kc, pytest.raises(KeycloakApiError) as err:
            kc.create_client("master", ClientRepresentation(client_id="slow", public_client=True))
        assert err.value.outcome_unknown
        time.sleep(1.0)  # the server finishes the slow request afterwards
        assert fake.count_clients("master", "slow") == 1

    def test_a_201_without_location_is_resolved_by_client_id_not_repeated(self, fake: KeycloakFake) -> None:
        fake.omit_location = True
        with admin(fake) as kc:
            uuid = kc.create_client("master", ClientRepresentation(client_id="nolocation", public_client=True))
        rep = fake.client_by_client_id("master", "nolocation")
        assert rep is not None and rep["id"] == uuid
        assert fake.count_clients("master", "nolocation") == 1

    @pytest.mark.parametrize(
        ("fault", "posts"),
        [
            pytest.param({"reset_after": True}, 1, id="rotated-answer-lost"),  # looked at, not rotated again
            pytest.param({"reset": True}, 2, id="never-rotated"),  # unchanged: rotated again
        ],
    )
    def test_a_secret_rotation_whose_answer_is_lost_rotates_once(
        self, fake: KeycloakFake, fault: dict[str, Any], posts: int
    ) -> None:
        assert fake.server is not None
        uuid = fake.seed_client("master", {"clientId": "conf", "publicClient": False})
        before = fake.realms["master"].clients[uuid].rep["secret"]
        fake.server.inject("POST", f"{CLIENT}/client-secret", **fault)
        with admin(fake) as kc:
            secret = kc.regenerate_client_secret("master", uuid)
        assert secret != before and secret == fake.realms["master"].clients[uuid].rep["secret"]
        assert fake.server.count("POST", f"{CLIENT}/client-secret") == posts

    def test_a_persistent_500_is_an_error_with_keycloaks_message_after_the_retries(self, fake: KeycloakFake) -> None:
        assert fake.server is not None
        fake.server.inject("PUT", CLIENT, status=500, body={"errorMessage": "unexpected failure"}, times=100)
        uuid = fake.seed_client("master", {"clientId": "p"})
        with admin(fake) as kc, pytest.raises(KeycloakApiError, match=r"500.*unexpected failure"):
            kc.update_client("master", uuid, ClientRepresentation(client_id="p", description="x"))
        assert fake.server.count("PUT", CLIENT) == FAST.attempts

    @pytest.mark.parametrize(
        "body",
        [
            SERVER_ERROR_BODY,  # what Keycloak really answers: the lock failure is only in its log
            {"errorMessage": "jakarta.persistence.OptimisticLockException: Row was updated by another transaction"},
        ],
        ids=["keycloak-generic-500", "named-lock-failure"],
    )
    def test_optimistic_lock_500_on_a_realm_write_is_retried(self, fake: KeycloakFake, body: dict[str, str]) -> None:
        assert fake.server is not None
        fake.server.inject("PUT", "/admin/realms/{realm}", status=500, body=body)
        with admin(fake) as kc:
            kc.update_realm("master", RealmRepresentation(realm="master", display_name="Master"))
        assert statuses(fake, "PUT", "/admin/realms/{realm}") == [500, 204]

    def test_realm_writes_are_serialised_in_the_process(self, fake: KeycloakFake) -> None:
        fake.realm_write_seconds = 0.05  # wide window: overlapping PUTs would conflict
        errors: list[BaseException] = []

        def write(i: int) -> None:
            try:
                with admin(fake) as kc:
                    kc.update_realm("master", RealmRepresentation(realm="master", display_name=f"n{i}"))
            except BaseException as e:  # noqa: BLE001 (collected and asserted below)
                errors.append(e)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and fake.lock_conflicts == 0
        assert statuses(fake, "PUT", "/admin/realms/{realm}") == [204] * 4

    def test_retries_are_bounded(self, fake: KeycloakFake) -> None:
        assert fake.server is not None
        fake.server.inject("GET", "/admin/realms/{realm}", status=503, times=100)
        with admin(fake) as kc, pytest.raises(KeycloakApiError, match="503"):
            kc.get_realm("master")
        assert fake.server.count("GET", "/admin/realms/{realm}") == FAST.attempts

    def test_backoff_has_jitter_and_a_cap(self) -> None:
        policy = RetryPolicy(base_delay=1.0, max_delay=4.0)
        samples = [policy.backoff(10) for _ in range(200)]
        assert max(samples) <= 4.0 and len({round(s, 6) for s in samples}) > 150


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestReadiness:
    def test_waits_for_a_keycloak_that_is_still_starting(self, fake: KeycloakFake) -> None:
        assert fake.server is not None
        fake.server.inject("POST", TOKEN, status=503, times=6)  # more than the retry attempts
        conn = Connection.model_validate(fake.connection())
        with KeycloakAdmin(conn, retry=FAST, ready_timeout=30, sleep=lambda s: time.sleep(min(s, 0.01))) as kc:
            assert kc.get_realm("master") is not None
        assert statuses(fake, "POST", TOKEN) == [503] * 6 + [200]

    def test_gives_up_after_the_readiness_window_naming_the_url(self) -> None:
        url = f"http://127.0.0.1:{_closed_port()}"
        conn = Connection(url=url, username="admin", password="x", timeout=1)
        start = time.monotonic()
        with KeycloakAdmin(conn, retry=FAST, ready_timeout=1.0) as kc, pytest.raises(KeycloakApiError) as err:
            kc.get_realm("master")
        elapsed = time.monotonic() - start
        assert 1.0 <= elapsed < 5.0
        assert url in str(err.value) and "within 1 s" in str(err.value)

    def test_without_a_readiness_window_an_unreachable_server_fails_fast(self) -> None:
        conn = Connection(url=f"http://127.0.0.1:{_closed_port()}", username="a", password="b")
        start = time.monotonic()
        with KeycloakAdmin(conn, retry=FAST) as kc, pytest.raises(KeycloakApiError, match="did not answer"):
            kc.get_realm("master")
        assert time.monotonic() - start < 2.0


class TestTransportSecurity:
    def test_an_untrusted_certificate_is_refused(self, fake: KeycloakFake) -> None:
        with admin(fake, ca_bundle_pem=None) as kc, pytest.raises(KeycloakApiError, match="CERTIFICATE_VERIFY_FAILED"):
            kc.get_realm("master")

    def test_an_untrusted_certificate_fails_at_once_even_while_waiting_for_readiness(self, fake: KeycloakFake) -> None:
        conn = Connection.model_validate(fake.connection(ca_bundle_pem=None))
        sleeps = Sleeps()
        start = time.monotonic()
        with KeycloakAdmin(conn, retry=FAST, ready_timeout=300, sleep=sleeps) as kc:
            with pytest.raises(KeycloakApiError) as err:
                kc.get_realm("master")
        assert time.monotonic() - start < 5.0 and sleeps.delays == []
        assert "connection.ca_bundle_pem" in str(err.value) and fake.url in str(err.value)
        assert fake.server is not None and fake.server.log == []  # no request completed the handshake

    def test_the_ca_bundle_is_added_to_the_system_roots(self, fake: KeycloakFake) -> None:
        with admin(fake) as kc:
            assert kc.get_realm("master") is not None

    @pytest.mark.parametrize("url", ["http://auth.acme.net", "http://10.0.0.5:8080", "ftp://auth.acme.net"])
    def test_plain_http_is_refused_except_for_loopback(self, url: str) -> None:
        with pytest.raises(ValidationError, match=r"https|http"):
            Connection(url=url, username="a", password="b")

    @pytest.mark.parametrize("url", ["http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080"])
    def test_plain_http_to_loopback_is_accepted(self, url: str) -> None:
        assert Connection(url=url, username="a", password="b").url == url

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("http://auth.acme.net", "'http://auth.acme.net' uses plain http to a non-loopback host: use https (trust "
             "a private CA with connection.ca_bundle_pem); http is only accepted for localhost"),
            ("ftp://auth.acme.net", "'ftp://auth.acme.net' is not an http(s) URL: use e.g. https://auth.example.net"),
            ("https://auth.acme.net/#x", "'https://auth.acme.net/#x' must not carry a query or fragment"),
        ],
    )  # fmt: skip
    def test_the_public_connection_url_rule_is_the_connections(self, url: str, message: str) -> None:
        """stack_config applies this rule to keycloak.url and kubernetes.iam.adminUrl."""
        with pytest.raises(ValueError) as e:
            connection_url_rule(url)
        assert str(e.value) == message
        with pytest.raises(ValidationError) as v:
            Connection(url=url, username="a", password="b")
        assert message in str(v.value)

    def test_the_connection_url_rule_returns_the_url_trimmed(self) -> None:
        assert connection_url_rule(" https://auth.acme.net/ ") == "https://auth.acme.net"
        assert Connection(url=" https://auth.acme.net/ ", username="a", password="b").url == "https://auth.acme.net"

    def test_a_malformed_ca_bundle_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="ca_bundle_pem"):
            Connection(
                url="https://a.b",
                username="a",
                password="b",
                ca_bundle_pem="-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
            )

    def test_secrets_do_not_appear_in_the_connection_repr(self) -> None:
        conn = Connection(url="https://a.b", username="a", password="hunter2-secret")
        assert "hunter2-secret" not in repr(conn) and "hunter2-secret" not in str(conn)
