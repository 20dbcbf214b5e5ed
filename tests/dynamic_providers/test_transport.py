"""The transport's one retry rule and its sessions, tested once, through `httpx.MockTransport`.

Each handler below is the server: it answers (or fails) per call and counts what reached it, so
every assertion is about requests that were or were not sent, never about the policy's own view.
"""

from __future__ import annotations

import ast
import datetime
import email.utils
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dynamic_providers._transport import (
    ApiError,
    RetryPolicy,
    RetryTransport,
    ServerError,
    Session,
    forget_sessions,
    unless_absent,
)
from dynamic_providers._transport.retry import parse_retry_after

POLICY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=30)
URL = "https://server.test/thing"


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


Answer = httpx.Response | BaseException


class Server:
    """Answers from a script (last one repeats); records the method of every request that reached it."""

    def __init__(self, *script: Answer) -> None:
        self.script = list(script)
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.method)
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def client(server: Server) -> httpx.Client:
    return httpx.Client(transport=RetryTransport(httpx.MockTransport(server)))


def send(server: Server, method: str, sleeps: Sleeps | None = None, **extensions: Any) -> httpx.Response:
    ext = {**POLICY.extensions(sleeps if sleeps is not None else Sleeps()), **extensions}
    with client(server) as http:
        return http.request(method, URL, extensions=ext)


def failing_first(*errors: Exception) -> Callable[[], str]:
    """A call that raises `errors` in turn, then returns "done"."""
    left = list(errors)

    def op() -> str:
        if left:
            raise left.pop(0)
        return "done"

    return op


def reset() -> httpx.ReadError:
    return httpx.ReadError("connection reset by peer")


OK = httpx.Response(200, json={})
FAILURES = {
    "503": httpx.Response(503),
    "500": httpx.Response(500),
    "502": httpx.Response(502),
    "504": httpx.Response(504),
    "429": httpx.Response(429),
    "reset": reset(),
    "cut": httpx.RemoteProtocolError("Server disconnected without sending a response."),
    "read-timeout": httpx.ReadTimeout("timed out"),
}


class TestWhatIsRepeated:
    @pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
    @pytest.mark.parametrize("failure", sorted(FAILURES))
    def test_idempotent_calls_are_repeated_until_they_succeed(self, method: str, failure: str) -> None:
        server = Server(FAILURES[failure], FAILURES[failure], OK)
        assert send(server, method).status_code == 200
        assert server.seen == [method] * 3

    @pytest.mark.parametrize("failure", ["503", "500", "502", "504", "reset", "cut", "read-timeout"])
    def test_a_post_that_was_sent_is_never_sent_again(self, failure: str) -> None:
        server = Server(FAILURES[failure], OK)
        if isinstance(FAILURES[failure], httpx.Response):
            assert send(server, "POST").status_code == int(failure)
        else:
            with pytest.raises(type(FAILURES[failure])):
                send(server, "POST")
        assert server.seen == ["POST"]

    @pytest.mark.parametrize("error", [httpx.ConnectError("refused"), httpx.ConnectTimeout("connect timed out")])
    def test_a_post_that_never_left_is_sent_again(self, error: httpx.TransportError) -> None:
        server = Server(error, OK)
        assert send(server, "POST").status_code == 200
        assert server.seen == ["POST", "POST"]

    def test_a_post_refused_with_429_is_sent_again(self) -> None:
        """A 429 is answered instead of acting on the request."""
        server = Server(httpx.Response(429), OK)
        assert send(server, "POST").status_code == 200
        assert server.seen == ["POST", "POST"]

    def test_a_post_its_client_marks_idempotent_is_repeated(self) -> None:
        server = Server(httpx.Response(503), OK)
        assert send(server, "POST", idempotent=True).status_code == 200
        assert server.seen == ["POST", "POST"]

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 501])
    def test_other_answers_are_returned_at_once(self, status: int) -> None:
        server = Server(httpx.Response(status), OK)
        assert send(server, "GET").status_code == status
        assert server.seen == ["GET"]

    def test_a_certificate_that_fails_verification_is_not_retried(self) -> None:
        cause = ssl.SSLCertVerificationError(1, "certificate verify failed: unable to get local issuer certificate")
        error = httpx.ConnectError("TLS")
        error.__cause__ = cause
        server = Server(error, OK)
        sleeps = Sleeps()
        with pytest.raises(httpx.ConnectError):
            send(server, "GET", sleeps)
        assert server.seen == ["GET"] and sleeps == []

    def test_an_answer_the_system_calls_final_is_returned_at_once(self) -> None:
        """A system's `final` predicate (extension `final`) marks an answer a repeat cannot change;
        the others are repeated as ever."""
        refusal = httpx.Response(500, text="refused for good")

        def final(resp: httpx.Response) -> bool:
            return resp.read() == b"refused for good"

        server = Server(refusal, OK)
        sleeps = Sleeps()
        assert send(server, "PUT", sleeps, final=final).text == "refused for good"
        assert server.seen == ["PUT"] and sleeps == []
        server = Server(httpx.Response(500, text="busy"), OK)
        assert send(server, "PUT", final=final).status_code == 200
        assert server.seen == ["PUT", "PUT"]

    def test_tries_are_bounded_and_the_last_answer_is_returned(self) -> None:
        server = Server(httpx.Response(503, text="still down"))
        resp = send(server, "GET")
        assert (resp.status_code, resp.text) == (503, "still down")
        assert len(server.seen) == POLICY.attempts

    def test_the_last_error_is_raised_when_tries_run_out(self) -> None:
        server = Server(reset())
        with pytest.raises(httpx.ReadError):
            send(server, "DELETE")
        assert len(server.seen) == POLICY.attempts


class TestWaiting:
    def test_retry_after_seconds_is_the_wait(self) -> None:
        busy = httpx.Response(503, headers={"Retry-After": "7"}), httpx.Response(429, headers={"Retry-After": "2"})
        server = Server(*busy, OK)
        sleeps = Sleeps()
        assert send(server, "GET", sleeps).status_code == 200
        assert sleeps == [7.0, 2.0]

    def test_retry_after_as_an_http_date(self) -> None:
        when = email.utils.formatdate(time.time() + 5, usegmt=True)
        server = Server(httpx.Response(503, headers={"Retry-After": when}), OK)
        sleeps = Sleeps()
        send(server, "GET", sleeps)
        assert len(sleeps) == 1 and 3.0 <= sleeps[0] <= 5.0

    def test_a_retry_after_beyond_the_cap_is_not_waited_for(self) -> None:
        server = Server(httpx.Response(503, headers={"Retry-After": "3600"}), OK)
        sleeps = Sleeps()
        resp = send(server, "GET", sleeps)
        assert resp.status_code == 503 and resp.headers["Retry-After"] == "3600"
        assert server.seen == ["GET"] and sleeps == []

    def test_an_error_carrying_retry_after_sets_the_wait_too(self) -> None:
        """`call` (gRPC, exec, lookups before a repeat) reads `retry_after` off the error."""
        op, sleeps = failing_first(ApiError("busy", retry_after=3.0), ApiError("busy", retry_after=3.0)), Sleeps()
        assert POLICY.call(op, when=lambda e: isinstance(e, ApiError), sleep=sleeps) == "done"
        assert sleeps == [3.0, 3.0]

    def test_backoff_doubles_from_the_base_up_to_the_cap_with_jitter(self, monkeypatch: pytest.MonkeyPatch) -> None:
        policy = RetryPolicy(base_delay=1.0, max_delay=4.0)
        samples = [policy.backoff(3) for _ in range(300)]
        assert all(0 <= s <= 4.0 for s in samples) and len({round(s, 6) for s in samples}) > 250
        monkeypatch.setattr(random, "uniform", lambda low, high: high)  # the top of each jitter range
        assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 4.0]

    def test_backoff_is_the_wait_without_retry_after(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(random, "uniform", lambda low, high: high)
        server = Server(httpx.Response(502))
        sleeps = Sleeps()
        send(server, "GET", sleeps)
        assert sleeps == [0.01, 0.02, 0.04]  # base * 2^(n-1); the 4th try is the last

    def test_a_pause_between_a_systems_own_tries_follows_the_same_rule(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """`RetryPolicy.pause` (a create looking up before it posts again): the server's Retry-After,
        else backoff; a Retry-After longer than the policy waits raises the error at once, as the
        transport returns such an answer without repeating it."""
        monkeypatch.setattr(random, "uniform", lambda low, high: high)
        policy, sleeps = RetryPolicy(base_delay=1.0, max_retry_after=60.0), Sleeps()
        post = httpx.Request("POST", URL)
        busy = ApiError.answered(httpx.Response(429, headers={"Retry-After": "7"}, request=post), "x")
        reset = ApiError("lost", outcome_unknown=True)
        policy.pause(1, busy, sleeps)
        policy.pause(2, reset, sleeps)
        policy.pause(1, None, sleeps)
        assert sleeps == [7.0, 2.0, 1.0]
        later = ApiError.answered(httpx.Response(429, headers={"Retry-After": "3600"}, request=post), "later")
        with pytest.raises(ApiError) as err:
            policy.pause(1, later, sleeps)
        assert err.value is later and sleeps == [7.0, 2.0, 1.0]

    @pytest.mark.parametrize(
        ("value", "seconds"), [("3", 3.0), ("0.5", 0.5), ("-4", 0.0), ("", None), (None, None), ("soon", None)]
    )
    def test_retry_after_values(self, value: str | None, seconds: float | None) -> None:
        assert parse_retry_after(value) == seconds

    def test_retry_after_in_the_past_is_zero(self) -> None:
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0

    @pytest.mark.parametrize(
        "offset",
        [datetime.timedelta(0), datetime.timedelta(hours=2), datetime.timedelta(hours=-5), None],
        ids=["gmt", "plus-two-hours", "minus-five-hours", "minus-0000"],
    )
    def test_an_http_date_in_any_zone_is_read_as_the_instant_it_names(
        self, offset: datetime.timedelta | None
    ) -> None:
        """RFC 9110 writes GMT; older senders write a numeric zone, or `-0000` (no zone given,
        taken as UTC). The same instant, 30 s ahead, whichever way it is written."""
        when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30)
        if offset is None:
            text = email.utils.format_datetime(when.replace(tzinfo=None))  # naive: written with -0000
        else:
            text = email.utils.format_datetime(when.astimezone(datetime.timezone(offset)))
        seconds = parse_retry_after(text)
        assert seconds is not None and 27.0 <= seconds <= 30.0, text

    def test_a_retry_after_of_exactly_the_cap_is_waited_for(self) -> None:
        """The cap is the longest wait the policy accepts: equal to it still waits (transport and pause)."""
        server = Server(httpx.Response(503, headers={"Retry-After": "30"}), OK)
        sleeps = Sleeps()
        assert send(server, "GET", sleeps).status_code == 200
        assert server.seen == ["GET", "GET"] and sleeps == [30.0]
        post = httpx.Request("POST", URL)
        busy = ApiError.answered(httpx.Response(429, headers={"Retry-After": "30"}, request=post), "busy")
        POLICY.pause(1, busy, sleeps)
        assert sleeps == [30.0, 30.0]


class _Stream(httpx.SyncByteStream):
    """A response body that records whether it was closed (its connection given back)."""

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield b""

    def close(self) -> None:
        self.closed = True


class TestRepeating:
    def test_an_answer_that_is_repeated_is_closed_first(self) -> None:
        busy = _Stream()
        server = Server(httpx.Response(503, stream=busy), OK)
        assert send(server, "GET").status_code == 200
        assert busy.closed

    def test_a_request_without_the_policys_extensions_follows_the_default_policy(self) -> None:
        server = Server(httpx.Response(503), OK)
        with client(server) as http:
            assert http.get(URL).status_code == 200
        assert server.seen == ["GET", "GET"]

    def test_a_systems_hook_runs_before_each_repeat_of_its_call(self) -> None:
        """SPIRE's exec client forgets the container it resolved: a Swarm task may have been replaced."""
        op, hooked = failing_first(ApiError("gone"), ApiError("gone")), []
        assert POLICY.call(op, when=lambda e: True, sleep=Sleeps(), before_retry=lambda: hooked.append(1)) == "done"
        assert hooked == [1, 1]


class TestReadiness:
    def test_a_login_waits_past_the_attempts_until_the_server_is_up(self) -> None:
        server = Server(*[httpx.ConnectError("refused")] * 6, OK)
        ext = POLICY.extensions(lambda s: time.sleep(min(s, 0.01)), ready_timeout=30)
        with client(server) as http:
            assert http.post(URL, extensions={**ext, "login": True}).status_code == 200
        assert len(server.seen) == 7

    def test_a_login_gives_up_at_the_deadline(self) -> None:
        server = Server(httpx.ConnectError("refused"))
        start = time.monotonic()  # before the deadline is set from the clock
        ext = POLICY.extensions(lambda s: time.sleep(min(s, 0.01)), ready_timeout=0.3)
        with client(server) as http, pytest.raises(httpx.ConnectError):
            http.post(URL, extensions={**ext, "login": True})
        assert 0.3 <= time.monotonic() - start < 3 and len(server.seen) > POLICY.attempts

    def test_any_call_waits_for_a_server_that_is_not_listening_yet(self) -> None:
        server = Server(*[httpx.ConnectError("refused")] * 6, OK)
        ext = POLICY.extensions(lambda s: time.sleep(min(s, 0.01)), ready_timeout=30)
        with client(server) as http:
            assert http.get(URL, extensions=ext).status_code == 200
        assert len(server.seen) == 7

    def test_no_wait_runs_past_the_deadline(self) -> None:
        """A Retry-After within the cap is still cut to the readiness window that is left."""
        server = Server(httpx.Response(429, headers={"Retry-After": "20"}))
        asked: list[float] = []

        def sleep(seconds: float) -> None:
            asked.append(seconds)
            time.sleep(min(seconds, 0.01))

        ext = POLICY.extensions(sleep, ready_timeout=0.5)
        with client(server) as http:
            assert http.post(URL, extensions={**ext, "login": True}).status_code == 429
        assert len(asked) >= 2 and max(asked) <= 0.5

    def test_other_failures_of_other_calls_keep_their_attempts(self) -> None:
        server = Server(httpx.Response(503))
        with client(server) as http:
            assert http.get(URL, extensions=POLICY.extensions(Sleeps(), ready_timeout=30)).status_code == 503
        assert len(server.seen) == POLICY.attempts


# --- sessions ---------------------------------------------------------------------------------


class Api:
    """A server with logins: POST /login issues a token; other calls need a current token."""

    def __init__(self) -> None:
        self.logins: list[str] = []
        self.valid: set[str] = set()
        self.calls: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        self.refuse_all = False
        self.login_status = 200

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/login":
            if self.login_status != 200:
                return httpx.Response(self.login_status, json={"error": "login refused"})
            with self.lock:
                user = request.headers["x-user"]
                token = f"{user}-token-{len(self.logins)}"
                self.logins.append(user)
                self.valid.add(token)
            return httpx.Response(200, json={"token": token})
        token = request.headers.get("authorization")
        self.calls.append((request.url.path, token))
        if self.refuse_all or token not in self.valid:
            return httpx.Response(401)
        return httpx.Response(200, json={"token": token})

    def expire(self) -> None:
        self.valid.clear()


class TokenSession(Session):
    def __init__(self, api: Callable[[httpx.Request], httpx.Response], user: str) -> None:
        self.user = user
        super().__init__(httpx.MockTransport(api), base_url="https://api.test")

    @classmethod
    def of(cls, api: Api, user: str, password: str) -> TokenSession:
        return cls.shared(("https://api.test", str(id(api)), user, password), lambda: cls(api, user))

    def login(self, extensions: dict[str, Any], previous: Any) -> str:
        resp = self.http.request("POST", "/login", headers={"x-user": self.user}, auth=None, extensions=extensions)
        resp.raise_for_status()
        return str(resp.json()["token"])

    def apply(self, request: httpx.Request, credential: Any) -> None:
        request.headers["authorization"] = credential


@pytest.fixture
def api() -> Iterator[Api]:
    forget_sessions()
    yield Api()
    forget_sessions()


def call(api: Api, user: str = "admin", password: str = "pw") -> httpx.Response:  # noqa: S107 (a test value)
    """What one client instance (one provider call) does: find the process's session, send."""
    session = TokenSession.of(api, user, password)
    return session.http.get("/things", extensions=POLICY.extensions(Sleeps()))


class TestSessions:
    def test_client_instances_of_one_server_and_user_share_one_login(self, api: Api) -> None:
        for _ in range(5):
            assert call(api).status_code == 200
        assert api.logins == ["admin"]
        assert {token for _, token in api.calls} == {"admin-token-0"}

    def test_users_do_not_share_sessions(self, api: Api) -> None:
        call(api, "admin")
        call(api, "auditor")
        call(api, "admin")
        assert api.logins == ["admin", "auditor"]
        assert [token for _, token in api.calls] == ["admin-token-0", "auditor-token-1", "admin-token-0"]

    def test_another_password_is_another_session(self, api: Api) -> None:
        call(api, "admin", "pw")
        call(api, "admin", "other")
        assert api.logins == ["admin", "admin"]

    def test_a_401_logs_in_again_and_resends_once(self, api: Api) -> None:
        call(api)
        api.expire()
        assert call(api).status_code == 200
        assert api.logins == ["admin", "admin"]
        assert [t for _, t in api.calls] == ["admin-token-0", "admin-token-0", "admin-token-1"]

    def test_a_second_401_is_returned_not_looped(self, api: Api) -> None:
        api.refuse_all = True
        assert call(api).status_code == 401
        assert len(api.logins) == 2 and len(api.calls) == 2

    def test_concurrent_callers_wait_for_one_login(self, api: Api) -> None:
        answers: list[int] = []
        threads = [threading.Thread(target=lambda: answers.append(call(api).status_code)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == [200] * 8 and api.logins == ["admin"]

    def test_renew_logs_in_again_while_the_credential_is_still_good(self, api: Api) -> None:
        """Keycloak renews a token that is valid but does not know a realm made since."""
        call(api)
        TokenSession.of(api, "admin", "pw").renew(POLICY.extensions(Sleeps()))
        call(api)
        assert api.logins == ["admin", "admin"]
        assert [t for _, t in api.calls] == ["admin-token-0", "admin-token-1"]

    def test_a_failed_login_leaves_no_credential_to_send(self, api: Api) -> None:
        call(api)
        api.expire()
        api.login_status = 400
        with pytest.raises(httpx.HTTPStatusError):
            call(api)  # 401, then the login is refused
        api.login_status = 200
        api.calls.clear()
        assert call(api).status_code == 200
        assert api.calls == [("/things", "admin-token-1")]  # logged in first: neither the refused token nor none

    def test_a_redirect_is_returned_not_followed(self, api: Api) -> None:
        """Followed, it would carry the session to wherever it points: httpx drops `Authorization` on
        a redirect to another origin, but not a header such as Ziti's `zt-session`."""
        seen: list[str] = []

        def server(request: httpx.Request) -> httpx.Response:
            seen.append(str(request.url))
            if request.url.path == "/login":
                return api(request)
            return httpx.Response(302, headers={"Location": "https://elsewhere.test/collect"})

        session = TokenSession(server, "admin")
        resp = session.http.get("/things")
        session.close()
        assert resp.status_code == 302
        assert seen == ["https://api.test/login", "https://api.test/things"]

    def test_the_login_request_carries_no_credential_of_its_own_session(self, api: Api) -> None:
        seen: list[httpx.Request] = []

        def spy(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return api(request)

        session = TokenSession(spy, "admin")
        session.http.get("/things")
        session.close()
        assert [r.url.path for r in seen] == ["/login", "/things"]
        assert "authorization" not in seen[0].headers


def _refused_handshake() -> httpx.ConnectError:
    """What httpx raises when the server's certificate fails verification: no request byte left."""
    error = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]")
    error.__cause__ = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
    return error


class TestErrors:
    def test_an_api_error_is_an_httpx_status_error(self) -> None:
        resp = httpx.Response(503, headers={"Retry-After": "4"}, request=httpx.Request("POST", URL))
        err = ApiError.answered(resp, "busy", code="UNAVAILABLE")
        assert isinstance(err, httpx.HTTPStatusError) and err.response is resp and err.request is resp.request
        assert (err.status, err.method, err.url, err.code, err.retry_after) == (503, "POST", URL, "UNAVAILABLE", 4.0)

    @pytest.mark.parametrize(
        ("method", "status", "unknown"), [("POST", 503, True), ("POST", 500, True), ("POST", 429, False),
                                          ("POST", 400, False), ("PUT", 503, False), ("GET", 502, False)]
    )
    def test_an_answer_leaves_the_outcome_unknown_only_for_a_failed_post(self, method: str, status: int,
                                                                          unknown: bool) -> None:
        resp = httpx.Response(status, request=httpx.Request(method, URL))
        assert ApiError.answered(resp, "x").outcome_unknown is unknown

    @pytest.mark.parametrize(
        ("method", "error", "unknown"),
        [("POST", httpx.ReadError("reset"), True), ("POST", httpx.ConnectError("refused"), False),
         ("GET", httpx.ReadError("reset"), False), ("POST", _refused_handshake(), False)],
    )
    def test_no_answer_leaves_the_outcome_unknown_only_when_a_post_was_sent(
        self, method: str, error: httpx.TransportError, unknown: bool
    ) -> None:
        error.request = httpx.Request(method, URL)
        err = ApiError.unanswered(error, "x")
        assert err.outcome_unknown is unknown and err.status is None and err.method == method

    def test_an_error_without_an_exchange_names_no_request_and_claims_nothing_happened(self) -> None:
        """An error that does not say otherwise reports a failure, not a possibly applied write
        (which would make a create look the object up before anything else)."""
        err = ApiError("the answer could not be read")
        assert (err.status, err.method, err.url, err.response) == (None, "", "", None)
        assert err.outcome_unknown is False and ServerError("refused").outcome_unknown is False


class TestAbsent:
    """`unless_absent`: only a 404 to the object's own URL says it is not there."""

    PATH = "/things/abc"

    @staticmethod
    def failing(status: int, path: str) -> Callable[[], Any]:
        request = httpx.Request("GET", f"https://server.test{path}")
        error = ApiError.answered(httpx.Response(status, request=request), "x")

        def fetch() -> Any:
            raise error

        return fetch

    def test_a_404_to_the_objects_url_is_absence(self) -> None:
        assert unless_absent(self.failing(404, self.PATH), self.PATH) is None

    def test_the_answer_is_passed_through(self) -> None:
        assert unless_absent(lambda: {"id": "abc"}, self.PATH) == {"id": "abc"}

    @pytest.mark.parametrize(
        ("status", "path"),
        [(404, "/login"), (500, PATH), (503, PATH), (403, PATH), (400, "/things")],
        ids=["404-to-the-login", "500", "503", "403", "400-elsewhere"],
    )
    def test_any_other_failure_is_raised(self, status: int, path: str) -> None:
        """Read as absence, a refresh would drop an object that is still there from the state."""
        with pytest.raises(ApiError) as err:
            unless_absent(self.failing(status, path), self.PATH)
        assert err.value.status == status

    def test_no_answer_is_raised(self) -> None:
        def fetch() -> Any:
            raise ApiError("no answer")

        with pytest.raises(ApiError):
            unless_absent(fetch, self.PATH)


def test_the_transport_imports_no_system_package() -> None:
    """The kernel and the transport sit below the systems: importing one of them here would let an
    import circle form."""
    systems = {"keycloak", "ziti", "spire"}
    root = Path(__file__).resolve().parents[2] / "dynamic_providers" / "_transport"
    found = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.name}: {n}" for n in names if systems & set(n.split("."))]
    assert found == []
    assert len(list(root.glob("*.py"))) >= 4  # the walk did see the package



def test_a_provider_that_has_used_its_session_pickles_without_token_or_password(loopback: Any) -> None:
    """Sessions live in the provider process, never on the provider object the engine stores."""
    import base64

    from dynamic_providers._serialization import serialize_provider
    from dynamic_providers.ziti.provider import IdentityProvider
    from tests.fakes import ziti as fake_ziti

    fake, srv = fake_ziti.start(loopback)
    provider = IdentityProvider()
    props = {"name": "w", "external_id": "spiffe://t.test/w", "connection": fake_ziti.connection(srv, fake),
             "owner": fake_ziti.owner("w")}
    provider.create(provider.check({}, props).inputs)
    tokens = list(fake.sessions)
    assert len(tokens) == 1  # logged in, and the session is still the process's
    blob = base64.b64decode(serialize_provider(provider))
    assert tokens[0].encode() not in blob and fake.password.encode() not in blob
