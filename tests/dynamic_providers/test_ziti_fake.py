"""The loopback Ziti controller behaves like the real one where the providers depend on it.

Requests here are raw httpx calls (not the provider's client), so a provider bug cannot hide a
fake bug: sessions, the error envelope, unique indexes, empty update answers, paging, filters,
CA verification, and request bodies checked against the swagger definitions.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from tests.fakes import ziti as fake_ziti
from tests.fakes.ziti import API, ZitiController, ca_body, make_ca, validator

# The published swagger file, vendored (gzip) with its source in tests/specs/README.md.
FULL_SPEC = Path(__file__).resolve().parents[1] / "specs" / "ziti-edge-management-swagger.yml.gz"
FULL_SPEC_SHA256 = "02d25b99987ed3c4bd8ea702730c034c30d970174914dc38537d7ea3656c9c6e"


class Api:
    """A logged-in raw client against the fake."""

    def __init__(self, fake: ZitiController, srv: Any) -> None:
        self.fake = fake
        self.http = httpx.Client(base_url=srv.url + API, verify=_ctx(srv.ca_pem), timeout=10)
        self.token = self.login()

    def login(self) -> str:
        r = self.http.post(
            "/authenticate", params={"method": "password"}, json={"username": "admin", "password": "admin-password"}
        )
        assert r.status_code == 200, r.text
        return r.headers["zt-session"]

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"zt-session": self.token, **kw.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kw)


def _ctx(ca_pem: str | None) -> Any:
    import ssl

    return ssl.create_default_context(cadata=ca_pem)


@pytest.fixture
def api(loopback) -> Api:
    fake, srv = fake_ziti.start(loopback)
    return Api(fake, srv)


def _error(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert validator("apiErrorEnvelope").is_valid(body), body
    return dict(body["error"])


def _signed(token: str, ca_cert_pem: str, ca_key_pem: str, *, valid_for: datetime.timedelta | None = None) -> str:
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, token)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + (valid_for or datetime.timedelta(minutes=5)))
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class TestSpecFile:
    def test_vendored_definitions_are_the_swagger_definitions(self) -> None:
        text = gzip.decompress(FULL_SPEC.read_bytes())
        assert hashlib.sha256(text).hexdigest() == FULL_SPEC_SHA256, "not the published file"
        spec = yaml.load(text, Loader=yaml.CSafeLoader)
        assert fake_ziti.load_definitions() == spec["definitions"]

    def test_every_answer_of_the_fake_matches_its_detail_definition(self, api: Api) -> None:
        cert, _ = make_ca()
        ids = {
            "cas": api.call("POST", "/cas", json=ca_body(cert_pem=cert)).json()["data"]["id"],
            "external-jwt-signers": api.call(
                "POST",
                "/external-jwt-signers",
                json={
                    "name": "kc",
                    "enabled": True,
                    "issuer": "https://kc/realms/r",
                    "audience": "ziti",
                    "jwksEndpoint": "https://kc/realms/r/protocol/openid-connect/certs",
                },
            ).json()["data"]["id"],
            "identities": api.call(
                "POST", "/identities", json={"name": "w", "type": "Default", "isAdmin": False}
            ).json()["data"]["id"],
            "edge-routers": api.call("POST", "/edge-routers", json={"name": "r"}).json()["data"]["id"],
            "service-policies": api.call(
                "POST", "/service-policies", json={"name": "sp", "type": "Dial", "semantic": "AllOf"}
            ).json()["data"]["id"],
            "edge-router-policies": api.call(
                "POST", "/edge-router-policies", json={"name": "erp", "semantic": "AnyOf", "identityRoles": ["#all"]}
            ).json()["data"]["id"],
            "service-edge-router-policies": api.call(
                "POST", "/service-edge-router-policies", json={"name": "serp", "semantic": "AllOf"}
            ).json()["data"]["id"],
            "auth-policies": "default",
        }
        for collection, id_ in ids.items():
            detail = api.call("GET", f"/{collection}/{id_}").json()["data"]
            definition = fake_ziti.KINDS[collection].detail_def
            errors = [e.message for e in validator(definition).iter_errors(detail)]
            if collection == "service-policies":  # the real 1.7.2 answers null here, against its spec
                assert detail["postureCheckRoles"] is None
                errors.remove("None is not of type 'array'")
            assert errors == [], (collection, errors)
            listed = api.call("GET", f"/{collection}")
            assert listed.status_code == 200
            assert validator("meta").is_valid(listed.json()["meta"])


class TestSessions:
    def test_requests_without_or_with_an_expired_session_get_401(self, api: Api) -> None:
        r = api.http.get("/cas")
        assert r.status_code == 401 and _error(r)["code"] == "UNAUTHORIZED"
        assert 'error="missing"' in r.headers["WWW-Authenticate"]
        assert api.call("GET", "/cas").status_code == 200
        api.fake.expire_sessions()
        r = api.call("GET", "/cas")
        assert r.status_code == 401 and 'error="expired"' in r.headers["WWW-Authenticate"]

    def test_sessions_expire_after_idle_time(self, loopback) -> None:
        fake, srv = fake_ziti.start(loopback, session_timeout=0.2)
        api = Api(fake, srv)
        assert api.call("GET", "/cas").status_code == 200
        import time

        time.sleep(0.3)
        assert api.call("GET", "/cas").status_code == 401

    def test_bad_credentials_are_invalid_auth(self, api: Api) -> None:
        r = api.http.post(
            "/authenticate", params={"method": "password"}, json={"username": "admin", "password": "wrong-password"}
        )
        assert r.status_code == 401 and _error(r)["code"] == "INVALID_AUTH"

    def test_authenticated_answers_carry_the_expiry_headers(self, api: Api) -> None:
        r = api.call("GET", "/cas")
        assert r.headers["expiration-seconds"] == "1800" and r.headers["expires-at"].endswith("Z")


class TestBodiesAreValidatedAgainstTheSwagger:
    @pytest.mark.parametrize(
        ("path", "body", "field"),
        [
            ("/cas", {"name": "x"}, "certPem"),  # the first missing required property, as go-swagger names it
            (
                "/cas",
                {
                    "name": 1,
                    "certPem": "x",
                    "isAutoCaEnrollmentEnabled": False,
                    "isOttCaEnrollmentEnabled": False,
                    "isAuthEnabled": True,
                    "identityRoles": [],
                },
                "name",
            ),
            ("/identities", {"name": "w", "type": "Robot", "isAdmin": False}, "type"),
            ("/service-policies", {"name": "p", "type": "Dial", "semantic": "Most"}, "semantic"),
            ("/auth-policies", {"name": "p", "primary": {"cert": {"allowed": True}}, "secondary": {}}, "primary"),
            ("/edge-routers", {"name": "r", "tags": {"k": {"nested": 1}}}, "tags"),
        ],
    )
    def test_invalid_bodies_are_could_not_validate(self, api: Api, path: str, body: Any, field: str) -> None:
        r = api.call("POST", path, json=body)
        assert r.status_code == 400, r.text
        err = _error(r)
        assert err["code"] == "COULD_NOT_VALIDATE"
        assert err["cause"]["field"].startswith(field), err
        assert api.fake.rejected_bodies

    def test_nullable_fields_accept_null_and_unknown_fields_are_ignored(self, api: Api) -> None:
        r = api.call(
            "POST",
            "/identities",
            json={"name": "w", "type": "Default", "isAdmin": False, "externalId": None, "someFutureField": 1},
        )
        assert r.status_code == 201, r.text


class TestUniqueIndexes:
    def test_duplicate_name_is_could_not_validate_with_duplicate_value(self, api: Api) -> None:
        assert api.call("POST", "/cas", json=ca_body("spire")).status_code == 201
        r = api.call("POST", "/cas", json=ca_body("spire"))
        err = _error(r)
        assert (r.status_code, err["code"]) == (400, "COULD_NOT_VALIDATE")
        assert err["cause"] == {
            "field": "name",
            "reason": "duplicate value 'spire' in unique index on cas store",
            "value": "spire",
        }

    def test_same_certificate_twice_is_refused_on_cert_pem(self, api: Api) -> None:
        cert, _ = make_ca()
        first = api.call("POST", "/cas", json=ca_body("a", cert)).json()["data"]["id"]
        err = _error(api.call("POST", "/cas", json=ca_body("b", cert)))
        assert (
            err["cause"]["field"] == "certPem" and err["cause"]["reason"] == f"certificate already used as CA {first}"
        )

    def test_duplicate_external_id(self, api: Api) -> None:
        body = {"type": "Default", "isAdmin": False, "externalId": "spiffe://td/w"}
        assert api.call("POST", "/identities", json={"name": "a", **body}).status_code == 201
        err = _error(api.call("POST", "/identities", json={"name": "b", **body}))
        assert err["cause"]["field"] == "externalId" and "duplicate value" in err["cause"]["reason"]


class TestUpdates:
    def test_patch_and_put_answer_an_empty_envelope_and_ignore_cert_pem(self, api: Api) -> None:
        cert, _ = make_ca()
        other, _ = make_ca("other")
        id_ = api.call("POST", "/cas", json=ca_body("spire", cert)).json()["data"]["id"]
        r = api.call("PATCH", f"/cas/{id_}", json={"identityRoles": ["a", "b"], "certPem": other})
        assert r.status_code == 200 and r.json() == {"data": {}, "meta": {}}
        put = {k: v for k, v in ca_body("renamed", other).items()}
        put["identityNameFormat"] = "[caName]-[commonName]"
        r = api.call("PUT", f"/cas/{id_}", json=put)
        assert r.status_code == 200 and r.json()["data"] == {}
        detail = api.call("GET", f"/cas/{id_}").json()["data"]
        assert detail["name"] == "renamed" and detail["certPem"] == cert
        assert detail["identityRoles"] == ["spire"]  # PUT replaced the PATCHed roles

    def test_patch_replaces_tags_as_a_whole(self, api: Api) -> None:
        id_ = api.call("POST", "/edge-routers", json={"name": "r", "tags": {"a": "1", "b": "2"}}).json()["data"]["id"]
        api.call("PATCH", f"/edge-routers/{id_}", json={"tags": {"c": "3"}})
        assert api.call("GET", f"/edge-routers/{id_}").json()["data"]["tags"] == {"c": "3"}

    def test_external_id_claim_rules_are_enforced(self, api: Api) -> None:
        claim = {
            "location": "COMMON_NAME",
            "matcher": "SCHEME",
            "matcherCriteria": "spiffe",
            "parser": "NONE",
            "parserCriteria": "",
            "index": 0,
        }
        err = _error(api.call("POST", "/cas", json=ca_body(externalIdClaim=claim)))
        # As the real 1.7.2 controller: 400, a nested cause without a field.
        assert err["code"] == "REFERENCED_ENTITY_NOT_FOUND"  # sic
        assert "scheme matcher can only be used with URI" in err["cause"]["message"]
        lax = {**claim, "location": "SAN_URI", "matcherCriteria": "", "parser": "SPLIT", "index": -1}
        r = api.call("POST", "/cas", json=ca_body(name="lax", externalIdClaim=lax))
        assert r.status_code == 201, "1.7.2 stores claims that can never match; check() refuses them"


class TestLists:
    def test_default_limit_10_max_500_and_offset(self, api: Api) -> None:
        for i in range(612):
            api.fake.put_entity(
                "identities",
                {
                    "name": f"id-{i:04d}",
                    "type": "Default",
                    "isAdmin": False,
                    "authPolicyId": "default",
                    "roleAttributes": [],
                },
            )
        page = api.call("GET", "/identities").json()
        assert len(page["data"]) == 10 and page["meta"]["pagination"] == {"limit": 10, "offset": 0, "totalCount": 612}
        page = api.call("GET", "/identities", params={"limit": 1000, "offset": 500}).json()
        assert page["meta"]["pagination"]["limit"] == 500 and len(page["data"]) == 112
        assert page["data"][0]["name"] == "id-0500"

    def test_filters(self, api: Api) -> None:
        api.call("POST", "/edge-routers", json={"name": 'a"b'})
        api.call("POST", "/edge-routers", json={"name": "c"})
        r = api.call("GET", "/edge-routers", params={"filter": 'name = "a\\"b"'})
        assert [e["name"] for e in r.json()["data"]] == ['a"b']
        r = api.call("GET", "/edge-routers", params={"filter": 'name = "c" and isVerified = false'})
        assert [e["name"] for e in r.json()["data"]] == ["c"]
        r = api.call("GET", "/edge-routers", params={"filter": "name ~~ c"})
        assert r.status_code == 400 and _error(r)["code"] == "INVALID_FILTER"


class TestCaVerification:
    @pytest.fixture
    def ca(self, api: Api) -> tuple[str, str, str, str]:
        cert, key = make_ca()
        id_ = api.call("POST", "/cas", json=ca_body("spire", cert)).json()["data"]["id"]
        detail = api.call("GET", f"/cas/{id_}").json()["data"]
        assert detail["isVerified"] is False
        return id_, detail["verificationToken"], cert, key

    def _verify(self, api: Api, id_: str, pem: str, content_type: str = "text/plain") -> httpx.Response:
        return api.call("POST", f"/cas/{id_}/verify", content=pem, headers={"Content-Type": content_type})

    def test_signed_by_the_ca_with_the_token_verifies_once(self, api: Api, ca) -> None:
        id_, token, cert, key = ca
        r = self._verify(api, id_, _signed(token, cert, key))
        assert r.status_code == 200 and r.json() == {"data": {}, "meta": {}}
        assert api.call("GET", f"/cas/{id_}").json()["data"]["isVerified"] is True
        again = self._verify(api, id_, _signed(token, cert, key))
        assert again.status_code == 409 and _error(again)["code"] == "CA_ALREADY_VERIFIED"

    def test_wrong_common_name(self, api: Api, ca) -> None:
        id_, _, cert, key = ca
        r = self._verify(api, id_, _signed("not-the-token", cert, key))
        assert r.status_code == 400 and _error(r)["code"] == "INVALID_COMMON_NAME"

    def test_signed_by_another_key(self, api: Api, ca) -> None:
        id_, token, _, _ = ca
        other_cert, other_key = make_ca("impostor")
        r = self._verify(api, id_, _signed(token, other_cert, other_key))
        assert r.status_code == 400 and _error(r)["code"] == "CERTIFICATE_FAILED_VALIDATION"

    def test_expired_at_the_controllers_clock(self, api: Api, ca) -> None:
        id_, token, cert, key = ca
        api.fake.clock_skew = datetime.timedelta(hours=1)
        r = self._verify(api, id_, _signed(token, cert, key))
        assert r.status_code == 400 and _error(r)["code"] == "CERTIFICATE_FAILED_VALIDATION"

    def test_only_the_first_pem_block_counts_and_must_be_a_certificate(self, api: Api, ca) -> None:
        id_, token, cert, key = ca
        r = self._verify(api, id_, key + _signed(token, cert, key))
        assert r.status_code == 400 and _error(r)["code"] == "EXPECTED_PEM_CERTIFICATE"
        r = self._verify(api, id_, "")
        assert _error(r)["code"] == "COULD_NOT_PARSE_BODY"
        r = self._verify(api, id_, _signed(token, cert, key), content_type="application/json")
        assert r.status_code == 415

    def test_enrollment_jwt_and_cacerts(self, api: Api, ca) -> None:
        id_ = ca[0]
        r = api.call("GET", f"/cas/{id_}/jwt")
        assert r.headers["content-type"] == "application/jwt"
        claims = json.loads(base64.urlsafe_b64decode(r.text.split(".")[1] + "=="))
        assert claims["em"] == "ca" and claims["sub"] == id_
        der = base64.b64decode(api.http.get(httpx.URL(str(api.http.base_url)).join("/.well-known/est/cacerts")).text)
        certs = pkcs7.load_der_pkcs7_certificates(der)
        assert certs[0].public_bytes(serialization.Encoding.PEM).decode() == api.fake.tls_ca_pem


class TestServerRules:
    def test_referenced_auth_policy_cannot_be_deleted(self, api: Api) -> None:
        pol = api.call(
            "POST",
            "/auth-policies",
            json={
                "name": "p",
                "primary": api.fake.entities["auth-policies"]["default"]["primary"],
                "secondary": {"requireTotp": False, "requireExtJwtSigner": None},
            },
        ).json()["data"]["id"]
        api.call("POST", "/identities", json={"name": "w", "type": "Default", "isAdmin": False, "authPolicyId": pol})
        r = api.call("DELETE", f"/auth-policies/{pol}")
        assert r.status_code == 409

    def test_role_rules(self, api: Api) -> None:
        r = api.call(
            "POST", "/identities", json={"name": "w", "type": "Default", "isAdmin": False, "roleAttributes": ["#web"]}
        )
        assert _error(r)["cause"]["reason"] == "role attributes may not be prefixed with #"
        r = api.call(
            "POST", "/edge-router-policies", json={"name": "p", "semantic": "AllOf", "identityRoles": ["@nope"]}
        )
        assert _error(r)["cause"]["reason"] == "no identities found with the given ids"

    def test_signer_needs_exactly_one_key_source(self, api: Api) -> None:
        base = {"name": "kc", "enabled": True, "issuer": "https://kc/realms/r", "audience": "ziti"}
        assert (
            "jwksEndpoint or certPem" in _error(api.call("POST", "/external-jwt-signers", json=base))["cause"]["reason"]
        )
