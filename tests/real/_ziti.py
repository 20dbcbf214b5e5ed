"""Shared pieces of the real-controller Ziti tests: the session's controller + router (from
`real_servers("ziti")`), a connection input for the providers, an admin client that looks at the
controller directly, and unique names (the controller is shared by every test of the session)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx

API = "/edge/management/v1"


class Admin:
    """The controller's management API as its admin (to arrange and observe; not the provider)."""

    def __init__(self, section: dict[str, Any]) -> None:
        import ssl

        self.section = section
        self.ctx = ssl.create_default_context(cadata=section["ca_pem"])
        self.http = httpx.Client(base_url=section["url"] + API, verify=self.ctx, timeout=30)
        self.login()

    def login(self) -> None:
        r = self.http.post("/authenticate", params={"method": "password"},
                           json={"username": self.section["admin_user"], "password": self.section["admin_password"]})
        r.raise_for_status()
        self.http.headers["zt-session"] = r.json()["data"]["token"]

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, path, **kw)

    def get(self, path: str) -> dict[str, Any] | None:
        r = self.http.get(path)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        data: dict[str, Any] = r.json()["data"]
        return data

    def find(self, collection: str, name: str, field: str = "name") -> list[dict[str, Any]]:
        """The entities whose `field` (default: name) is `name`."""
        r = self.http.get(f"/{collection}", params={"filter": f'{field}="{name}"', "limit": 500})
        r.raise_for_status()
        found: list[dict[str, Any]] = r.json()["data"]
        return found

    def create(self, collection: str, body: dict[str, Any]) -> str:
        r = self.http.post(f"/{collection}", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["data"]["id"])

    def patch(self, collection: str, id_: str, body: dict[str, Any]) -> None:
        r = self.http.patch(f"/{collection}/{id_}", json=body)
        assert r.status_code == 200, r.text

    def delete(self, collection: str, id_: str) -> int:
        return self.http.delete(f"/{collection}/{id_}").status_code

    def close(self) -> None:
        self.http.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def connection(section: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "url": section["url"],
        "username": section["admin_user"],
        "password": section["admin_password"],
        "ca_bundle_pem": section["ca_pem"],
        **overrides,
    }


def owner(name: str, stack: str = "identity-platform/test") -> dict[str, str]:
    return {"stack": stack, "name": name}


def ziti_section(real_servers: Any) -> dict[str, Any]:
    """Fixture body: the session's controller + router (`ziti = pytest.fixture(...)(ziti_section)`)."""
    section: dict[str, Any] = real_servers("ziti")
    return section


def admin_client(ziti: dict[str, Any]) -> Iterator[Admin]:
    """Fixture body: an admin client of the session's controller."""
    a = Admin(ziti)
    yield a
    a.close()
