"""The SPIRE registration-entry client: `EntryClient`'s semantics (create-or-adopt under the
deterministic id, owned-field updates, retries) over gRPC on the admin socket or the `spire-server`
CLI through `docker exec` / `kubectl exec`; see docs/providers/spire.md."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from dynamic_providers._transport import RetryPolicy, ServerError
from dynamic_providers.spire._proto import entry_pb2, entry_pb2_grpc, types_pb2
from dynamic_providers.spire.models import (
    MUTABLE_FIELDS,
    Connection,
    DockerExecConnection,
    Entry,
    EntryFields,
    GrpcConnection,
    KubectlExecConnection,
    entry_id_for,
    parse_selector,
)
from stack_config.spiffe import SPIFFE_SCHEME

T = TypeVar("T")

# google.rpc codes, by number, as grpc-python names them.
CODE_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}
TRANSIENT_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"})


class SpireError(ServerError):
    """Any failure of a SPIRE operation; `code` is the gRPC status name (NOT_FOUND, UNAVAILABLE...)."""

    code: str

    def __init__(self, message: str, *, code: str = "UNKNOWN", entry_id: str | None = None) -> None:
        super().__init__(message, code=code)
        self.entry_id = entry_id

    @property
    def transient(self) -> bool:
        return self.code in TRANSIENT_CODES


@dataclass(frozen=True)
class BatchResult:
    """One entry's result of a batch write (create, update, delete): its status and, when the
    transport gives it, the entry (after a create's ALREADY_EXISTS: the similar entry)."""

    code: str
    message: str
    entry: Entry | None = None

    def ok(self, doing: str, entry_id: str) -> BatchResult:
        """Itself when OK, else the SpireError for it (`doing`: "updating", "deleting")."""
        if self.code != "OK":
            raise SpireError(
                f"{doing} entry {entry_id} failed ({self.code}): {self.message}", code=self.code, entry_id=entry_id
            )
        return self


class EntryClient(ABC):
    """Registration-entry operations with SPIRE's semantics; subclasses supply the transport."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.retry = RetryPolicy()
        self.sleep: Callable[[float], None] = time.sleep

    # --- transport primitives ----------------------------------------------------------

    @abstractmethod
    def _get(self, entry_id: str) -> Entry | None:
        """The entry; a SpireError with code NOT_FOUND (or None) when there is none."""

    @abstractmethod
    def _create(self, fields: EntryFields, entry_id: str) -> BatchResult:
        """Create under `entry_id`; on ALREADY_EXISTS the status carries the similar entry, if any."""

    @abstractmethod
    def _update(self, entry_id: str, fields: EntryFields, current: Entry | None) -> BatchResult:
        """Write the owned fields; `current`, when given, is the entry as just read."""

    @abstractmethod
    def _delete(self, entry_id: str) -> BatchResult: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release transport resources."""

    # --- semantics ----------------------------------------------------------------------

    def _retry(self, op: Callable[[], T]) -> T:
        """`op()` under the transport's policy: every operation here is idempotent, so any transient
        failure is repeated (the deterministic id makes a repeated create find its entry)."""
        return self.retry.call(
            op,
            when=lambda e: isinstance(e, SpireError) and e.transient,
            sleep=self.sleep,
            before_retry=self._before_retry,
        )

    def _before_retry(self) -> None:  # noqa: B027 - optional hook
        """Forget per-call state a retry should re-resolve."""

    def entry_id_for(self, fields: EntryFields) -> str:
        return entry_id_for(self.connection.owner_prefix, fields.spiffe_id, fields.parent_id, fields.selectors)

    def get(self, entry_id: str) -> Entry | None:
        """The entry, or None when the server has no entry with this id."""
        try:
            return self._retry(lambda: self._get(entry_id))
        except SpireError as e:
            if e.code == "NOT_FOUND":
                return None
            raise

    def create(self, fields: EntryFields) -> Entry:
        """Create the entry under this stack's deterministic id, or adopt our similar entry."""
        entry_id = self.entry_id_for(fields)

        def attempt() -> BatchResult:
            result = self._create(fields, entry_id)
            if result.code in TRANSIENT_CODES:  # retried as any transient failure: the id finds a landed one
                result.ok("creating", entry_id)
            return result

        status = self._retry(attempt)
        if status.code == "OK":
            return status.entry or self._read_back("creating", entry_id)
        if status.code != "ALREADY_EXISTS":
            raise SpireError(
                f"creating entry {entry_id} for {fields.spiffe_id} failed ({status.code}): {status.message}",
                code=status.code,
                entry_id=entry_id,
            )
        # Only an entry with the same triple is "similar"; anything else means our id is taken. Our
        # id on our triple is adopted too: a server that checks the id before similarity said so.
        similar = status.entry if status.entry is not None and status.entry.identity() == fields.identity() else None
        occupant = similar if similar is not None else self.get(entry_id)
        if occupant is not None and occupant.identity() == fields.identity():
            return self._adopt(occupant, fields)
        if occupant is None:
            raise SpireError(
                f"creating entry {entry_id} failed with ALREADY_EXISTS ({status.message}) but neither a similar "
                "entry nor an entry with that id exists now: run `pulumi up` again",
                code="ALREADY_EXISTS",
                entry_id=entry_id,
            )
        raise SpireError(
            f"entry id collision: {entry_id} (this stack's id for {fields.spiffe_id} under {fields.parent_id} "
            f"with selectors {list(fields.selectors)}) is held by a different entry: spiffe_id "
            f"{occupant.spiffe_id}, parent_id {occupant.parent_id}, selectors {list(occupant.selectors)}, "
            "probably edited outside Pulumi. Delete it (`spire-server entry delete -entryID "
            f"{entry_id}`) or restore its spiffe_id, parent_id and selectors, then run `pulumi up` again",
            code="ALREADY_EXISTS",
            entry_id=entry_id,
        )

    def _adopt(self, existing: Entry, fields: EntryFields) -> Entry:
        prefix = self.connection.owner_prefix
        if not existing.id.startswith(prefix):
            raise SpireError(
                f"a similar entry already exists for {fields.spiffe_id} (same parent_id {fields.parent_id} and "
                f"selectors {list(fields.selectors)}) with id {existing.id!r}, which this stack does not own "
                f"(its entry ids start with {prefix!r}). SPIRE allows one entry per such triple: delete the "
                f"other entry (`spire-server entry delete -entryID {existing.id}`) if it is stale, or change "
                "this entry's selectors",
                code="ALREADY_EXISTS",
                entry_id=existing.id,
            )
        # Written even when it holds these fields already: the revision that moves on tells the delete
        # of the resource it came from that another resource took it over (provider.handed_over).
        return self.update(existing.id, fields, current=existing)

    def update(self, entry_id: str, fields: EntryFields, *, current: Entry | None = None) -> Entry:
        """Write the owned mutable fields; SpireError(code=NOT_FOUND) if the entry is gone. `current`
        (read moments ago) spares the CLI its read before `entry update`; a retry reads again."""

        def attempt() -> Entry | None:
            nonlocal current
            known, current = current, None
            return self._update(entry_id, fields, known).ok("updating", entry_id).entry

        return self._retry(attempt) or self._read_back("updating", entry_id)

    def _read_back(self, doing: str, entry_id: str) -> Entry:
        """The entry a write answered OK without (an answer trimmed on its way): read by its id."""
        entry = self.get(entry_id)
        if entry is None:
            raise SpireError(
                f"{doing} entry {entry_id}: SPIRE answered OK but has no entry with that id: run `pulumi up` again",
                code="INTERNAL",
                entry_id=entry_id,
            )
        return entry

    def delete(self, entry_id: str) -> bool:
        """Delete the entry; False when it was already gone (which counts as success)."""
        result = self._retry(lambda: self._delete(entry_id))
        return result.code != "NOT_FOUND" and bool(result.ok("deleting", entry_id))


# --- gRPC over the admin socket ---------------------------------------------------------------

_UPDATE_MASK = types_pb2.EntryMask(**dict.fromkeys(MUTABLE_FIELDS, True))


class GrpcEntryClient(EntryClient):
    """The Entry API on the admin Unix socket (`unix:<path>` target, no TLS on a local socket).
    ALREADY_EXISTS carries the existing similar entry."""

    connection: GrpcConnection

    def __init__(self, connection: GrpcConnection) -> None:
        super().__init__(connection)
        self._channel = grpc.insecure_channel(f"unix:{connection.socket_path}")
        self._stub = entry_pb2_grpc.EntryStub(self._channel)  # type: ignore[no-untyped-call]  # generated, unannotated

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: str, request: Message) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=self.connection.timeout_seconds)
        except grpc.RpcError as e:
            code = e.code().name if isinstance(e, grpc.Call) else "UNKNOWN"
            details = e.details() if isinstance(e, grpc.Call) else str(e)
            raise SpireError(
                f"SPIRE Entry API {method} on unix:{self.connection.socket_path} failed ({code}): {details}", code=code
            ) from None

    def _get(self, entry_id: str) -> Entry | None:
        pb = self._call("GetEntry", entry_pb2.GetEntryRequest(id=entry_id))
        if pb.id != entry_id:
            raise SpireError(
                f"GetEntry {entry_id} on unix:{self.connection.socket_path} answered with entry {pb.id!r}: an "
                "answer about another entry is not trusted",
                code="INTERNAL",
                entry_id=entry_id,
            )
        return Entry.from_proto(pb)

    def _batch(self, method: str, request: Message) -> BatchResult:
        result = _single(self._call(method, request).results, method)
        entry = Entry.from_proto(result.entry) if hasattr(result, "entry") and result.HasField("entry") else None
        return BatchResult(CODE_NAMES.get(result.status.code, "UNKNOWN"), result.status.message, entry)

    def _create(self, fields: EntryFields, entry_id: str) -> BatchResult:
        return self._batch("BatchCreateEntry", entry_pb2.BatchCreateEntryRequest(entries=[fields.to_proto(entry_id)]))

    def _update(self, entry_id: str, fields: EntryFields, current: Entry | None) -> BatchResult:
        # Only the masked fields are read by the server; send just those.
        pb = types_pb2.Entry(id=entry_id, **{f: getattr(fields, f) for f in MUTABLE_FIELDS})
        return self._batch("BatchUpdateEntry", entry_pb2.BatchUpdateEntryRequest(entries=[pb], input_mask=_UPDATE_MASK))

    def _delete(self, entry_id: str) -> BatchResult:
        return self._batch("BatchDeleteEntry", entry_pb2.BatchDeleteEntryRequest(ids=[entry_id]))


def _single(results: Sequence[T], method: str) -> T:
    if len(results) != 1:
        raise SpireError(f"{method} returned {len(results)} results for one entry", code="INTERNAL")
    return results[0]


# --- the spire-server CLI through docker exec / kubectl exec -----------------------------------

# The CLI reports failures as one "Error: <msg>" line on stderr; gRPC errors inside look like
# "rpc error: code = NotFound desc = entry not found" (Go code names).
_CLI_ERROR = re.compile(r"^Error: (?P<msg>.*)$", re.M)
_RPC_ERROR = re.compile(r"rpc error: code = (?P<code>\w+) desc = (?P<desc>.*)$", re.S)
_GO_CODES = {"Canceled": "CANCELLED", "OK": "OK"}


def go_code_name(go_name: str) -> str:
    """Go's codes.Code.String() ("NotFound") as grpc-python's name ("NOT_FOUND")."""
    return _GO_CODES.get(go_name) or re.sub(r"(?<!^)(?=[A-Z])", "_", go_name).upper()


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class ExecEntryClient(EntryClient):
    """`spire-server entry ... -output json` inside the server container."""

    connection: DockerExecConnection | KubectlExecConnection

    def __init__(self, connection: DockerExecConnection | KubectlExecConnection, runner: Runner = subprocess.run):
        super().__init__(connection)
        self._runner = runner
        self._container: str | None = None

    # --- exec plumbing -------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if isinstance(self.connection, DockerExecConnection) and self.connection.docker_host:
            env.pop("DOCKER_CONTEXT", None)  # the connection's DOCKER_HOST must win
            env["DOCKER_HOST"] = self.connection.docker_host
        # Without docker_host, the engine the environment selects (DOCKER_HOST, docker context).
        return env

    def _where(self) -> str:
        c = self.connection
        if isinstance(c, DockerExecConnection):
            target = c.container or f"service {c.service}"
            engine = c.docker_host or os.environ.get("DOCKER_HOST") or "the Docker engine of the current context"
            return f"docker exec into {target} on {engine}"
        ctx = f" (context {c.context})" if c.context else ""
        return f"kubectl exec into {c.namespace}/{c.pod} container {c.container}{ctx}"

    def _exec(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return self._runner(
                argv, capture_output=True, text=True, timeout=self.connection.timeout_seconds, env=self._env()
            )
        except FileNotFoundError:
            raise SpireError(
                f"{argv[0]!r} is not on PATH: install the {argv[0]} CLI on the machine running Pulumi "
                f"(needed for connection.transport {self.connection.transport!r})",
                code="FAILED_PRECONDITION",
            ) from None
        except subprocess.TimeoutExpired:
            raise SpireError(
                f"{self._where()} did not finish within {self.connection.timeout_seconds:g}s",
                code="DEADLINE_EXCEEDED",
            ) from None

    def _before_retry(self) -> None:
        self._container = None  # a Swarm task may have been replaced

    def _docker_container(self, conn: DockerExecConnection) -> str:
        if conn.container:
            return conn.container
        if self._container is None:
            service = f"label=com.docker.swarm.service.name={conn.service}"
            running = ["--filter", service, "--filter", "status=running", "--format", "{{.Names}}"]
            proc = self._exec(["docker", "ps", *running])
            if proc.returncode != 0:
                raise SpireError(f"{self._where()}: docker ps failed: {proc.stderr.strip()}", code="UNAVAILABLE")
            names = sorted(n for n in proc.stdout.split() if n)
            if not names:
                raise SpireError(
                    f"{self._where()}: no running task of service {conn.service!r} on this node: check that the "
                    "SPIRE server runs there (connection.docker_host) and is healthy",
                    code="UNAVAILABLE",
                )
            self._container = names[0]
        return self._container

    def _argv(self, args: list[str]) -> list[str]:
        c = self.connection
        cli = [c.server_binary, *args, "-output", "json"]
        if c.socket_path:
            cli += ["-socketPath", c.socket_path]
        if isinstance(c, DockerExecConnection):
            return ["docker", "exec", self._docker_container(c), *cli]
        # The usual `kubectl exec -n NS POD -c C -- CMD` form; kubectl takes its global flags here too.
        kubectl = ["kubectl", "exec"]
        if c.kubeconfig:
            kubectl += ["--kubeconfig", c.kubeconfig]
        if c.context:
            kubectl += ["--context", c.context]
        return [*kubectl, "--namespace", c.namespace, c.pod, "--container", c.container, "--", *cli]

    def _cli(self, *args: str) -> dict[str, Any]:
        """Run one `spire-server` command; return its JSON, or raise SpireError.

        Per-entry results are read from the JSON whatever the exit status: SPIRE 1.15 exits 0 in
        json mode for failed results, other builds and the pretty printer exit 1.
        """
        what = f"spire-server {' '.join(args[:2])} ({self._where()})"
        proc = self._exec(self._argv(list(args)))
        try:
            data = json.loads(proc.stdout)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and ("results" in data or "entries" in data):
            return data
        m = _CLI_ERROR.search(proc.stderr)
        if proc.returncode != 0 and m:
            msg = m.group("msg").strip()
            rpc = _RPC_ERROR.search(msg)
            code = go_code_name(rpc.group("code")) if rpc else "INVALID_ARGUMENT"
            raise SpireError(f"{what} failed ({code}): {msg}", code=code)
        if proc.returncode != 0:
            # Not the CLI speaking: the engine, ssh, kubectl or the container runtime failed.
            detail = (proc.stderr or proc.stdout).strip() or f"exit status {proc.returncode}"
            raise SpireError(f"{self._where()} failed: {detail}", code="UNAVAILABLE")
        raise SpireError(f"{what} printed no results JSON: {proc.stdout[:200]!r}", code="UNKNOWN")

    # --- primitives ------------------------------------------------------------------------

    def _get(self, entry_id: str) -> Entry | None:
        data = self._cli("entry", "show", f"-entryID={entry_id}")
        entries = [_entry_from_json(e) for e in data.get("entries") or []]
        return next((e for e in entries if e.id == entry_id), None)

    def _batch(self, *args: str) -> BatchResult:
        """One `entry create|update|delete`; the entry is trusted only on OK (on failure the CLI
        prints the request in its place)."""
        result = _single(self._cli("entry", *args).get("results") or [], f"entry {args[0]}")
        status = result.get("status")
        if not isinstance(status, dict):
            return BatchResult("UNKNOWN", "the result has no status")
        # protojson drops zero values unless told otherwise, so a status without `code` is OK (0).
        try:
            code = CODE_NAMES.get(int(status.get("code") or 0), "UNKNOWN")
        except (TypeError, ValueError):
            return BatchResult("UNKNOWN", f"spire-server entry {args[0]} answered a status code that is not a number")
        entry = _entry_from_json(result["entry"]) if code == "OK" and result.get("entry") else None
        return BatchResult(code, str(status.get("message", "")), entry)

    def _create(self, fields: EntryFields, entry_id: str) -> BatchResult:
        result = self._batch("create", f"-entryID={entry_id}", *_flags(fields, fields))
        if result.code != "ALREADY_EXISTS":
            return result
        # Look the similar entry up. Filter on the two IDs only and compare selector sets here: few
        # entries share both, and selector match modes (`-matchSelectorsOn`, default superset)
        # differ between CLI builds.
        data = self._cli("entry", "show", f"-spiffeID={fields.spiffe_id}", f"-parentID={fields.parent_id}")
        similar = (_entry_from_json(raw) for raw in data.get("entries") or [])
        found = next((e for e in similar if e.identity() == fields.identity()), None)
        return BatchResult(result.code, result.message, found)

    def _update(self, entry_id: str, fields: EntryFields, current: Entry | None) -> BatchResult:
        current = current if current is not None else self._get(entry_id)
        if current is None:
            return BatchResult("NOT_FOUND", "entry not found")
        # `entry update` replaces every field: keep the identity triple and what we do not manage.
        carried = [f"-entryExpiry={current.expires_at}"] if current.expires_at else []
        carried += ["-disableX509SVIDPrefetch"] if current.disable_x509_svid_prefetch else []
        carried += ["-jwtSVIDIncludeJTI"] if current.jwt_svid_include_jti else []
        return self._batch("update", f"-entryID={entry_id}", *_flags(current.fields(), fields), *carried)

    def _delete(self, entry_id: str) -> BatchResult:
        try:
            return self._batch("delete", f"-entryID={entry_id}")
        except SpireError as e:
            # A build that reports the missing entry as an error instead of a per-id result.
            if e.code == "NOT_FOUND":
                return BatchResult("NOT_FOUND", str(e))
            raise


def _flags(identity: EntryFields, fields: EntryFields) -> list[str]:
    """CLI flags: the identity triple from `identity`, every owned mutable field from `fields`.

    `-name=value` throughout, so a value starting with '-' is never read as a flag.
    """
    flags = [f"-spiffeID={identity.spiffe_id}", f"-parentID={identity.parent_id}"]
    flags += [f"-selector={t}:{v}" for t, v in map(parse_selector, identity.selectors)]
    flags += [f"-x509SVIDTTL={fields.x509_svid_ttl}", f"-jwtSVIDTTL={fields.jwt_svid_ttl}"]
    flags += [f"-dns={d}" for d in fields.dns_names]
    flags += [f"-federatesWith={SPIFFE_SCHEME}{td}" for td in fields.federates_with]
    flags += [f"-hint={fields.hint}"] if fields.hint else []
    switches = {"admin": fields.admin, "downstream": fields.downstream, "storeSVID": fields.store_svid}
    return flags + [f"-{name}" for name, on in switches.items() if on]


def _entry_from_json(raw: Any) -> Entry:
    """An entry from the CLI's protojson (proto field names, int64 as strings)."""
    try:
        pb = json_format.ParseDict(raw, types_pb2.Entry(), ignore_unknown_fields=True)
    except (json_format.ParseError, AttributeError, TypeError) as e:
        raise SpireError(f"spire-server entry answered JSON that is not an Entry ({e})", code="UNKNOWN") from None
    return Entry.from_proto(pb)


def open_client(connection: Connection) -> closing[EntryClient]:
    """A client for one provider call, closed at the end of the `with` block."""
    client = GrpcEntryClient(connection) if isinstance(connection, GrpcConnection) else ExecEntryClient(connection)
    return closing(client)
