"""Fault proxies between a provider and a *real* server, with the loopback fakes' fault model.

`http_proxy` serves a `ProxyApp` on a `LoopbackServer`: every request is forwarded to the real
server, so the loopback server's faults (`inject(method, pattern, status=... | reset=True |
reset_after=True | delay=...)`) now hit real servers — `reset_after` forwards the request, lets the
real server act on it, and drops the connection before the answer: the cut after the request was
sent. TLS ends at the proxy (its throwaway CA goes into the provider's CA bundle); the proxy
verifies the real server with the server's own CA.

`GrpcFaultProxy` does the same for gRPC (SPIRE's admin socket): unary calls are forwarded as raw
bytes over a Unix socket, and faults abort a call before or after the real server ran it.
"""

from __future__ import annotations

import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx

from tests.harness.loopback import App, Fault, LoopbackServer, Request, Response, Route

T = TypeVar("T")


def with_one_rerun(step: Callable[[], T]) -> T:
    """Run an engine step; if it fails, run it once more, as `pulumi up` after a failed one would
    (the engine recorded nothing of the failed attempt). The guarantee under test: one re-run at
    most leaves exactly one object, nothing orphaned, nothing lost."""
    try:
        return step()
    except Exception:  # noqa: BLE001 - any failure of the first attempt; the re-run must succeed
        return step()


# Hop-by-hop and framing headers are the proxy's own business on each side.
_DROP = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "accept-encoding",
         "content-encoding", "upgrade", "proxy-connection", "te", "trailer"}


class ProxyApp(App):
    """Forwards every request to `upstream`; `templates` name the routes faults are keyed on
    (`/edge/management/v1/cas/{id}`), any other path is its own pattern."""

    def __init__(self, upstream: str, *, ca_pem: str | None = None, templates: Iterable[str] = (),
                 timeout: float = 30) -> None:
        super().__init__()
        verify: ssl.SSLContext | bool = True
        if ca_pem is not None:
            verify = ssl.create_default_context(cadata=ca_pem)
        self._client = httpx.Client(base_url=upstream, verify=verify, timeout=timeout)
        self.forwarded: list[tuple[str, str, int]] = []
        for t in templates:
            self.route("GET", t)(self._forward)  # registers the template; the method is matched below

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for r in self.routes:
            m = r.regex.match(path)
            if m:
                return Route(method, r.pattern, r.regex, self._forward), m.groupdict()
        return Route(method, path, None, self._forward), {}  # type: ignore[arg-type]

    def _forward(self, req: Request) -> Response:
        headers = {k: v for k, v in req.headers.items() if k not in _DROP}
        query = [(k, v) for k, vs in req.query.items() for v in vs]
        resp = self._client.request(req.method, req.path, params=query, headers=headers, content=req.body)
        self.forwarded.append((req.method, req.path, resp.status_code))
        out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in _DROP | {"content-type"}}
        return Response(resp.status_code, resp.content, out_headers,
                        content_type=resp.headers.get("content-type", "application/octet-stream"))

    def close(self) -> None:
        self._client.close()


def http_proxy(upstream: str, *, ca_pem: str | None = None, templates: Iterable[str] = (),
               tls: bool = True) -> tuple[LoopbackServer, ProxyApp]:
    """Start a fault proxy in front of `upstream`; returns (server, app). Stop with server.stop()."""
    app = ProxyApp(upstream, ca_pem=ca_pem, templates=templates)
    return LoopbackServer(app, tls=tls).start(), app


@dataclass
class GrpcFault:
    """Like `Fault`, for one gRPC method (`/spire.api.server.entry.v1.Entry/BatchCreateEntry`)."""

    method: str
    code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    before: bool = True  # abort before forwarding; False: forward, then lose the answer
    delay: float = 0.0
    times: int = 1


@dataclass
class GrpcFaultProxy:
    """A Unix-socket gRPC proxy in front of `upstream_socket` (SPIRE's admin API)."""

    upstream_socket: str
    socket_path: str = field(default="")
    faults: list[GrpcFault] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, outcome)

    def __post_init__(self) -> None:
        if not self.socket_path:
            self.socket_path = str(Path(tempfile.mkdtemp(prefix="grpc-proxy-")) / "api.sock")
        self._lock = threading.Lock()
        self._channel = grpc.insecure_channel(f"unix://{self.upstream_socket}")
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self._server.add_generic_rpc_handlers([_Forwarder(self)])
        self._server.add_insecure_port(f"unix://{self.socket_path}")

    def start(self) -> GrpcFaultProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)
        self._channel.close()

    def inject(self, method: str, **kwargs: Any) -> GrpcFault:
        fault = GrpcFault(method, **kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def take(self, method: str) -> GrpcFault | None:
        with self._lock:
            for f in self.faults:
                if f.times > 0 and method.endswith(f.method):
                    f.times -= 1
                    return f
        return None

    def count(self, method: str) -> int:
        with self._lock:
            return sum(1 for m, _ in self.calls if m.endswith(method))

    def forward(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        fault = self.take(method)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.before:
            self._log(method, f"aborted {fault.code.name} before the server")
            context.abort(fault.code, "fault proxy: injected before the call reached the server")
        call = self._channel.unary_unary(method)
        try:
            metadata = [
                (k, v) for k, v in context.invocation_metadata()
                if not k.startswith((":", "grpc-")) and k != "user-agent"
            ]
            answer: bytes = call(request, metadata=metadata, timeout=context.time_remaining())
        except grpc.RpcError as e:
            self._log(method, f"server said {e.code().name}")
            context.abort(e.code(), e.details() or "")
        if fault is not None and not fault.before:
            self._log(method, f"aborted {fault.code.name} after the server ran it")
            context.abort(fault.code, "fault proxy: the answer was lost after the server ran the call")
        self._log(method, "ok")
        return answer

    def _log(self, method: str, outcome: str) -> None:
        with self._lock:
            self.calls.append((method, outcome))


class _Forwarder(grpc.GenericRpcHandler):
    def __init__(self, proxy: GrpcFaultProxy) -> None:
        self._proxy = proxy

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = handler_call_details.method

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            return self._proxy.forward(method, request, context)

        return grpc.unary_unary_rpc_method_handler(unary)


__all__ = ["Fault", "GrpcFault", "GrpcFaultProxy", "ProxyApp", "http_proxy", "with_one_rerun"]
