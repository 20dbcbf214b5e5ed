"""Fake fidelity: the requests the Ziti provider makes, replayed against `tests/fakes/ziti.py` and
the REAL controller; status codes, error codes, error causes and response shapes must agree.
Each observation is normalised (ids, tokens and times differ between the two)."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest
from cryptography import x509

from dynamic_providers.ziti.client import ZitiApiError, ZitiClient
from dynamic_providers.ziti.models import ZitiConnection, sha1_fingerprint
from dynamic_providers.ziti.provider import verification_certificate
from tests.fakes import ziti as fake_ziti
from tests.fakes.ziti import make_ca
from tests.real._ziti import API, admin_client, connection, unique, ziti_section

ziti = pytest.fixture(scope="module")(ziti_section)
admin = pytest.fixture(scope="module")(admin_client)


def shape(resp: httpx.Response) -> dict[str, Any]:
    """What the provider relies on in an answer: status, error code and cause field, data keys."""
    out: dict[str, Any] = {"status": resp.status_code}
    body = resp.json() if resp.content.strip() else {}
    err = body.get("error")
    if err:
        out["code"] = err.get("code")
        cause = err.get("cause") or {}
        if isinstance(cause, dict) and cause.get("field"):
            out["cause.field"] = cause["field"]
            out["duplicate"] = "duplicate value" in str(cause.get("reason", ""))
    elif "data" in body:
        data = body["data"]
        out["data"] = sorted(data) if isinstance(data, dict) else f"list[{len(data)}]"
    return out


class Api:
    def __init__(self, conn: dict[str, Any]) -> None:
        ctx = ssl.create_default_context(cadata=conn["ca_bundle_pem"])
        self.http = httpx.Client(base_url=conn["url"] + API, verify=ctx, timeout=30)
        self.conn = conn
        r = self.http.post("/authenticate", params={"method": "password"},
                           json={"username": conn["username"], "password": conn["password"]})
        r.raise_for_status()
        self.http.headers["zt-session"] = r.json()["data"]["token"]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.http, name)


def replay(conn: dict[str, Any]) -> list[tuple[str, Any]]:
    """The provider's operations, in order; returns (step, normalised observation)."""
    api = Api(conn)
    obs: list[tuple[str, Any]] = []
    name = unique("fid")
    cert, key = make_ca(name)
    ca_body = {"name": name, "certPem": cert, "isAuthEnabled": True, "isAutoCaEnrollmentEnabled": False,
               "isOttCaEnrollmentEnabled": False, "identityRoles": ["spire"],
               "externalIdClaim": {"location": "SAN_URI", "matcher": "SCHEME", "matcherCriteria": "spiffe",
                                   "parser": "NONE", "parserCriteria": "", "index": 0},
               "tags": {"pulumi.stack": "identity-platform/test", "pulumi.name": name}}
    ctx = ssl.create_default_context(cadata=conn["ca_bundle_pem"])
    bad = httpx.post(f"{conn['url']}{API}/authenticate", params={"method": "password"}, verify=ctx,
                     json={"username": conn["username"], "password": "wrong-password"})
    obs.append(("login with a wrong password", shape(bad)))
    anon = httpx.get(f"{conn['url']}{API}/cas", verify=ctx)
    obs.append(("request without a session", shape(anon)))
    expired = httpx.get(f"{conn['url']}{API}/cas", headers={"zt-session": "00000000-0000-0000-0000-000000000000"},
                        verify=ctx)
    obs.append(("request with an unknown session", shape(expired)))

    r = api.post("/cas", json=ca_body)
    obs.append(("create CA", shape(r)))
    ca_id = r.json()["data"]["id"]
    obs.append(("create CA answers _links.self", "self" in r.json()["data"]["_links"]))
    r = api.get(f"/cas/{ca_id}")
    obs.append(("read CA", shape(r)))
    detail = r.json()["data"]
    obs.append(("read CA: unverified with a token", (detail["isVerified"], bool(detail["verificationToken"]))))
    obs.append(("read CA: claim as stored", detail["externalIdClaim"]))
    sha1 = sha1_fingerprint(x509.load_pem_x509_certificate(cert.encode()))
    obs.append(("read CA: fingerprint is sha1 of the cert", detail["fingerprint"] == sha1))
    fp = detail["fingerprint"]
    r = api.get("/cas", params={"filter": f'fingerprint="{fp}"', "limit": 500, "offset": 0})
    obs.append(("filter by fingerprint is honoured", [c["id"] == ca_id for c in r.json()["data"]]))
    r = api.get("/cas", params={"filter": f'name="{name}"', "limit": 500, "offset": 0})
    obs.append(("filter by name", (shape(r), [c["id"] == ca_id for c in r.json()["data"]],
                                   sorted(r.json()["meta"]["pagination"]))))
    r = api.get("/cas", params={"filter": 'name="no-such-ca-xyz"'})
    obs.append(("filter matching nothing", shape(r)))
    obs.append(("duplicate name", shape(api.post("/cas", json={**ca_body, "certPem": make_ca("x")[0]}))))
    obs.append(("duplicate certificate", shape(api.post("/cas", json={**ca_body, "name": name + "-2"}))))
    r = api.post("/cas", json={**ca_body, "name": name + "-3", "certPem": make_ca("y")[0],
                               "externalIdClaim": {**ca_body["externalIdClaim"], "matcherCriteria": ""}})
    obs.append(("SCHEME without criteria (accepted by 1.7.2)", shape(r)))
    if r.status_code == 201:
        api.delete(f"/cas/{r.json()['data']['id']}")

    obs.append(("SCHEME outside SAN_URI", shape(api.post("/cas", json={
        **ca_body, "name": name + "-4", "certPem": make_ca("z")[0],
        "externalIdClaim": {**ca_body["externalIdClaim"], "location": "COMMON_NAME"}}))))
    token = detail["verificationToken"]
    _, other_key = make_ca("other")
    wrong_key = verification_certificate(cert, other_key, token)
    r = api.post(f"/cas/{ca_id}/verify", content=wrong_key, headers={"Content-Type": "text/plain"})
    obs.append(("verify signed by another key", shape(r)))
    wrong_cn = verification_certificate(cert, key, "not-the-token")
    r = api.post(f"/cas/{ca_id}/verify", content=wrong_cn, headers={"Content-Type": "text/plain"})
    obs.append(("verify with a wrong CN", shape(r)))
    good = verification_certificate(cert, key, token)
    r = api.post(f"/cas/{ca_id}/verify", content=good, headers={"Content-Type": "text/plain"})
    obs.append(("verify", shape(r)))
    r = api.post(f"/cas/{ca_id}/verify", content=good, headers={"Content-Type": "text/plain"})
    obs.append(("verify again", shape(r)))
    obs.append(("verified", api.get(f"/cas/{ca_id}").json()["data"]["isVerified"]))
    r = api.get(f"/cas/{ca_id}/jwt")
    obs.append(("CA enrollment JWT", (r.status_code, r.text.count("."))))

    r = api.patch(f"/cas/{ca_id}", json={"identityRoles": ["a", "b"],
                                         "externalIdClaim": {**ca_body["externalIdClaim"], "parser": "SPLIT",
                                                             "parserCriteria": "/", "index": 1}})
    obs.append(("patch", (shape(r), r.json())))
    claim = api.get(f"/cas/{ca_id}").json()["data"]["externalIdClaim"]
    obs.append(("patch of the claim: parserCriteria", (claim["parser"], claim["parserCriteria"], claim["index"])))
    put_body = {k: v for k, v in ca_body.items() if k != "certPem"}
    obs.append(("put without a required field", shape(api.put(f"/cas/{ca_id}", json=put_body))))
    put_body["identityNameFormat"] = "[caName]-[commonName]"
    put_body["externalIdClaim"] = {**ca_body["externalIdClaim"], "parser": "SPLIT", "parserCriteria": "/"}
    r = api.put(f"/cas/{ca_id}", json=put_body)
    obs.append(("put", shape(r)))
    claim = api.get(f"/cas/{ca_id}").json()["data"]["externalIdClaim"]
    obs.append(("put of the claim: parserCriteria", (claim["parser"], claim["parserCriteria"])))
    r = api.patch(f"/cas/{ca_id}", json={"tags": {"only": "this"}})
    obs.append(("patch of tags replaces the map", api.get(f"/cas/{ca_id}").json()["data"]["tags"]))

    # identities by SPIFFE ID
    spiffe = f"spiffe://fidelity.test/{name}"
    ident = {"name": name, "type": "Default", "isAdmin": False, "externalId": spiffe, "authPolicyId": "default",
             "roleAttributes": ["x"]}
    r = api.post("/identities", json=ident)
    obs.append(("create identity", shape(r)))
    ident_id = r.json()["data"]["id"]
    r = api.get(f"/identities/{ident_id}")
    d = r.json()["data"]
    obs.append(("read identity", (d["externalId"] == spiffe, d["authPolicyId"], d["type"]["name"] if isinstance(
        d.get("type"), dict) else d.get("type"), d["roleAttributes"])))
    obs.append(("duplicate externalId", shape(api.post("/identities", json={**ident, "name": name + "-2"}))))
    obs.append(("unknown auth policy", shape(api.post("/identities", json={
        **ident, "name": name + "-3", "externalId": spiffe + "-3", "authPolicyId": "no-such-policy"}))))
    r = api.get("/identities", params={"filter": f'externalId="{spiffe}"'})
    obs.append(("filter identities by externalId", [i["id"] == ident_id for i in r.json()["data"]]))
    other = api.post("/identities", json={**ident, "name": name + "-5", "externalId": spiffe + "-5"})
    other_id = other.json()["data"]["id"]
    for step, change in (("update to a taken name", {"name": name, "roleAttributes": ["y"]}),
                         ("update to a taken externalId", {"externalId": spiffe, "roleAttributes": ["y"]})):
        for method in ("PATCH", "PUT"):
            body = change if method == "PATCH" else {**ident, "name": name + "-5", "externalId": spiffe + "-5",
                                                    **change}
            r = api.request(method, f"/identities/{other_id}", json=body)
            cause = (r.json().get("error") or {}).get("cause") or {}
            after = api.get(f"/identities/{other_id}").json()["data"]
            obs.append((f"{method} {step}: applies nothing", (
                shape(r), "duplicate value" in str(cause.get("message", "")),
                after["name"] == name + "-5", after["externalId"] == spiffe + "-5", after["roleAttributes"])))
    api.delete(f"/identities/{other_id}")

    # edge routers
    r = api.post("/edge-routers", json={"name": name, "roleAttributes": ["public"], "isTunnelerEnabled": False,
                                        "tags": {}})
    obs.append(("create edge router", shape(r)))
    er = api.get(f"/edge-routers/{r.json()['data']['id']}").json()["data"]
    obs.append(("edge router: unverified with a JWT", (er["isVerified"], er["enrollmentJwt"].count("."),
                                                        bool(er.get("enrollmentExpiresAt")))))
    r = api.post(f"/edge-routers/{er['id']}/re-enroll")
    obs.append(("re-enroll", shape(r)))

    # deletes
    for coll, id_ in (("identities", ident_id), ("edge-routers", er["id"]), ("cas", ca_id)):
        obs.append((f"delete {coll}", shape(api.delete(f"/{coll}/{id_}"))))
        obs.append((f"delete {coll} again", shape(api.delete(f"/{coll}/{id_}"))))
        obs.append((f"read deleted {coll}", shape(api.get(f"/{coll}/{id_}"))))
    return obs


def test_the_fake_answers_the_providers_requests_as_the_real_controller(ziti, loopback) -> None:
    fake, srv = fake_ziti.start(loopback)
    real = replay(connection(ziti))
    faked = replay(fake_ziti.connection(srv, fake))
    for (step, r), (_, f) in zip(real, faked, strict=True):
        print(f"{step}: real={r} fake={f}")
    diffs = [(step, r, f) for (step, r), (_, f) in zip(real, faked, strict=True) if r != f]
    assert diffs == [], "\n".join(f"{s}: real {r} / fake {f}" for s, r, f in diffs)


def test_a_wrong_key_fails_verification_with_the_controllers_code(ziti, admin) -> None:
    """The provider's verify step against the real Go verifier, with a key that is not the CA's
    (the engine path stops earlier: `check` refuses such a key)."""
    name = unique("wrongkey")
    cert, _ = make_ca(name)
    ca_id = admin.create("cas", {"name": name, "certPem": cert, "isAuthEnabled": True,
                                 "isAutoCaEnrollmentEnabled": False, "isOttCaEnrollmentEnabled": False,
                                 "identityRoles": []})
    try:
        token = admin.get(f"/cas/{ca_id}")["verificationToken"]  # type: ignore[index]
        with ZitiClient(ZitiConnection.model_validate(connection(ziti))) as c:
            with pytest.raises(ZitiApiError) as err:
                c.verify_ca(ca_id, verification_certificate(cert, make_ca("x")[1], token))
        assert err.value.status == 400 and err.value.code == "CERTIFICATE_FAILED_VALIDATION", err.value
        assert admin.get(f"/cas/{ca_id}")["isVerified"] is False  # type: ignore[index]
    finally:
        admin.delete("cas", ca_id)
