"""Loopback protocol fakes: a real HTTP(S) server on 127.0.0.1:0 in a thread.

Fakes of Keycloak and the Ziti controller are `App`s: route handlers registered with
`@app.route("POST", "/admin/realms/{realm}/clients")`. The server adds what fault tests need:
per-route injected faults (status codes with headers, connection resets before or *after* the
handler ran, delays), global latency, and per-route request counts and a request log.

TLS is on by default with a throwaway CA made by `cryptography`, so clients are tested with
verification on and the CA passed as `ca_bundle_pem` — the way users trust a private CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import socket
import ssl
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


Handler = Callable[[Request], Response]


@dataclass
class Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler


class App:
    """A set of routes; the first whose method and path template match handles the request."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "/?$")

        def register(fn: Handler) -> Handler:
            self.routes.append(Route(method, pattern, regex, fn))
            return fn

        return register

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for r in self.routes:
            if r.method == method:
                m = r.regex.match(path)
                if m:
                    return r, m.groupdict()
        return None, {}


@dataclass
class Fault:
    """Something that goes wrong for the next `times` matching requests.

    `status` answers with that code (plus `headers`/`body`) without running the handler;
    `reset` closes the connection before the handler runs; `reset_after` runs the handler (the
    server-side effect happens) and then drops the connection, like a lost response;
    `delay` sleeps first (a slow response), combined with any of the above or alone.
    """

    method: str
    pattern: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    reset: bool = False
    reset_after: bool = False
    delay: float = 0.0
    times: int = 1


@dataclass
class LoggedRequest:
    method: str
    pattern: str
    path: str
    status: int | None


class LoopbackServer:
    """Serve an `App` on 127.0.0.1:<free port> from a background thread."""

    def __init__(self, app: App, tls: bool = True) -> None:
        self.app = app
        self.latency = 0.0
        self.faults: list[Fault] = []
        self.log: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self.ca_pem: str | None = None
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        if tls:
            self.ca_pem, ctx = _tls_context()
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="loopback", daemon=True)

    @property
    def url(self) -> str:
        host = "localhost" if self.scheme == "https" else "127.0.0.1"
        return f"{self.scheme}://{host}:{self.port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- fault injection and counting ---------------------------------------------------

    def inject(self, method: str, pattern: str, **kwargs: Any) -> Fault:
        fault = Fault(method, pattern, **kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def count(self, method: str | None = None, pattern: str | None = None) -> int:
        """Requests received, optionally only those matching a method and/or route template."""
        with self._lock:
            return sum(
                1
                for r in self.log
                if (method is None or r.method == method) and (pattern is None or r.pattern == pattern)
            )

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(f"{r.method} {r.pattern}" for r in self.log)

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    def _take_fault(self, method: str, pattern: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.method == method and f.pattern == pattern and f.times > 0:
                    f.times -= 1
                    return f
        return None

    # --- request handling -------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as separate writes: without TCP_NODELAY, Nagle plus the
            # client's delayed ACK adds ~40 ms to every answer and swamps injected latency.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _dispatch(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                route, params = server.app.match(self.command, split.path)
                pattern = route.pattern if route else split.path
                req = Request(
                    self.command,
                    split.path,
                    parse_qs(split.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    params,
                )
                if server.latency:
                    time.sleep(server.latency)
                fault = server._take_fault(self.command, pattern)
                if fault and fault.delay:
                    time.sleep(fault.delay)
                if fault and fault.reset:
                    server._record(self.command, pattern, split.path, None)
                    self._drop()
                    return
                if fault and fault.status is not None:
                    resp = Response(fault.status, fault.body, dict(fault.headers))
                elif route is None:
                    resp = Response(404, {"error": "not found", "path": split.path})
                else:
                    try:
                        resp = route.handler(req)
                    except Exception as e:  # noqa: BLE001 (a fake bug must be visible, not hang the client)
                        resp = Response(500, {"error": f"fake raised {type(e).__name__}: {e}"})
                if fault and fault.reset_after:
                    server._record(self.command, pattern, split.path, None)
                    self._drop()
                    return
                server._record(self.command, pattern, split.path, resp.status)
                payload = resp.encode()
                self.send_response(resp.status)
                if payload:
                    self.send_header("Content-Type", resp.content_type)
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload and self.command != "HEAD":
                    self.wfile.write(payload)

            def _drop(self) -> None:
                try:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                except OSError:
                    pass
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch  # noqa: N815

        return _H

    def _record(self, method: str, pattern: str, path: str, status: int | None) -> None:
        with self._lock:
            self.log.append(LoggedRequest(method, pattern, path, status))


def _tls_context() -> tuple[str, ssl.SSLContext]:
    """A throwaway CA and a server certificate for localhost/127.0.0.1 signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loopback test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    d = Path(tempfile.mkdtemp(prefix="loopback-tls-"))
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    return ca.public_bytes(serialization.Encoding.PEM).decode(), ctx
