"""A small client of the real Kubernetes API server (`servers/kubernetes.py`) for the tests: API
discovery, server-side apply (optionally dry-run) with the warnings the server returns, reads, and
SubjectAccessReview ("can this identity do that?").

Plain httpx on purpose: the checks are about what the API server says (status, `Status` body,
`Warning` headers from PodSecurity admission), and a typed client would add nothing to that.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import tenacity

from servers.kubernetes import admin_client

FIELD_MANAGER = "identity-platform-tests"


class ApiRefusedError(Exception):
    """The API server refused a request: its HTTP status and `Status` message."""

    def __init__(self, status: int, message: str, what: str) -> None:
        self.status, self.message = status, message
        super().__init__(f"{what}: HTTP {status}: {message}")


@dataclass(frozen=True)
class Applied:
    body: dict[str, Any]
    warnings: list[str]


@dataclass
class KubeApi:
    section: Mapping[str, Any]
    _kinds: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)

    @contextmanager
    def client(self) -> Iterator[httpx.Client]:
        with admin_client(dict(self.section)) as c:
            yield c

    def _discover(self) -> None:
        with self.client() as c:
            groups = [("", "/api/v1")]
            for g in c.get("/apis").json()["groups"]:
                groups += [(g["name"], f"/apis/{v['groupVersion']}") for v in g["versions"]]
            for _, path in groups:
                doc = c.get(path).json()
                gv = doc["groupVersion"]
                for r in doc["resources"]:
                    if "/" not in r["name"]:
                        self._kinds[(gv, r["kind"])] = (r["name"], r["namespaced"])

    def forget_kinds(self) -> None:
        """Discover the served kinds again on next use (after CRDs were created)."""
        self._kinds.clear()

    def collection(self, api_version: str, kind: str, namespace: str | None = None) -> str:
        """The URL path of a kind's collection (in `namespace` when the kind is namespaced)."""
        if not self._kinds:
            self._discover()
        try:
            plural, namespaced = self._kinds[(api_version, kind)]
        except KeyError:
            raise ApiRefusedError(404, f"the API server serves no {kind} in {api_version}", "discovery") from None
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if namespaced:
            if not namespace:
                raise ApiRefusedError(422, f"{kind} is namespaced but has no namespace", "apply")
            return f"{base}/namespaces/{namespace}/{plural}"
        return f"{base}/{plural}"

    def every(self, api_version: str, kind: str, label_selector: str) -> list[dict[str, Any]]:
        """Every object of `kind` carrying the labels, in every namespace; none when the server does
        not serve the kind (a custom resource whose CRD it lacks; `forget_kinds` after CRDs changed)."""
        if not self._kinds:
            self._discover()
        if (api_version, kind) not in self._kinds:
            return []
        plural, _ = self._kinds[(api_version, kind)]
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        items: list[dict[str, Any]] = self.get(f"{base}/{plural}?labelSelector={label_selector}")["items"]
        return items

    def path(self, obj: Mapping[str, Any]) -> str:
        meta = obj["metadata"]
        return f"{self.collection(obj['apiVersion'], obj['kind'], meta.get('namespace'))}/{meta['name']}"

    def apply(self, obj: Mapping[str, Any], *, dry_run: bool = False, strict: bool = False) -> Applied:
        """Server-side apply `obj` (create or update); the server's object and its warnings.
        `strict`: a field the schema does not know is an error, not a warning (fieldValidation)."""
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        if dry_run:
            params["dryRun"] = "All"
        if strict:
            params["fieldValidation"] = "Strict"
        with self.client() as c:
            r = c.patch(self.path(obj), params=params, content=json.dumps(obj),
                        headers={"Content-Type": "application/apply-patch+yaml"})
        what = f"apply {obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
        _raise_for(r, what)
        return Applied(r.json(), warnings(r))

    def create(self, obj: Mapping[str, Any], *, dry_run: bool = False) -> Applied:
        params = {"dryRun": "All"} if dry_run else {}
        meta = obj["metadata"]
        with self.client() as c:
            r = c.post(self.collection(obj["apiVersion"], obj["kind"], meta.get("namespace")), params=params,
                       json=dict(obj))
        _raise_for(r, f"create {obj['kind']} {meta.get('namespace', '')}/{meta.get('name', '')}")
        return Applied(r.json(), warnings(r))

    # A read the server answers 429 ("storage is (re)initializing" just after a CRD is
    # established) is asked again: reads are idempotent, and the server says when to come back.
    @tenacity.retry(retry=tenacity.retry_if_exception(lambda e: isinstance(e, ApiRefusedError) and e.status == 429),
                    wait=tenacity.wait_fixed(1), stop=tenacity.stop_after_delay(60), reraise=True)
    def get(self, path: str) -> dict[str, Any]:
        with self.client() as c:
            r = c.get(path)
        _raise_for(r, f"GET {path}")
        body: dict[str, Any] = r.json()
        return body

    def release_finalizers(self, path: str) -> None:
        """Drop the object's finalizers, as the controller that owns them would (kube-controller-
        manager, e.g. pvc-protection once no pod uses a claim, does not run here)."""
        with self.client() as c:
            r = c.patch(path, json={"metadata": {"finalizers": None}},
                        headers={"Content-Type": "application/merge-patch+json"})
        _raise_for(r, f"PATCH {path}")

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        with self.client() as c:
            r = c.post(path, json=dict(body))
        _raise_for(r, f"POST {path}")
        out: dict[str, Any] = r.json()
        return out

    def establish(self, definitions: list[dict[str, Any]], within: float = 60) -> None:
        """Create the CRDs, wait until the server serves each (`Established`), then rediscover kinds."""
        for crd in definitions:
            self.apply(crd)
        deadline = time.monotonic() + within
        for crd in definitions:
            name = crd["metadata"]["name"]
            while True:
                status = self.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}").get("status") or {}
                if any(c["type"] == "Established" and c["status"] == "True" for c in status.get("conditions") or []):
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"CRD {name} not established within {within} s: {status}")
                time.sleep(0.5)
        self.forget_kinds()

    def can(self, user: str, verb: str, resource: str, *, group: str = "", namespace: str | None = None,
            subresource: str = "", name: str = "", groups: tuple[str, ...] = ()) -> bool:
        """SubjectAccessReview: may `user` (with `groups`) do `verb` on `resource`?"""
        attrs: dict[str, Any] = {"verb": verb, "resource": resource, "group": group}
        if namespace:
            attrs["namespace"] = namespace
        if subresource:
            attrs["subresource"] = subresource
        if name:
            attrs["name"] = name
        review = self.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": list(groups), "resourceAttributes": attrs},
        })
        return bool(review["status"].get("allowed"))


def as_sent(value: Any) -> Any:
    """An object's inputs as the pulumi-kubernetes provider sends them: the engine carries numbers
    as doubles, the provider turns whole ones back into integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: as_sent(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_sent(v) for v in value]
    return value


def warnings(r: httpx.Response) -> list[str]:
    """The `Warning` headers of a response (`299 - "text"`), as their texts."""
    out = []
    for value in r.headers.get_list("warning"):
        text = value.split(" ", 2)[-1].strip()
        if text.startswith('"') and text.endswith('"'):
            text = text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out.append(text)
    return out


def _raise_for(r: httpx.Response, what: str) -> None:
    if r.status_code < 400:
        return
    try:
        message = r.json().get("message", r.text)
    except ValueError:
        message = r.text
    raise ApiRefusedError(r.status_code, message, what)
