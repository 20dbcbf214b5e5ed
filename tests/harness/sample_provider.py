"""A minimal file-backed dynamic provider used to prove the engine-path harness.

It stores one JSON document per resource in a directory given as an input, so every CRUD step
has an observable effect the harness tests can check independently of the provider's answers.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)


class FileDocumentProvider(ResourceProvider):
    """`name` identifies the document (a change replaces it); `content` updates it in place."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        if not str(news.get("name") or "").strip():
            failures.append(CheckFailure("name", "name must be a non-empty string"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("name", "content", "directory") if olds.get(k) != news.get(k)]
        replaces = [k for k in changed if k in ("name", "directory")]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=bool(replaces))

    def create(self, props: dict[str, Any]) -> CreateResult:
        doc_id = uuid.uuid4().hex
        path = Path(props["directory"]) / f"{doc_id}.json"
        path.write_text(json.dumps({"name": props["name"], "content": props.get("content")}))
        return CreateResult(doc_id, self._outs(props, doc_id))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        path = Path(props["directory"]) / f"{id_}.json"
        if not path.exists():
            return ReadResult(None, {})
        doc = json.loads(path.read_text())
        outs = {**props, **doc}
        return ReadResult(id_, self._outs(outs, id_), {k: outs[k] for k in ("name", "content", "directory")})

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        path = Path(news["directory"]) / f"{id_}.json"
        path.write_text(json.dumps({"name": news["name"], "content": news.get("content")}))
        return UpdateResult(self._outs(news, id_))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        (Path(props["directory"]) / f"{id_}.json").unlink(missing_ok=True)

    @staticmethod
    def _outs(props: dict[str, Any], doc_id: str) -> dict[str, Any]:
        return {
            "name": props["name"],
            "content": props.get("content"),
            "directory": props["directory"],
            "doc_id": doc_id,
        }
