"""A fake `spire-server` CLI: `entry create|update|show|delete` as SPIRE 1.15's cmd/spire-server does.

Like the real binary it is only a client: it parses Go-`flag`-style arguments, calls the Entry
API over the admin socket (`-socketPath`, default /tmp/spire-server/private/api.sock) and
prints the response. Reproduced behaviour (cmd/spire-server/cli/entry/*.go, cliprinter):

- `-output json`: protojson with proto field names and unpopulated fields, nulls removed, keys
  sorted, one compact line; int64 fields (`created_at`, `expires_at`, `revision_number`) are
  JSON strings, int32 TTLs numbers.
- create/update: for every non-OK result (ALREADY_EXISTS included) the printed `entry` is the
  *request*, not the server's entry. In json mode the exit status is 0 anyway (only the pretty
  printer turns failed results into "Error: failed to create one or more entries", exit 1).
- update sends no input mask: every field is replaced (flags left out reset to zero values).
- show: `-entryID` uses GetEntry (NOT_FOUND is an error); filters use ListEntries with
  `by_downstream` always set, pages of 500, results sorted.
- delete: per-id status in the results; exit 0 in json mode even for NOT_FOUND.
- errors: "Error: <message>" on stderr, exit 1; gRPC errors read
  "rpc error: code = NotFound desc = entry not found" (Go code names).

`files` maps paths inside the fake container to host paths (the admin socket), so the fake
`docker` / `kubectl` can run this in-process for a container of the fake world.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import grpc
from google.protobuf import json_format

from dynamic_providers.spire._proto import entry_pb2, types_pb2

DEFAULT_SOCKET = "/tmp/spire-server/private/api.sock"
_SERVICE = "/spire.api.server.entry.v1.Entry/"
GO_CODE_NAMES = {
    grpc.StatusCode.CANCELLED: "Canceled",
    **{c: "".join(p.title() for p in c.name.split("_")) for c in grpc.StatusCode if c is not grpc.StatusCode.CANCELLED},
}
GO_CODE_NAMES[grpc.StatusCode.OK] = "OK"
_OK, _INVALID_ARGUMENT = 0, 3


class CliError(Exception):
    """A command failure: printed as "Error: <msg>", exit status 1."""


class FlagError(Exception):
    """A flag-parsing failure (already printed with the usage), exit status 1."""


# --- Go `flag` package semantics -------------------------------------------------------------


@dataclass
class _Flag:
    kind: str  # string | int | int64 | bool | strings | boolfunc | output
    default: Any
    usage: str


@dataclass
class FlagSet:
    name: str
    flags: dict[str, _Flag] = field(default_factory=dict)

    def add(self, name: str, kind: str, default: Any = None, usage: str = "") -> None:
        if default is None:
            default = {"string": "", "int": 0, "int64": 0, "bool": False, "strings": [], "boolfunc": False}.get(kind)
        self.flags[name] = _Flag(kind, default, usage)

    def usage(self) -> str:
        lines = [f"Usage of {self.name}:"]
        for name in sorted(self.flags):
            f = self.flags[name]
            arg = "" if f.kind in ("bool", "boolfunc") else (" int" if f.kind.startswith("int") else " string")
            lines.append(f"  -{name}{arg}\n    \t{f.usage}")
        return "\n".join(lines) + "\n"

    def parse(self, args: Sequence[str], stderr: TextIO) -> dict[str, Any]:
        values = {n: (list(f.default) if f.kind == "strings" else f.default) for n, f in self.flags.items()}
        values["__set__"] = set()
        rest = list(args)

        def fail(msg: str) -> FlagError:
            stderr.write(msg + "\n" + self.usage())
            return FlagError(msg)

        while rest:
            s = rest[0]
            if len(s) < 2 or s[0] != "-":
                break
            minuses = 2 if s[1] == "-" else 1
            if minuses == 2 and len(s) == 2:
                rest = rest[1:]
                break
            name = s[minuses:]
            if not name or name[0] in "-=":
                raise fail(f"bad flag syntax: {s}")
            rest = rest[1:]
            has_value, value = False, ""
            if "=" in name[1:]:
                idx = name.index("=", 1)
                name, value, has_value = name[:idx], name[idx + 1 :], True
            flag = self.flags.get(name)
            if flag is None:
                raise fail(f"flag provided but not defined: -{name}")
            if flag.kind in ("bool", "boolfunc"):
                parsed = _parse_bool(value) if has_value else True
                if parsed is None:
                    raise fail(f'invalid boolean value "{value}" for -{name}: parse error')
                values[name] = True if flag.kind == "boolfunc" else parsed
            else:
                if not has_value and rest:
                    value, rest, has_value = rest[0], rest[1:], True
                if not has_value:
                    raise fail(f"flag needs an argument: -{name}")
                if flag.kind in ("int", "int64"):
                    try:
                        values[name] = int(value, 0)
                    except ValueError:
                        raise fail(f'invalid value "{value}" for flag -{name}: parse error') from None
                elif flag.kind == "strings":
                    values[name].append(value)
                elif flag.kind == "output":
                    if value not in ("json", "pretty"):
                        raise fail(f'invalid value "{value}" for flag -{name}: unknown output format: {value}')
                    values[name] = value
                else:
                    values[name] = value
            values["__set__"].add(name)
        values["__args__"] = rest
        return values


def _parse_bool(value: str) -> bool | None:
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


# --- SPIFFE ID strings (go-spiffe FromString) -----------------------------------------------


def id_string_to_proto(value: str) -> types_pb2.SPIFFEID:
    from tests.fakes.spire_server import _InvalidError, _path, _trust_domain

    if not value.startswith("spiffe://"):
        raise CliError("scheme is missing or invalid")
    td, slash, rest = value[len("spiffe://") :].partition("/")
    try:
        _trust_domain(td)
        _path(slash + rest)
    except _InvalidError as e:
        raise CliError(str(e)) from None
    return types_pb2.SPIFFEID(trust_domain=td, path=slash + rest)


def parse_selector(value: str) -> types_pb2.Selector:
    type_, sep, rest = value.partition(":")
    if not sep:
        raise CliError(f'selector "{value}" must be formatted as type:value')
    return types_pb2.Selector(type=type_, value=rest)


# --- output ---------------------------------------------------------------------------------


def protojson(msg: Any) -> str:
    """cliprinter's json output: proto names, unpopulated fields, nulls removed, sorted keys."""
    data = json_format.MessageToDict(msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Go's encoding/json escapes HTML-significant characters.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"


def _entry_lines(e: types_pb2.Entry) -> list[str]:
    def sid(pb: types_pb2.SPIFFEID) -> str:
        return f"spiffe://{pb.trust_domain}{pb.path}"

    lines = [
        f"Entry ID                : {e.id or '(none)'}",
        f"SPIFFE ID               : {sid(e.spiffe_id)}",
        f"Parent ID               : {sid(e.parent_id)}",
        f"Revision                : {e.revision_number}",
    ]
    if e.downstream:
        lines.append("Downstream              : true")
    lines.append(f"X509-SVID TTL           : {e.x509_svid_ttl or 'default'}")
    lines.append(f"JWT-SVID TTL            : {e.jwt_svid_ttl or 'default'}")
    lines += [f"Selector                : {s.type}:{s.value}" for s in e.selectors]
    lines += [f"FederatesWith           : {td}" for td in e.federates_with]
    lines += [f"DNS name                : {d}" for d in e.dns_names]
    if e.admin:
        lines.append("Admin                   : true")
    if e.store_svid:
        lines.append("StoreSvid               : true")
    if e.hint:
        lines.append(f"Hint                    : {e.hint}")
    return [*lines, ""]


# --- the commands ---------------------------------------------------------------------------


@dataclass
class Env:
    stdout: TextIO
    stderr: TextIO
    files: Mapping[str, str]  # container path -> host path


class EntryAPI:
    """The Go SDK's EntryClient over the admin socket, errors rendered like grpc-go."""

    def __init__(self, socket_path: str, env: Env) -> None:
        self.socket_path = socket_path
        host_path = env.files.get(socket_path, socket_path) if env.files else socket_path
        self.host_path = host_path
        self.channel = grpc.insecure_channel(f"unix:{host_path}")

    def close(self) -> None:
        self.channel.close()

    def call(self, method: str, request: Any, response_type: Any) -> Any:
        if not os.path.exists(self.host_path):
            raise CliError(
                'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: '
                f'dial unix {self.socket_path}: connect: no such file or directory"'
            )
        rpc: Callable[..., Any] = self.channel.unary_unary(
            _SERVICE + method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_type.FromString,
        )
        try:
            return rpc(request, timeout=60)
        except grpc.RpcError as e:
            code = e.code() if isinstance(e, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = e.details() if isinstance(e, grpc.Call) else str(e)
            raise CliError(f"rpc error: code = {GO_CODE_NAMES[code]} desc = {details}") from None


def _common_flags(fs: FlagSet) -> None:
    fs.add("socketPath", "string", DEFAULT_SOCKET, "Path to the SPIRE Server API socket")
    fs.add("output", "output", "pretty", "Desired output format (pretty, json); default: pretty.")


def _entry_flags(fs: FlagSet, *, update: bool) -> None:
    fs.add("entryID", "string", usage="The Registration Entry ID")
    fs.add("parentID", "string", usage="The SPIFFE ID of this record's parent")
    fs.add("spiffeID", "string", usage="The SPIFFE ID that this record represents")
    fs.add("x509SVIDTTL", "int", usage="The lifetime, in seconds, for x509-SVIDs issued based on this entry.")
    fs.add("jwtSVIDTTL", "int", usage="The lifetime, in seconds, for JWT-SVIDs issued based on this entry.")
    fs.add("data", "string", usage="Path to a file containing registration JSON (optional).")
    fs.add("selector", "strings", usage="A colon-delimited type:value selector. Can be used more than once")
    fs.add("federatesWith", "strings", usage="SPIFFE ID of a trust domain to federate with.")
    fs.add("admin", "bool", usage="Grant access to the SPIRE Server's management APIs")
    fs.add("downstream", "bool", usage="The entry describes a downstream SPIRE server")
    fs.add("storeSVID", "bool", usage="Store the issued SVID through an SVIDStore plugin")
    fs.add("entryExpiry", "int64", usage="An expiry, from epoch in seconds, for the resulting registration entry")
    fs.add("dns", "strings", usage="A DNS name that will be included in SVIDs issued based on this entry")
    fs.add("hint", "string", usage="The entry hint, used to disambiguate entries with the same SPIFFE ID")
    kind = "boolfunc" if update else "bool"
    fs.add("disableX509SVIDPrefetch", kind, usage="Disables prefetching X509 SVID for this entry")
    fs.add("jwtSVIDIncludeJTI", kind, usage="Includes a unique 'jti' claim in JWT-SVIDs issued for this entry")
    if not update:
        fs.add("node", "bool", usage="If set, this entry will be applied to matching nodes rather than workloads")
    _common_flags(fs)


def _int32(value: int, what: str) -> int:
    if not -(2**31) <= value < 2**31:
        raise CliError(f"invalid value for {what}: value out of range")
    return value


def _build_entry(v: dict[str, Any], *, update: bool) -> types_pb2.Entry:
    spiffe_id = id_string_to_proto(v["spiffeID"])
    if not update and v["node"]:
        parent_id = types_pb2.SPIFFEID(trust_domain=spiffe_id.trust_domain, path="/spire/server")
    else:
        parent_id = id_string_to_proto(v["parentID"])
    e = types_pb2.Entry(
        id=v["entryID"],
        parent_id=parent_id,
        spiffe_id=spiffe_id,
        downstream=v["downstream"],
        expires_at=v["entryExpiry"],
        dns_names=v["dns"],
        store_svid=v["storeSVID"],
        x509_svid_ttl=_int32(v["x509SVIDTTL"], "X509 SVID TTL"),
        jwt_svid_ttl=_int32(v["jwtSVIDTTL"], "JWT SVID TTL"),
        hint=v["hint"],
    )
    e.selectors.extend(parse_selector(s) for s in v["selector"])
    if v["disableX509SVIDPrefetch"] or v["jwtSVIDIncludeJTI"]:
        e.additional_attributes.CopyFrom(
            types_pb2.Entry.AdditionalAttributes(
                disable_x509_svid_prefetch=v["disableX509SVIDPrefetch"], jwt_svid_include_jti=v["jwtSVIDIncludeJTI"]
            )
        )
    e.federates_with.extend(v["federatesWith"])
    e.admin = v["admin"]
    return e


def _print_results(env: Env, v: dict[str, Any], resp: Any, verb: str) -> None:
    if v["output"] == "json":
        env.stdout.write(protojson(resp))
        return
    failed = [r for r in resp.results if r.status.code != _OK]
    for r in resp.results:
        if r.status.code == _OK:
            env.stdout.write("\n".join(_entry_lines(r.entry)) + "\n")
    for r in failed:
        name = _CODES.get(r.status.code, "Unknown")
        env.stderr.write(f'Failed to {verb} the following entry (code: {name}, msg: "{r.status.message}"):\n')
        env.stderr.write("\n".join(_entry_lines(r.entry)) + "\n")
    if failed:
        raise CliError(f"failed to {verb} one or more entries")


_CODES = {c.value[0]: GO_CODE_NAMES[c] for c in grpc.StatusCode}


def cmd_create(api: EntryAPI, env: Env, v: dict[str, Any]) -> None:
    if v["data"]:
        raise CliError("the fake spire-server does not implement -data")
    if not v["selector"]:
        raise CliError("at least one selector is required")
    if v["node"] and v["federatesWith"]:
        raise CliError("node entries can not federate")
    if not v["parentID"] and not v["node"]:
        raise CliError("a parent ID is required if the node flag is not set")
    if not v["spiffeID"]:
        raise CliError("a SPIFFE ID is required")
    if v["x509SVIDTTL"] < 0:
        raise CliError("a positive x509-SVID TTL is required")
    if v["jwtSVIDTTL"] < 0:
        raise CliError("a positive JWT-SVID TTL is required")
    entry = _build_entry(v, update=False)
    resp = api.call(
        "BatchCreateEntry", entry_pb2.BatchCreateEntryRequest(entries=[entry]), entry_pb2.BatchCreateEntryResponse
    )
    for r in resp.results:
        if r.status.code != _OK:
            # "The Entry API does not include in the results the entries that failed to be
            # created, so we populate them from the request data." (create.go)
            r.entry.CopyFrom(entry)
    _print_results(env, v, resp, "create")


def cmd_update(api: EntryAPI, env: Env, v: dict[str, Any]) -> None:
    if v["data"]:
        raise CliError("the fake spire-server does not implement -data")
    if not v["entryID"]:
        raise CliError("entry ID is required")
    if not v["selector"]:
        raise CliError("at least one selector is required")
    if not v["parentID"]:
        raise CliError("a parent ID is required")
    if not v["spiffeID"]:
        raise CliError("a SPIFFE ID is required")
    if v["x509SVIDTTL"] < 0:
        raise CliError("a positive x509-SVID TTL is required")
    if v["jwtSVIDTTL"] < 0:
        raise CliError("a positive JWT-SVID TTL is required")
    entry = _build_entry(v, update=True)
    if {"disableX509SVIDPrefetch", "jwtSVIDIncludeJTI"} & v["__set__"]:
        try:
            existing = api.call("GetEntry", entry_pb2.GetEntryRequest(id=v["entryID"]), types_pb2.Entry)
        except CliError as e:
            raise CliError(f"failed to fetch existing entry to merge additional attributes: {e}") from None
        merged = types_pb2.Entry.AdditionalAttributes()
        if existing.HasField("additional_attributes"):
            merged.CopyFrom(existing.additional_attributes)
        if "disableX509SVIDPrefetch" in v["__set__"]:
            merged.disable_x509_svid_prefetch = True
        if "jwtSVIDIncludeJTI" in v["__set__"]:
            merged.jwt_svid_include_jti = True
        entry.additional_attributes.CopyFrom(merged)
    # No input mask: BatchUpdateEntry replaces every field.
    resp = api.call(
        "BatchUpdateEntry", entry_pb2.BatchUpdateEntryRequest(entries=[entry]), entry_pb2.BatchUpdateEntryResponse
    )
    for r in resp.results:
        if r.status.code != _OK:
            r.entry.CopyFrom(entry)
    _print_results(env, v, resp, "update")


_MATCH = {"exact": 0, "subset": 1, "superset": 2, "any": 3}


def _sort_key(e: types_pb2.Entry) -> tuple[Any, ...]:
    sels = sorted((s.type, s.value) for s in e.selectors)
    return (
        e.spiffe_id.trust_domain,
        e.spiffe_id.path,
        e.parent_id.trust_domain,
        e.parent_id.path,
        e.x509_svid_ttl,
        e.jwt_svid_ttl,
        len(sels),
        sels,
    )


def cmd_show(api: EntryAPI, env: Env, v: dict[str, Any]) -> None:
    if v["entryID"] and (v["parentID"] or v["spiffeID"] or v["selector"]):
        raise CliError("the -entryID flag can't be combined with others")
    resp = entry_pb2.ListEntriesResponse()
    if v["entryID"]:
        try:
            resp.entries.append(api.call("GetEntry", entry_pb2.GetEntryRequest(id=v["entryID"]), types_pb2.Entry))
        except CliError as e:
            raise CliError(f"error fetching entry ID {v['entryID']}: {e}") from None
    else:
        flt = entry_pb2.ListEntriesRequest.Filter()
        if v["parentID"]:
            try:
                flt.by_parent_id.CopyFrom(id_string_to_proto(v["parentID"]))
            except CliError as e:
                raise CliError(f'error parsing parent ID "{v["parentID"]}": {e}') from None
        if v["spiffeID"]:
            try:
                flt.by_spiffe_id.CopyFrom(id_string_to_proto(v["spiffeID"]))
            except CliError as e:
                raise CliError(f'error parsing SPIFFE ID "{v["spiffeID"]}": {e}') from None
        if v["selector"]:
            if v["matchSelectorsOn"] not in _MATCH:
                raise CliError(f'match behavior "{v["matchSelectorsOn"]}" unknown')
            try:
                sels = [parse_selector(s) for s in v["selector"]]
            except CliError as e:
                raise CliError(f"error parsing selectors: {e}") from None
            flt.by_selectors.CopyFrom(types_pb2.SelectorMatch(selectors=sels, match=_MATCH[v["matchSelectorsOn"]]))
        if v["federatesWith"]:
            if v["matchFederatesWithOn"] not in _MATCH:
                raise CliError(f'match behavior "{v["matchFederatesWithOn"]}" unknown')
            flt.by_federates_with.CopyFrom(
                types_pb2.FederatesWithMatch(trust_domains=v["federatesWith"], match=_MATCH[v["matchFederatesWithOn"]])
            )
        if v["hint"]:
            flt.by_hint.value = v["hint"]
        flt.by_downstream.value = v["downstream"]
        token = ""
        while True:
            try:
                page = api.call(
                    "ListEntries",
                    entry_pb2.ListEntriesRequest(page_size=500, page_token=token, filter=flt),
                    entry_pb2.ListEntriesResponse,
                )
            except CliError as e:
                raise CliError(f"error fetching entries: {e}") from None
            resp.entries.extend(page.entries)
            token = page.next_page_token
            if not token:
                break
    ordered = sorted(resp.entries, key=_sort_key)
    for e in ordered:
        e.selectors.sort(key=lambda s: (s.type, s.value))
    del resp.entries[:]
    resp.entries.extend(ordered)
    if v["output"] == "json":
        env.stdout.write(protojson(resp))
        return
    n = len(resp.entries)
    env.stdout.write(f"Found {n} {'entry' if n == 1 else 'entries'}\n")
    for e in resp.entries:
        env.stdout.write("\n".join(_entry_lines(e)) + "\n")


def cmd_delete(api: EntryAPI, env: Env, v: dict[str, Any]) -> None:
    if v["file"]:
        raise CliError("the fake spire-server does not implement -file")
    if not v["entryID"]:
        raise CliError("an entry ID is required")
    resp = api.call(
        "BatchDeleteEntry", entry_pb2.BatchDeleteEntryRequest(ids=[v["entryID"]]), entry_pb2.BatchDeleteEntryResponse
    )
    if v["output"] == "json":
        env.stdout.write(protojson(resp))
        return
    failed = [r for r in resp.results if r.status.code != _OK]
    for r in resp.results:
        if r.status.code == _OK:
            env.stdout.write(f"Deleted entry with ID: {r.id}\n")
    for r in failed:
        env.stderr.write(
            f'Failed to delete entry with ID {r.id} (code: {_CODES[r.status.code]}, msg: "{r.status.message}")\n'
        )
    if failed:
        raise CliError("failed to delete one or more entries")


def _flagset(command: str) -> FlagSet:
    fs = FlagSet(f"entry {command}")
    if command in ("create", "update"):
        _entry_flags(fs, update=command == "update")
    elif command == "show":
        fs.add("entryID", "string", usage="The Entry ID of the records to show")
        fs.add("parentID", "string", usage="The Parent ID of the records to show")
        fs.add("spiffeID", "string", usage="The SPIFFE ID of the records to show")
        fs.add("downstream", "bool", usage="The entry describes a downstream SPIRE server")
        fs.add("selector", "strings", usage="A colon-delimited type:value selector. Can be used more than once")
        fs.add("federatesWith", "strings", usage="SPIFFE ID of a trust domain an entry is federate with.")
        fs.add("matchFederatesWithOn", "string", "superset", "exact, any, superset or subset")
        fs.add("matchSelectorsOn", "string", "superset", "exact, any, superset or subset")
        fs.add("hint", "string", usage="The Hint of the records to show (optional)")
        _common_flags(fs)
    elif command == "delete":
        fs.add("entryID", "string", usage="The Registration Entry ID of the record to delete.")
        fs.add("file", "string", usage="Path to a file containing a JSON structure for batch deletion (optional).")
        _common_flags(fs)
    return fs


COMMANDS: dict[str, Callable[[EntryAPI, Env, dict[str, Any]], None]] = {
    "create": cmd_create,
    "update": cmd_update,
    "show": cmd_show,
    "delete": cmd_delete,
}


def main(argv: Sequence[str], env: Env) -> int:
    """Run `spire-server <argv>`; return the exit status."""
    if len(argv) < 2 or argv[0] != "entry" or argv[1] not in COMMANDS:
        env.stderr.write(
            "Usage: spire-server [--version] [--help] <command> [<args>]\n\n"
            f"fake spire-server: only `entry {{{'|'.join(COMMANDS)}}}` is implemented, got {list(argv[:2])}\n"
        )
        return 127
    command = argv[1]
    try:
        values = _flagset(command).parse(argv[2:], env.stderr)
    except FlagError:
        return 1
    api = EntryAPI(values["socketPath"], env)
    try:
        COMMANDS[command](api, env, values)
    except CliError as e:
        env.stderr.write(f"Error: {e}\n")
        return 1
    finally:
        api.close()
    return 0


if __name__ == "__main__":
    files = json.loads(os.environ.get("SPIRE_FAKE_FILES", "{}"))
    sys.exit(main(sys.argv[1:], Env(sys.stdout, sys.stderr, files)))
