"""The platform's identity chain, driven the way its real clients drive it.

Two ways into OpenZiti, each ending at the identity the controller picks for the caller:

* a **workload** gets its X.509 SVID from the SPIRE agent's Workload API, with the real
  `spire-agent api fetch x509` as the workload process (so the agent attests a real process by its
  uid), and logs in to the Ziti client API with that SVID as its TLS client certificate
  (`method=cert`); the controller matches it by the SPIFFE ID in its URI SAN (`externalIdClaim`);
* a **user** exists in the Keycloak realm and logs in as a person does, through the public
  client's authorization-code + PKCE (S256) flow over HTTP like a browser, then presents the access
  token to the Ziti client API (`method=ext-jwt`); the controller matches it by the `email` claim.

The functions are deliberately independent of how the servers were made (the provider tests of
tests/real/test_chain.py, or a real `pulumi up` of the whole program): they take URLs, CA PEMs and
credentials. Every failure raises `ChainError` naming the step and carrying the server's answer;
a login the server refuses raises `LoginRefusedError` with its status and body, so a test can assert
the refusal itself (a negative that proves the positive is not vacuous).
"""

from __future__ import annotations

import html
import json
import ssl
import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from authlib.common.security import generate_token  # type: ignore[import-untyped]
from authlib.integrations.base_client import OAuthError  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tenacity import Retrying, retry_if_exception, retry_if_exception_type, stop_after_delay, wait_exponential

from dynamic_providers.keycloak.models import is_loopback_host

with warnings.catch_warnings():
    # authlib 1.9 prefers the `httpx2` fork and warns once when it falls back to httpx, which is
    # the project's pinned HTTP client (requirements.txt) and works as it always did.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client  # type: ignore[import-untyped]

CLIENT_API = "/edge/client/v1"
SVID_SYNC_SECONDS = 90.0
"""How long a new registration entry may take to reach the agent: the agent pulls its entries
from the server on its sync interval (observed: about 5-15 s with the pinned SPIRE's defaults)."""


class ChainError(RuntimeError):
    """A step of the chain failed; the message names the step and the server's answer."""


class LoginRefusedError(ChainError):
    """The Ziti controller answered a login with something other than 200 (status, body and
    WWW-Authenticate as it answered; the reason is only in its log: the API says INVALID_AUTH)."""

    def __init__(self, what: str, status: int, body: str, www_authenticate: str | None = None) -> None:
        detail = f"{what}: HTTP {status}"
        if www_authenticate:
            detail += f" (WWW-Authenticate: {www_authenticate})"
        super().__init__(f"{detail}: {body[:500]}")
        self.status = status
        self.body = body
        self.www_authenticate = www_authenticate


# --- SPIRE: a workload's X.509 SVID --------------------------------------------------------------


@dataclass(frozen=True)
class Svid:
    """One X.509 SVID as the Workload API handed it to the workload.

    `chain_pem` is the leaf followed by the intermediates SPIRE adds (its own server CA, signed by
    the upstream root): a peer that trusts only the root, like a Ziti third-party CA, needs them.
    `bundle_pem` is the trust domain's bundle (the upstream root for `UpstreamAuthority "disk"`)."""

    spiffe_id: str
    chain_pem: str
    key_pem: str
    bundle_pem: str
    chain_path: Path
    key_path: Path
    bundle_path: Path

    @property
    def certificates(self) -> list[x509.Certificate]:
        """Leaf first, then the intermediates, as the agent wrote them."""
        return x509.load_pem_x509_certificates(self.chain_pem.encode())

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]

    def leaf_only(self, directory: Path) -> Svid:
        """The same SVID without its intermediates (files under `directory`): what a workload that
        drops the chain presents. For negative tests."""
        directory.mkdir(parents=True, exist_ok=True)
        pem = self.leaf.public_bytes(serialization.Encoding.PEM).decode()
        chain_path = directory / "leaf.pem"
        chain_path.write_text(pem)
        key_path = directory / "leaf.key"
        key_path.touch(mode=0o600)
        key_path.write_text(self.key_pem)
        return Svid(self.spiffe_id, pem, self.key_pem, self.bundle_pem, chain_path, key_path, self.bundle_path)


class _NotYetError(ChainError):
    """The agent has no (matching) SVID for the caller yet: retried until the entry syncs."""


def spiffe_id_of(cert: x509.Certificate) -> str | None:
    """The SPIFFE ID in a certificate's URI SAN (the one a Ziti `SAN_URI`/`SCHEME spiffe` claim reads)."""
    try:
        uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.UniformResourceIdentifier
        )
    except x509.ExtensionNotFound:
        return None
    return next((u for u in uris if u.startswith("spiffe://")), None)


def _fetch_once(bin_dir: Path, agent_socket: Path, out_dir: Path, spiffe_id: str | None, timeout: float) -> Svid:
    for stale in [*out_dir.glob("svid.*"), *out_dir.glob("bundle.*"), *out_dir.glob("federated_bundle.*")]:
        stale.unlink()
    argv = [str(bin_dir / "spire-agent"), "api", "fetch", "x509", "-socketPath", str(agent_socket),
            "-write", str(out_dir), "-timeout", f"{max(1, int(timeout))}s"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 15, check=False)
    except subprocess.TimeoutExpired as e:
        raise _NotYetError(f"`spire-agent api fetch x509` on {agent_socket}: no answer in {timeout + 15:.0f} s") from e
    answer = (done.stderr.strip() or done.stdout.strip())[-800:]
    if done.returncode != 0:
        # "no identity issued" (PermissionDenied) until an entry for this process reaches the agent.
        raise _NotYetError(f"`spire-agent api fetch x509` on {agent_socket} exited {done.returncode}: {answer}")
    found: list[Svid] = []
    for index in range(len(list(out_dir.glob("svid.*.pem")))):
        chain_path, key_path = out_dir / f"svid.{index}.pem", out_dir / f"svid.{index}.key"
        bundle_path = out_dir / f"bundle.{index}.pem"
        chain_pem = chain_path.read_text()
        sid = spiffe_id_of(x509.load_pem_x509_certificates(chain_pem.encode())[0])
        if sid is None:
            raise ChainError(f"{chain_path}: the SVID's leaf has no spiffe:// URI SAN")
        found.append(Svid(sid, chain_pem, key_path.read_text(), bundle_path.read_text(),
                          chain_path, key_path, bundle_path))
    if not found:
        raise _NotYetError(f"`spire-agent api fetch x509` wrote no SVID into {out_dir}: {answer}")
    if spiffe_id is None:
        return found[0]
    for svid in found:
        if svid.spiffe_id == spiffe_id:
            return svid
    raise _NotYetError(f"the agent issued {sorted(s.spiffe_id for s in found)} to this process, not {spiffe_id} (yet)")


def fetch_x509_svid(bin_dir: str | Path, agent_socket: str | Path, out_dir: str | Path, *,
                    spiffe_id: str | None = None, within: float = SVID_SYNC_SECONDS,
                    call_timeout: float = 10.0) -> Svid:
    """The X.509 SVID the SPIRE agent issues to this process's uid, fetched by the real
    `spire-agent api fetch x509 -write` (the workload process: the agent attests *it*).

    A new registration entry reaches the agent only on its next sync with the server, so the fetch
    is retried (exponential backoff, `within` seconds at most) until the agent answers and, when
    `spiffe_id` is given, until that SPIFFE ID is among the SVIDs it issued (every entry whose
    selectors match the process is issued; `svid.N.pem` in `out_dir` per SVID). Raises
    `ChainError` with the agent's last answer when it never does."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)  # the CLI does not create it
    retrying = Retrying(
        retry=retry_if_exception_type(_NotYetError),
        stop=stop_after_delay(within),
        wait=wait_exponential(multiplier=0.25, max=3),
        reraise=True,
    )
    try:
        svid: Svid = retrying(_fetch_once, Path(bin_dir), Path(agent_socket), out, spiffe_id, call_timeout)
    except _NotYetError as e:
        raise ChainError(f"no SVID{f' for {spiffe_id}' if spiffe_id else ''} from the agent within {within:.0f} s: "
                         f"{e}") from e
    return svid


# --- Ziti: the client API logins -------------------------------------------------------------------


def _ziti_answer(resp: httpx.Response, what: str) -> dict[str, Any]:
    if resp.status_code != 200:
        raise LoginRefusedError(what, resp.status_code, resp.text, resp.headers.get("www-authenticate"))
    try:
        data: dict[str, Any] = resp.json()["data"]
    except (ValueError, KeyError) as e:
        raise ChainError(f"{what}: HTTP 200 without a JSON `data` object: {resp.text[:500]}") from e
    return data


def _refused_401(error: BaseException) -> bool:
    return isinstance(error, LoginRefusedError) and error.status == 401


def _login(attempt: Callable[[], dict[str, Any]], within: float) -> dict[str, Any]:
    """One login, or (`within` > 0) retried while the controller answers 401, for `within` seconds
    at most; the last refusal is raised as it came."""
    if within <= 0:
        return attempt()
    retrying = Retrying(retry=retry_if_exception(_refused_401), stop=stop_after_delay(within),
                        wait=wait_exponential(multiplier=0.1, max=2), reraise=True)
    data: dict[str, Any] = retrying(attempt)
    return data


def ziti_cert_login(ziti_url: str, ca_pem: str, svid: Svid, *, within: float = 0.0,
                    timeout: float = 30.0) -> dict[str, Any]:
    """`POST /edge/client/v1/authenticate?method=cert` with the SVID (leaf + intermediates) as the
    TLS client certificate, as a Ziti SDK in the workload does. Returns the answer's `data` (the API
    session: `token`, `identity.id`, `authQueries`...).

    The controller verifies the chain against its third-party CA pool (only the registered root
    is in it, so the intermediates must be sent) and logs in the identity whose `externalId` is the
    value its `externalIdClaim` extracts. Raises `LoginRefusedError` (401) otherwise. `within` > 0
    retries a 401 that long, for a CA or identity made moments ago (the controller refreshes its
    trust pool from change events); leave it 0 to see a refusal at once."""
    ctx = ssl.create_default_context(cadata=ca_pem)
    ctx.load_cert_chain(certfile=str(svid.chain_path), keyfile=str(svid.key_path))
    url = f"{ziti_url.rstrip('/')}{CLIENT_API}/authenticate"

    def attempt() -> dict[str, Any]:
        with httpx.Client(verify=ctx, timeout=timeout) as http:
            resp = http.post(url, params={"method": "cert"}, json={})
        return _ziti_answer(resp, f"Ziti cert login as {svid.spiffe_id} at {ziti_url}")

    return _login(attempt, within)


def ziti_jwt_login(ziti_url: str, ca_pem: str, token: str, *, within: float = 0.0,
                   timeout: float = 30.0) -> dict[str, Any]:
    """`POST /edge/client/v1/authenticate?method=ext-jwt` with `Authorization: Bearer <token>`, as a
    tunneler does after its OIDC login. Returns the answer's `data`.

    The controller finds the external JWT signer by the token's `iss` (and `kid`), checks the
    signature against the signer's JWKS and the `aud` against its audience, then logs in the
    identity whose `externalId` (with `useExternalId`) equals the signer's `claimsProperty` claim,
    if that identity's auth policy admits the signer. Raises `LoginRefusedError` (401) otherwise.

    `within` > 0 retries a 401 that long: the pinned controller (1.7.2) loads a new signer into its
    ext-JWT authenticator from an *asynchronous* create event (`EntityCreatedAsync`, after fetching
    the JWKS), so a login right after `POST /external-jwt-signers` returned may find no signer for
    the issuer ("issuer not found" in its log). Leave it 0 to see a refusal at once."""
    ctx = ssl.create_default_context(cadata=ca_pem)
    url = f"{ziti_url.rstrip('/')}{CLIENT_API}/authenticate"

    def attempt() -> dict[str, Any]:
        with httpx.Client(verify=ctx, timeout=timeout) as http:
            resp = http.post(url, params={"method": "ext-jwt"}, headers={"Authorization": f"Bearer {token}"}, json={})
        return _ziti_answer(resp, f"Ziti ext-jwt login at {ziti_url}")

    return _login(attempt, within)


# --- Keycloak: a user, and the user's login -------------------------------------------------------------


def _verify(ca_pem: str | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cadata=ca_pem) if ca_pem else True


def _admin_token(http: httpx.Client, base: str, admin_user: str, admin_password: str) -> str:
    resp = http.post(f"{base}/realms/master/protocol/openid-connect/token",
                     data={"grant_type": "password", "client_id": "admin-cli",
                           "username": admin_user, "password": admin_password})
    if resp.status_code != 200:
        raise ChainError(f"Keycloak admin login as {admin_user!r} at {base}: HTTP {resp.status_code}: "
                         f"{resp.text[:500]}")
    return str(resp.json()["access_token"])


def create_keycloak_user(keycloak_url: str, admin_user: str, admin_password: str, realm: str, username: str,
                         email: str, password: str, ca_pem: str | None = None, *, first_name: str = "Test",
                         last_name: str | None = None, timeout: float = 30.0) -> str:
    """Create an enabled user with a verified `email` and a permanent password through the admin
    REST API, as an operator's user would already exist (the program manages no users). Returns
    the user's id.

    First and last name are set because Keycloak's default user profile requires them: without
    them the first browser login stops at the "update your account" page instead of returning a
    code. The email is marked verified for the same reason (a realm may require verification)."""
    base = keycloak_url.rstrip("/")
    with httpx.Client(verify=_verify(ca_pem), timeout=timeout) as http:
        token = _admin_token(http, base, admin_user, admin_password)
        rep = {
            "username": username,
            "email": email,
            "emailVerified": True,
            "enabled": True,
            "firstName": first_name,
            "lastName": last_name or username,
            "requiredActions": [],
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        }
        resp = http.post(f"{base}/admin/realms/{quote(realm, safe='')}/users", json=rep,
                         headers={"Authorization": f"Bearer {token}"})
    if resp.status_code != 201:
        raise ChainError(f"Keycloak: creating user {username!r} in realm {realm!r}: HTTP {resp.status_code}: "
                         f"{resp.text[:500]}")
    return resp.headers["Location"].rstrip("/").rsplit("/", 1)[-1]


def delete_keycloak_user(keycloak_url: str, admin_user: str, admin_password: str, realm: str, user_id: str,
                         ca_pem: str | None = None, *, timeout: float = 30.0) -> None:
    """Delete a user made by `create_keycloak_user` (gone already is fine)."""
    base = keycloak_url.rstrip("/")
    with httpx.Client(verify=_verify(ca_pem), timeout=timeout) as http:
        token = _admin_token(http, base, admin_user, admin_password)
        resp = http.delete(f"{base}/admin/realms/{quote(realm, safe='')}/users/{user_id}",
                           headers={"Authorization": f"Bearer {token}"})
    if resp.status_code not in (204, 404):
        raise ChainError(f"Keycloak: deleting user {user_id} of realm {realm!r}: HTTP {resp.status_code}: "
                         f"{resp.text[:500]}")


def _browser_cookie_rule(jar: CookieJar) -> Callable[[httpx.Response], None]:
    """A response hook: `Secure` cookies set by a loopback `http://` origin are sent back to it, as
    browsers do (a loopback origin is "potentially trustworthy"); http.cookiejar sends `Secure`
    cookies over https only. Keycloak 26 always marks its `SameSite=None` login cookies
    (AUTH_SESSION_ID, KC_RESTART) `Secure`, also on the dev stack's plain-http loopback URL (a
    browser keeps them there because loopback is a secure context): without this the login form's
    POST arrives without them and Keycloak answers "Restart login cookie not found". (httpx copies
    the client's jar into a default-policy jar for every request, so a custom CookiePolicy would
    not survive; the cookies themselves are marked instead.)"""

    def hook(response: httpx.Response) -> None:
        url = response.request.url
        if url.scheme == "http" and is_loopback_host(url.host):
            for cookie in jar:
                if cookie.secure and is_loopback_host(cookie.domain):
                    cookie.secure = False

    return hook


class _LoginForm(HTMLParser):
    """The first `<form>` of a page that has a password field: its action and its inputs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[str, dict[str, str]]] = []
        self._inside = False
        self.errors: list[str] = []
        self._error_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append((a.get("action", ""), {}))
            self._inside = True
        elif tag == "input" and self._inside and a.get("name"):
            self.forms[-1][1][a["name"]] = a.get("value", "")
        if self._error_depth or "error" in a.get("id", "") or "alert-error" in a.get("class", ""):
            self._error_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False
        if self._error_depth:
            self._error_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._error_depth and data.strip():
            self.errors.append(data.strip())

    def login_form(self) -> tuple[str, dict[str, str]] | None:
        return next((f for f in self.forms if "password" in f[1]), None)


def _page_summary(page: httpx.Response) -> str:
    parser = _LoginForm()
    parser.feed(page.text)
    if parser.errors:
        return "; ".join(dict.fromkeys(parser.errors))
    title = page.text.split("<title>", 1)[-1].split("</title>", 1)[0] if "<title>" in page.text else ""
    return f"a page titled {html.unescape(title).strip()!r}" if title else page.text[:300]


def keycloak_pkce_login(keycloak_url: str, realm: str, client_id: str, redirect_uri: str, username: str,
                        password: str, ca_pem: str | None = None, *, scope: str = "openid email",
                        timeout: float = 30.0) -> str:
    """Log `username` in through the public client's authorization-code + PKCE (S256) flow, as a
    browser and a tunneler do, and return the access token.

    1. The realm's OpenID discovery document gives the authorization and token endpoints.
    2. GET the authorization endpoint (authlib makes the S256 challenge and the state); Keycloak
       answers with its login page; the login form (action + hidden inputs) is read from the HTML.
    3. POST the username and password to the form's action, with the page's cookies. Keycloak
       answers 302 to `redirect_uri?code=...&state=...`; the redirect is *not* followed (nothing
       listens on the tunneler's loopback callback), the code is taken from the Location.
    4. Exchange the code at the token endpoint with the verifier (no client secret: public client).

    Raises `ChainError` with Keycloak's answer at the step that failed (a wrong password shows
    the login page again with its error message; a bad client or redirect URI an error page)."""
    base = keycloak_url.rstrip("/")
    discovery_url = f"{base}/realms/{quote(realm, safe='')}/.well-known/openid-configuration"
    verifier = generate_token(64)
    with OAuth2Client(client_id=client_id, redirect_uri=redirect_uri, scope=scope, code_challenge_method="S256",
                      token_endpoint_auth_method="none", verify=_verify(ca_pem), timeout=timeout,
                      follow_redirects=False) as client:
        client.event_hooks["response"].append(_browser_cookie_rule(client.cookies.jar))
        resp = client.request("GET", discovery_url, withhold_token=True)
        if resp.status_code != 200:
            raise ChainError(f"Keycloak discovery {discovery_url}: HTTP {resp.status_code}: {resp.text[:300]}")
        discovery = resp.json()
        auth_url, state = client.create_authorization_url(discovery["authorization_endpoint"],
                                                          code_verifier=verifier)
        page = client.request("GET", auth_url, withhold_token=True)
        if page.status_code != 200:
            raise ChainError(f"Keycloak authorization request for client {client_id!r} in realm {realm!r}: "
                             f"HTTP {page.status_code} (Location: {page.headers.get('location')}): "
                             f"{_page_summary(page)}")
        parser = _LoginForm()
        parser.feed(page.text)
        form = parser.login_form()
        if form is None:
            raise ChainError(f"Keycloak authorization page for client {client_id!r} has no login form: "
                             f"{_page_summary(page)}")
        action, fields = form
        fields.update({"username": username, "password": password})
        answer = client.request("POST", action, data=fields, withhold_token=True)
        if answer.status_code not in (302, 303):
            raise ChainError(f"Keycloak login of {username!r} in realm {realm!r}: HTTP {answer.status_code}, "
                             f"no redirect to {redirect_uri}: {_page_summary(answer)}")
        location = answer.headers.get("location", "")
        if not location.startswith(redirect_uri):
            raise ChainError(f"Keycloak login of {username!r} redirected to {location!r}, not to {redirect_uri}")
        query = parse_qs(urlsplit(location).query)
        if "error" in query:
            raise ChainError(f"Keycloak login of {username!r} redirected with error {query['error'][0]!r}: "
                             f"{query.get('error_description', [''])[0]}")
        if query.get("state", [""])[0] != state:
            raise ChainError(f"Keycloak redirected with state {query.get('state')}, the request sent {state!r}")
        try:
            token: dict[str, Any] = client.fetch_token(discovery["token_endpoint"], authorization_response=location,
                                                       state=state, code_verifier=verifier)
        except OAuthError as e:
            raise ChainError(f"Keycloak token exchange for client {client_id!r}: {e.error}: {e.description}") from e
    if "access_token" not in token:
        raise ChainError(f"Keycloak token response without access_token: {json.dumps(sorted(token))}")
    return str(token["access_token"])


def jwt_claims(token: str) -> dict[str, Any]:
    """The unverified claims of a JWT (for assertions and messages, never for trust decisions)."""
    import base64

    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims
