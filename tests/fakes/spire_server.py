"""An in-process SPIRE Server Entry API (`spire.api.server.entry.v1.Entry`) on a Unix socket.

A real gRPC server (grpcio) with the semantics of SPIRE's `pkg/server/api/entry/v1/service.go`
and its SQL datastore, written independently of the provider's own rules:

- BatchCreateEntry: converts and validates like `api.ProtoToRegistrationEntry` (trust-domain
  membership, reserved `/spire` namespace for workloads, selectors, DNS names, hint length),
  then in one "transaction": datastore validation (entry id length/characters, store_svid
  selector types, TTLs), the *similar entry* lookup (same spiffe_id + parent_id + exact selector
  set) answering ALREADY_EXISTS "similar entry already exists" **with the existing entry**,
  then the insert, where a duplicate custom id (or a duplicate selector within the entry) is a
  unique-index violation: ALREADY_EXISTS **without** an entry. No id → a UUID is generated.
  `federates_with` needs a known bundle ("unable to find federated bundle").
- BatchUpdateEntry: `input_mask` nil = replace every field; with a mask only the masked fields
  are validated and written; revision_number += 1; unknown id → NOT_FOUND. No similar-entry
  check (as in SPIRE).
- GetEntry / BatchDeleteEntry: NOT_FOUND "entry not found"; empty id → INVALID_ARGUMENT.
- ListEntries / CountEntries: filters by spiffe id, parent id, selectors and federates_with
  (exact / subset / superset / any), hint, downstream (only `true` filters); pagination where
  the token is set whenever a page had entries (so clients see one empty page at the end).
- output masks (nil = every field; `id` always).
- `prune(now)` drops entries whose `expires_at` passed, as the server does every 5 minutes.

Test hooks: `calls` (RPC counts), `inject(method, code, times, after)` to fail RPCs before or
after they take effect (a lost response), `seed()` to plant entries made by someone else.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from dynamic_providers.spire._proto import entry_pb2, entry_pb2_grpc, types_pb2

_TD_CHARS = re.compile(r"^[a-z0-9._-]+$")
_SEGMENT_CHARS = re.compile(r"^[A-Za-z0-9._-]+$")
_ENTRY_ID_CHARS = re.compile(r"^[A-Za-z0-9._-]*$")
_DNS_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")

OK, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, INTERNAL = 0, 3, 5, 6, 13
ALL_FIELDS_MASK = types_pb2.EntryMask(**{f.name: True for f in types_pb2.EntryMask.DESCRIPTOR.fields})


class _InvalidError(Exception):
    """A conversion/validation error; str() is the message SPIRE would put in the status."""


# --- go-spiffe / SPIRE rules, independent of dynamic_providers.spire.models --------------------


def _trust_domain(name: str) -> str:
    if not name:
        raise _InvalidError("trust domain is missing")
    if not _TD_CHARS.match(name):
        raise _InvalidError(
            "trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"
        )
    return name


def _path(path: str) -> str:
    if not path:
        return path
    if not path.startswith("/"):
        raise _InvalidError("path must have a leading slash")
    segs = path.split("/")[1:]
    for i, s in enumerate(segs):
        if s == "":
            raise _InvalidError(
                "path cannot have a trailing slash" if i == len(segs) - 1 else "path cannot contain empty segments"
            )
        if s in (".", ".."):
            raise _InvalidError("path cannot contain dot segments")
        if not _SEGMENT_CHARS.match(s):
            raise _InvalidError(
                "path segment characters are limited to letters, numbers, dots, dashes, and underscores"
            )
    return path


def trust_domain_from_string(value: str) -> str:
    """go-spiffe TrustDomainFromString: a name, or any SPIFFE ID (its trust domain)."""
    if ":/" not in value:
        return _trust_domain(value)
    if not value.startswith("spiffe://"):
        raise _InvalidError("scheme is missing or invalid")
    td, slash, rest = value[len("spiffe://") :].partition("/")
    _path(slash + rest)
    return _trust_domain(td)


def _member_id(pb: types_pb2.SPIFFEID | None, td: str, *, workload: bool) -> str:
    if pb is None:
        raise _InvalidError("request must specify SPIFFE ID")
    _trust_domain(pb.trust_domain)
    _path(pb.path)
    sid = f"spiffe://{pb.trust_domain}{pb.path}"
    kind = "a workload" if workload else "a member"
    if pb.trust_domain != td:
        raise _InvalidError(f'"{sid}" is not a member of trust domain "{td}"')
    if not pb.path:
        raise _InvalidError(f'"{sid}" is not {kind} in trust domain "{td}"; path is empty')
    if workload and (pb.path == "/spire" or pb.path.startswith("/spire/")):
        raise _InvalidError(f'"{sid}" is not a workload in trust domain "{td}"; path is in the reserved namespace')
    return sid


def _dns_name(name: str) -> None:
    if not name.isascii():
        raise _InvalidError("name must be ascii")
    if name.count("*") > 1:
        raise _InvalidError("too many wildcards")
    if "*" in name:
        if not name.startswith("*."):
            raise _InvalidError("wildcard must be first label")
        name = name[2:]
    if not name.strip():
        raise _InvalidError("empty or only whitespace")
    if name.endswith("."):
        raise _InvalidError("domain ends with dot")
    if len(name) > 253 or not all(_DNS_LABEL.match(label) for label in name.split(".")):
        raise _InvalidError(f"idna error: idna: invalid label {name!r}")
    if any(label[2:4] == "--" and not label.lower().startswith("xn--") for label in name.split(".")):
        raise _InvalidError(f"idna error: idna: invalid label {name!r}")


def _selectors(sels: Iterable[types_pb2.Selector]) -> list[tuple[str, str]]:
    out = []
    for s in sels:
        if not s.type:
            raise _InvalidError("missing selector type")
        if ":" in s.type:
            raise _InvalidError("selector type contains ':'")
        if not s.value:
            raise _InvalidError("missing selector value")
        out.append((s.type, s.value))
    return out


def _match(have: set[str], want: set[str], mode: int) -> bool:
    if mode == 0:  # MATCH_EXACT
        return have == want
    if mode == 1:  # MATCH_SUBSET: the entry's set is a subset of the filter's
        return have <= want
    if mode == 2:  # MATCH_SUPERSET
        return have >= want
    return bool(have & want)  # MATCH_ANY


def _sel_set(entry: types_pb2.Entry) -> set[str]:
    return {f"{s.type}:{s.value}" for s in entry.selectors}


def _apply_mask(entry: types_pb2.Entry, mask: types_pb2.EntryMask | None) -> types_pb2.Entry:
    out = types_pb2.Entry()
    out.CopyFrom(entry)
    if mask is None:
        return out
    for f in types_pb2.EntryMask.DESCRIPTOR.fields:
        if not getattr(mask, f.name):
            out.ClearField(f.name)
    return out


@dataclass
class _Fault:
    code: grpc.StatusCode
    times: int
    after: bool
    message: str


@dataclass
class FakeSpireServer:
    """The Entry service of one SPIRE server with trust domain `trust_domain`."""

    trust_domain: str = "example.org"
    federated_bundles: set[str] = field(default_factory=lambda: {"other.org"})
    socket_path: str | None = None
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.entries: dict[str, types_pb2.Entry] = {}  # insertion order = datastore row order
        self.calls: Counter[str] = Counter()
        self.requests: list[tuple[str, Any]] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._lock = threading.RLock()
        self._server: grpc.Server | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeSpireServer:
        if self.socket_path is None:
            # Short path: sun_path holds 107 bytes, pytest's tmp_path can be longer.
            self._tmp = tempfile.TemporaryDirectory(prefix="spire-", dir="/tmp")
            self.socket_path = str(Path(self._tmp.name) / "api.sock")
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        entry_pb2_grpc.add_EntryServicer_to_server(_Servicer(self), self._server)
        self._server.add_insecure_port(f"unix:{self.socket_path}")
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> FakeSpireServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- test hooks ------------------------------------------------------------------------

    def inject(
        self,
        method: str,
        code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
        *,
        times: int = 1,
        after: bool = False,
        message: str = "injected fault",
    ) -> None:
        """Fail the next `times` calls of `method`; `after=True` applies the call first (lost response)."""
        self._faults.setdefault(method, []).append(_Fault(code, times, after, message))

    def seed(self, entry: types_pb2.Entry) -> types_pb2.Entry:
        """Store an entry as another tool would have made it (no API validation)."""
        with self._lock:
            stored = types_pb2.Entry()
            stored.CopyFrom(entry)
            if not stored.id:
                stored.id = str(uuid.uuid4())
            if not stored.created_at:
                stored.created_at = int(self.clock())
            self.entries[stored.id] = stored
            return stored

    def get(self, entry_id: str) -> types_pb2.Entry | None:
        with self._lock:
            return self.entries.get(entry_id)

    def prune(self, now: float | None = None) -> list[str]:
        """Delete entries whose expiry passed (the server's 5-minute pruning loop)."""
        now = self.clock() if now is None else now
        with self._lock:
            gone = [i for i, e in self.entries.items() if e.expires_at and e.expires_at < now]
            for i in gone:
                del self.entries[i]
            return gone

    def round_trips(self) -> int:
        return sum(self.calls.values())

    def _fault(self, method: str, after: bool) -> _Fault | None:
        queue = self._faults.get(method) or []
        for f in queue:
            if f.after == after and f.times > 0:
                f.times -= 1
                return f
        return None

    # --- datastore operations (under the lock) ---------------------------------------------

    def _convert(self, e: types_pb2.Entry, mask: types_pb2.EntryMask) -> None:
        """api.ProtoToRegistrationEntryWithMask: validate the masked fields."""
        if mask.parent_id:
            try:
                _member_id(e.parent_id if e.HasField("parent_id") else None, self.trust_domain, workload=False)
            except _InvalidError as err:
                raise _InvalidError(f"invalid parent ID: {err}") from None
        if mask.spiffe_id:
            try:
                _member_id(e.spiffe_id if e.HasField("spiffe_id") else None, self.trust_domain, workload=True)
            except _InvalidError as err:
                raise _InvalidError(f"invalid spiffe ID: {err}") from None
        if mask.dns_names:
            for name in e.dns_names:
                try:
                    _dns_name(name)
                except _InvalidError as err:
                    raise _InvalidError(f"invalid DNS name: {err}") from None
        if mask.federates_with:
            for td in e.federates_with:
                try:
                    trust_domain_from_string(td)
                except _InvalidError as err:
                    raise _InvalidError(f"invalid federated trust domain: {err}") from None
        if mask.selectors:
            if not e.selectors:
                raise _InvalidError("selector list is empty")
            _selectors(e.selectors)
        if mask.hint and len(e.hint.encode()) > 1024:
            raise _InvalidError("hint is too long, max length is 1024 characters")

    def _federates(self, tds: Iterable[str]) -> list[str]:
        names = [trust_domain_from_string(td) for td in tds]
        for name in names:
            if name not in self.federated_bundles:
                raise LookupError(f'unable to find federated bundle "spiffe://{name}"')
        return names

    def _create(self, e: types_pb2.Entry) -> tuple[int, str, types_pb2.Entry | None]:
        try:
            self._convert(e, ALL_FIELDS_MASK)
        except _InvalidError as err:
            return INVALID_ARGUMENT, f"failed to convert entry: {err}", None
        with self._lock:
            # validateRegistrationEntry
            if e.store_svid:
                if e.HasField("additional_attributes") and e.additional_attributes.disable_x509_svid_prefetch:
                    return (
                        INVALID_ARGUMENT,
                        "failed to create entry: datastore-validation: specifying cache "
                        "behaviour is incompatible with storable SVIDs",
                        None,
                    )
                if len({s.type for s in e.selectors}) > 1:
                    return (
                        INVALID_ARGUMENT,
                        "failed to create entry: datastore-validation: invalid registration "
                        "entry: selector types must be the same when store SVID is enabled",
                        None,
                    )
            if len(e.id) > 255:
                return (
                    INVALID_ARGUMENT,
                    "failed to create entry: datastore-validation: invalid registration entry: entry ID too long",
                    None,
                )
            if not _ENTRY_ID_CHARS.match(e.id):
                return (
                    INVALID_ARGUMENT,
                    "failed to create entry: datastore-validation: invalid registration entry: "
                    "entry ID contains invalid characters",
                    None,
                )
            if e.x509_svid_ttl < 0 or e.jwt_svid_ttl < 0:
                which = "X509SvidTtl" if e.x509_svid_ttl < 0 else "JwtSvidTtl"
                return (
                    INVALID_ARGUMENT,
                    f"failed to create entry: datastore-validation: invalid registration entry: {which} is not set",
                    None,
                )
            # lookupSimilarEntry
            for existing in self.entries.values():
                if (
                    existing.spiffe_id == e.spiffe_id
                    and existing.parent_id == e.parent_id
                    and _sel_set(existing) == _sel_set(e)
                ):
                    return ALREADY_EXISTS, "similar entry already exists", existing
            entry_id = e.id or str(uuid.uuid4())
            if entry_id in self.entries:
                return (
                    ALREADY_EXISTS,
                    "failed to create entry: datastore-sql: UNIQUE constraint failed: registered_entries.entry_id",
                    None,
                )
            if len(_sel_set(e)) != len(e.selectors):
                return (
                    ALREADY_EXISTS,
                    "failed to create entry: datastore-sql: UNIQUE constraint failed: "
                    "selectors.registered_entry_id, selectors.type, selectors.value",
                    None,
                )
            try:
                federates = self._federates(e.federates_with)
            except LookupError as err:
                return INTERNAL, f"failed to create entry: {err}", None
            stored = types_pb2.Entry()
            stored.CopyFrom(e)
            stored.id = entry_id
            del stored.federates_with[:]
            stored.federates_with.extend(federates)
            stored.revision_number = 0
            stored.created_at = int(self.clock())
            self.entries[entry_id] = stored
            return OK, "OK", _sorted_selectors(stored)

    def _update(self, e: types_pb2.Entry, mask: types_pb2.EntryMask | None) -> tuple[int, str, types_pb2.Entry | None]:
        effective = mask if mask is not None else ALL_FIELDS_MASK
        try:
            self._convert(e, effective)
        except _InvalidError as err:
            return INVALID_ARGUMENT, f"failed to convert entry: {err}", None
        with self._lock:
            if effective.selectors and not e.selectors:
                return (
                    INVALID_ARGUMENT,
                    "failed to update entry: datastore-validation: invalid registration entry: missing selector list",
                    None,
                )
            current = self.entries.get(e.id)
            if current is None:
                return NOT_FOUND, "failed to update entry", None
            updated = types_pb2.Entry()
            updated.CopyFrom(current)
            for f in types_pb2.EntryMask.DESCRIPTOR.fields:
                if f.name in ("revision_number", "created_at") or not getattr(effective, f.name):
                    continue
                ef = types_pb2.Entry.DESCRIPTOR.fields_by_name[f.name]
                if f.name == "federates_with":
                    try:
                        names = self._federates(e.federates_with)
                    except LookupError as err:
                        return INTERNAL, f"failed to update entry: {err}", None
                    del updated.federates_with[:]
                    updated.federates_with.extend(names)
                elif ef.label == ef.LABEL_REPEATED:
                    del getattr(updated, f.name)[:]
                    getattr(updated, f.name).extend(getattr(e, f.name))
                elif ef.message_type is not None:
                    if e.HasField(f.name):
                        getattr(updated, f.name).CopyFrom(getattr(e, f.name))
                    else:
                        updated.ClearField(f.name)
                else:
                    setattr(updated, f.name, getattr(e, f.name))
            if updated.store_svid and len({s.type for s in updated.selectors}) > 1:
                return (
                    INVALID_ARGUMENT,
                    "failed to update entry: datastore-validation: invalid registration "
                    "entry: selector types must be the same when store SVID is enabled",
                    None,
                )
            updated.revision_number = current.revision_number + 1
            self.entries[e.id] = updated
            return OK, "OK", _sorted_selectors(updated)

    def _list(self, flt: Any) -> list[types_pb2.Entry]:
        """Filter entries; raises _InvalidError("malformed ... filter: ...") like ListEntries."""
        if flt is None:
            return list(self.entries.values())
        spiffe = parent = None
        if flt.HasField("by_parent_id"):
            try:
                parent = _member_id(flt.by_parent_id, self.trust_domain, workload=False)
            except _InvalidError as err:
                raise _InvalidError(f"malformed parent ID filter: {err}") from None
        if flt.HasField("by_spiffe_id"):
            try:
                spiffe = _member_id(flt.by_spiffe_id, self.trust_domain, workload=True)
            except _InvalidError as err:
                raise _InvalidError(f"malformed SPIFFE ID filter: {err}") from None
        sel_filter = None
        if flt.HasField("by_selectors"):
            try:
                sels = _selectors(flt.by_selectors.selectors)
            except _InvalidError as err:
                raise _InvalidError(f"malformed selectors filter: {err}") from None
            if not sels:
                raise _InvalidError("malformed selectors filter: empty selector set")
            sel_filter = ({f"{t}:{v}" for t, v in sels}, flt.by_selectors.match)
        fed_filter = None
        if flt.HasField("by_federates_with"):
            try:
                tds = {trust_domain_from_string(td) for td in flt.by_federates_with.trust_domains}
            except _InvalidError as err:
                raise _InvalidError(f"malformed federates with filter: {err}") from None
            if not tds:
                raise _InvalidError("malformed federates with filter: empty trust domain set")
            fed_filter = (tds, flt.by_federates_with.match)
        out = []
        for e in self.entries.values():
            if spiffe and f"spiffe://{e.spiffe_id.trust_domain}{e.spiffe_id.path}" != spiffe:
                continue
            if parent and f"spiffe://{e.parent_id.trust_domain}{e.parent_id.path}" != parent:
                continue
            if sel_filter and not _match(_sel_set(e), *sel_filter):
                continue
            if fed_filter and not _match(set(e.federates_with), *fed_filter):
                continue
            if flt.HasField("by_hint") and e.hint != flt.by_hint.value:
                continue
            if flt.HasField("by_downstream") and flt.by_downstream.value and not e.downstream:
                continue  # only `true` filters (sqlstore)
            out.append(e)
        return out


class _Servicer(entry_pb2_grpc.EntryServicer):
    def __init__(self, fake: FakeSpireServer) -> None:
        self.fake = fake

    def _enter(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        self.fake.calls[method] += 1
        self.fake.requests.append((method, request))
        fault = self.fake._fault(method, after=False)
        if fault:
            context.abort(fault.code, fault.message)

    def _leave(self, method: str, context: grpc.ServicerContext) -> None:
        fault = self.fake._fault(method, after=True)
        if fault:
            context.abort(fault.code, fault.message)

    def GetEntry(self, request: Any, context: grpc.ServicerContext) -> types_pb2.Entry:
        self._enter("GetEntry", request, context)
        if not request.id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "missing ID")
        with self.fake._lock:
            entry = self.fake.entries.get(request.id)
            if entry is None:
                context.abort(grpc.StatusCode.NOT_FOUND, "entry not found")
            out = _apply_mask(entry, request.output_mask if request.HasField("output_mask") else None)
        self._leave("GetEntry", context)
        return out

    def BatchCreateEntry(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._enter("BatchCreateEntry", request, context)
        mask = request.output_mask if request.HasField("output_mask") else None
        results = []
        for e in request.entries:
            code, message, entry = self.fake._create(e)
            result = entry_pb2.BatchCreateEntryResponse.Result(status=types_pb2.Status(code=code, message=message))
            if entry is not None:
                result.entry.CopyFrom(_apply_mask(entry, mask))
            results.append(result)
        self._leave("BatchCreateEntry", context)
        return entry_pb2.BatchCreateEntryResponse(results=results)

    def BatchUpdateEntry(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._enter("BatchUpdateEntry", request, context)
        in_mask = request.input_mask if request.HasField("input_mask") else None
        out_mask = request.output_mask if request.HasField("output_mask") else None
        results = []
        for e in request.entries:
            code, message, entry = self.fake._update(e, in_mask)
            result = entry_pb2.BatchUpdateEntryResponse.Result(status=types_pb2.Status(code=code, message=message))
            if code == OK and entry is not None:
                result.entry.CopyFrom(_apply_mask(entry, out_mask))
            results.append(result)
        self._leave("BatchUpdateEntry", context)
        return entry_pb2.BatchUpdateEntryResponse(results=results)

    def BatchDeleteEntry(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._enter("BatchDeleteEntry", request, context)
        results = []
        with self.fake._lock:
            for entry_id in request.ids:
                if not entry_id:
                    status = types_pb2.Status(code=INVALID_ARGUMENT, message="missing entry ID")
                elif self.fake.entries.pop(entry_id, None) is None:
                    status = types_pb2.Status(code=NOT_FOUND, message="entry not found")
                else:
                    status = types_pb2.Status(code=OK, message="OK")
                results.append(entry_pb2.BatchDeleteEntryResponse.Result(status=status, id=entry_id))
        self._leave("BatchDeleteEntry", context)
        return entry_pb2.BatchDeleteEntryResponse(results=results)

    def ListEntries(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._enter("ListEntries", request, context)
        with self.fake._lock:
            try:
                found = self.fake._list(request.filter if request.HasField("filter") else None)
            except _InvalidError as err:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
            token = ""
            if request.page_size > 0:
                start = int(request.page_token or 0)
                found = found[start : start + request.page_size]
                token = str(start + len(found)) if found else ""
            mask = request.output_mask if request.HasField("output_mask") else None
            resp = entry_pb2.ListEntriesResponse(entries=[_apply_mask(e, mask) for e in found], next_page_token=token)
        self._leave("ListEntries", context)
        return resp

    def CountEntries(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._enter("CountEntries", request, context)
        with self.fake._lock:
            try:
                count = len(self.fake._list(request.filter if request.HasField("filter") else None))
            except _InvalidError as err:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        self._leave("CountEntries", context)
        return entry_pb2.CountEntriesResponse(count=count)



def _sorted_selectors(e: types_pb2.Entry) -> types_pb2.Entry:
    """The entry as SPIRE 1.15 answers a successful create or update: selectors sorted by type,
    then value (the request's slice is sorted in place on the way to the datastore), while the
    stored entry (GetEntry, ListEntries, the similar entry of ALREADY_EXISTS) keeps the order it
    was written in. Replayed against the real server: tests/real/test_spire_fidelity.py."""
    out = types_pb2.Entry()
    out.CopyFrom(e)
    ordered = sorted(out.selectors, key=lambda sel: (sel.type, sel.value))
    del out.selectors[:]
    out.selectors.extend(ordered)
    return out


def entry(
    spiffe_id: str,
    parent_id: str,
    selectors: Iterable[str],
    *,
    entry_id: str = "",
    **fields: Any,
) -> types_pb2.Entry:
    """Build an Entry message from SPIFFE ID strings and "type:value" selectors (for seeding)."""

    def sid(value: str) -> types_pb2.SPIFFEID:
        td, slash, rest = value[len("spiffe://") :].partition("/")
        return types_pb2.SPIFFEID(trust_domain=td, path=slash + rest)

    sels = [types_pb2.Selector(type=s.partition(":")[0], value=s.partition(":")[2]) for s in selectors]
    return types_pb2.Entry(id=entry_id, spiffe_id=sid(spiffe_id), parent_id=sid(parent_id), selectors=sels, **fields)
