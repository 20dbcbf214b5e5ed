"""The providers' own errors reach the engine's host without their cause chain (it sends the
traceback as gRPC metadata, capped at 8 KB); other exceptions keep theirs."""

from __future__ import annotations

import traceback
from typing import Any

import pytest

from dynamic_providers._kernel import ForeignObjectError, Provider
from dynamic_providers._transport import ServerError


def _deep(depth: int) -> None:
    if depth:
        _deep(depth - 1)
    raise ConnectionRefusedError("[Errno 111] Connection refused")


class _Failing(Provider):
    def __init__(self, error: type[Exception]) -> None:
        self.error = error

    def create(self, props: dict[str, Any]) -> Any:
        try:
            _deep(60)
        except ConnectionRefusedError as e:
            raise self.error("Keycloak at http://localhost:1 did not answer within 1 s") from e


@pytest.mark.parametrize("error", [ServerError, ForeignObjectError])
def test_own_errors_lose_the_chain_keep_the_message(error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        _Failing(error).create({})
    text = "".join(traceback.format_exception(caught.value))
    assert "did not answer within 1 s" in text
    assert "Connection refused" not in text and "_deep" not in text
    assert len(text) < 1000


def test_other_errors_keep_their_traceback() -> None:
    with pytest.raises(KeyError) as caught:
        _Failing(KeyError).create({})
    text = "".join(traceback.format_exception(caught.value))
    assert "Connection refused" in text and "_deep" in text
