"""`SpireEntryProvider.check`: SPIRE's rules at preview time, one named failure per broken rule.

The table holds invalid inputs with their valid counterparts (the same field, fixed): each
invalid one must fail naming its field, each counterpart must pass. The table also runs through
`python -m pulumi.dynamic` once, as the engine calls it. Property tests cover the SPIFFE ID and
DNS grammars, determinism of entry ids, and that check never crashes on odd input.
"""

from __future__ import annotations

import re
import string
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pulumi.output import Unknown
from pulumi.runtime import rpc

from dynamic_providers.spire.models import entry_id_for, owner_prefix
from dynamic_providers.spire.provider import SpireEntryProvider

TD = "example.org"
GRPC = {"transport": "grpc", "socket_path": "/run/spire/api.sock", "trust_domain": TD, "project": "p", "stack": "s"}
DOCKER = {"transport": "docker-exec", "docker_host": "ssh://root@10.0.0.2", "service": "spire_spire-server"}
DOCKER = {**DOCKER, "trust_domain": TD, "project": "p", "stack": "s"}
KUBECTL = {"transport": "kubectl-exec", "namespace": "spire", "trust_domain": TD, "project": "p", "stack": "s"}

VALID: dict[str, Any] = {
    "spiffe_id": "spiffe://example.org/ns/payments/sa/api",
    "parent_id": "spiffe://example.org/spire/agent/x509pop/worker-1",
    "selectors": ["docker:label:com.docker.swarm.service.name:payments_api", "unix:uid:1000"],
    "connection": GRPC,
}


def _case(field: str, bad: Any, good: Any, needle: str) -> Any:
    return pytest.param(field, bad, good, needle, id=f"{field}:{needle}")


# (field, invalid value, valid counterpart, text the failure must contain besides the field name)
TABLE = [
    _case("spiffe_id", None, "spiffe://example.org/a", "required"),
    _case("spiffe_id", "http://example.org/a", "spiffe://example.org/a", "scheme"),
    _case("spiffe_id", "SPIFFE://example.org/a", "spiffe://example.org/a", "scheme"),
    _case("spiffe_id", "spiffe://Example.org/a", "spiffe://example.org/a", "lowercase"),
    _case("spiffe_id", "spiffe://example.org", "spiffe://example.org/a", "empty path"),
    _case("spiffe_id", "spiffe://example.org/a/", "spiffe://example.org/a", "trailing slash"),
    _case("spiffe_id", "spiffe://example.org/a//b", "spiffe://example.org/a/b", "empty segments"),
    _case("spiffe_id", "spiffe://example.org/a/../b", "spiffe://example.org/a/b", "dot segments"),
    _case("spiffe_id", "spiffe://example.org/a%20b", "spiffe://example.org/a-b", "segment characters"),
    _case("spiffe_id", "spiffe://example.org/a?x=1", "spiffe://example.org/a-x-1", "segment characters"),
    _case("spiffe_id", "spiffe://example.org:8443/a", "spiffe://example.org/a", "trust domain characters"),
    _case("spiffe_id", "spiffe://example.org/spire/agent/x", "spiffe://example.org/ns/agent/x", "reserved"),
    _case("spiffe_id", "spiffe://example.org/spire", "spiffe://example.org/spire-like", "reserved"),
    _case("spiffe_id", "spiffe://other.org/a", "spiffe://example.org/a", "trust domain 'example.org'"),
    _case("spiffe_id", "spiffe://example.org/" + "a" * 2040, "spiffe://example.org/" + "a" * 2000, "2048 bytes"),
    _case(
        "parent_id", "spiffe://other.org/spire/agent/x509pop/n", "spiffe://example.org/spire/agent/x509pop/n", "member"
    ),
    _case("parent_id", "spiffe://example.org", "spiffe://example.org/spire/server", "empty path"),
    _case("parent_id", "", "spiffe://example.org/spire/agent/x509pop/n", "required"),
    _case("selectors", [], ["unix:uid:0"], "at least one"),
    _case("selectors", "unix:uid:0", ["unix:uid:0"], "at least one"),
    _case("selectors", ["docker"], ["docker:label:app:api"], "type:value"),
    _case("selectors", [":value"], ["unix:value"], "type is empty"),
    _case("selectors", ["unix:"], ["unix:uid:0"], "value is empty"),
    _case("selectors", [{"type": "k8s:ns", "value": "x"}], [{"type": "k8s", "value": "ns:x"}], "must not contain ':'"),
    _case("selectors", ["unix:uid:0", "unix:uid:0"], ["unix:uid:0", "unix:gid:0"], "more than once"),
    _case("selectors", [42], ["unix:uid:42"], "string"),
    _case("x509_svid_ttl", -1, 0, ">= 0"),
    _case("x509_svid_ttl", 1.5, 2, "whole number"),
    _case("x509_svid_ttl", 2**31, 2**31 - 1, "int32"),
    _case("x509_svid_ttl", True, 3600, "whole number"),
    _case("jwt_svid_ttl", -300, 300, ">= 0"),
    _case("jwt_svid_ttl", "300", 300.0, "whole number"),
    _case("dns_names", ["bad_name.example.org"], ["good-name.example.org"], "letters, digits"),
    _case("dns_names", ["api.example.org."], ["api.example.org"], "end with a dot"),
    _case("dns_names", ["*.*.example.org"], ["*.example.org"], "more than one wildcard"),
    _case("dns_names", ["api.*.example.org"], ["*.api.example.org"], "first label"),
    _case("dns_names", ["-api.example.org"], ["api.example.org"], "start or end with '-'"),
    _case("dns_names", ["bücher.example.org"], ["xn--bcher-kva.example.org"], "ASCII"),
    _case("dns_names", ["a" * 64 + ".example.org"], ["a" * 63 + ".example.org"], "63"),
    _case("dns_names", ["ab--c.example.org"], ["ab-c.example.org"], "3rd and 4th"),
    _case(
        "dns_names", ["api.example.org", "api.example.org"], ["api.example.org", "www.example.org"], "more than once"
    ),
    _case("dns_names", [""], ["api"], "empty"),
    _case("federates_with", ["spiffe://Other.org"], ["spiffe://other.org"], "lowercase"),
    _case("federates_with", ["spiffe://other.org/ns/x"], ["spiffe://other.org"], "not a SPIFFE ID with a path"),
    _case("federates_with", ["example.org"], ["other.org"], "own trust domain"),
    _case("federates_with", ["other.org", "spiffe://other.org"], ["other.org", "third.org"], "more than once"),
    _case("hint", "x" * 1025, "x" * 1024, "1024 bytes"),
    _case("hint", "é" * 513, "é" * 512, "1024 bytes"),
    _case("admin", "yes", True, "valid boolean"),
    _case("downstream", 1, True, "valid boolean"),
    _case("store_svid", "true", False, "valid boolean"),
    _case("connection", None, GRPC, "required"),
    _case("connection", {**GRPC, "transport": "ssh"}, GRPC, "'transport' does not match"),
    _case("connection", {k: v for k, v in GRPC.items() if k != "socket_path"}, GRPC, "connection.socket_path"),
    _case("connection", {**GRPC, "socket_path": "run/api.sock"}, GRPC, "connection.socket_path"),
    _case("connection", {**GRPC, "socket_path": "/tmp/" + "s" * 110}, GRPC, "107 bytes"),
    _case("connection", {**GRPC, "sockt_path": "/x"}, GRPC, "connection.sockt_path"),
    _case("connection", {**GRPC, "trust_domain": "spiffe://example.org"}, GRPC, "connection.trust_domain"),
    _case("connection", {**GRPC, "project": ""}, GRPC, "connection.project"),
    _case("connection", {**GRPC, "timeout_seconds": 0}, GRPC, "connection.timeout_seconds"),
    _case("connection", {**DOCKER, "docker_host": "10.0.0.2"}, DOCKER, "connection.docker_host"),
    _case("connection", {k: v for k, v in DOCKER.items() if k != "service"}, DOCKER, "exactly one of container"),
    _case("connection", {**DOCKER, "container": "spire-server"}, {**DOCKER, "container": "c", "service": None}, "one"),
    _case(
        "connection", {**KUBECTL, "socket_path": "run/x.sock"}, {**KUBECTL, "socket_path": "/run/x.sock"}, "absolute"
    ),
    _case("connection", {**KUBECTL, "namespace": ""}, KUBECTL, "connection.namespace"),
]


def _props(field: str, value: Any) -> dict[str, Any]:
    props = dict(VALID)
    if value is None:
        props.pop(field, None)
    else:
        props[field] = value
    return props


def _failures(props: dict[str, Any]) -> list[tuple[str, str]]:
    result = SpireEntryProvider().check({}, props)
    return [(f.property, f.reason) for f in result.failures]


def test_the_table_is_big_enough() -> None:
    assert len(TABLE) >= 30
    assert len({p.values[0] for p in TABLE}) >= 10  # fields covered


@pytest.mark.parametrize(("field", "bad", "good", "needle"), TABLE)
def test_invalid_input_fails_naming_the_field(field: str, bad: Any, good: Any, needle: str) -> None:
    failures = _failures(_props(field, bad))
    assert failures, f"{field}={bad!r} was accepted"
    assert {prop for prop, _ in failures} == {field}, failures
    assert all(reason.startswith(field) for _, reason in failures), failures
    assert any(needle in reason for _, reason in failures), failures


@pytest.mark.parametrize(("field", "bad", "good", "needle"), TABLE)
def test_valid_counterpart_passes(field: str, bad: Any, good: Any, needle: str) -> None:
    props = _props(field, good)
    if field == "store_svid":
        props["selectors"] = ["unix:uid:0"]
    assert _failures(props) == []


def test_store_svid_needs_one_selector_type() -> None:
    props = {**VALID, "store_svid": True}
    failures = _failures(props)
    assert failures == [
        ("store_svid", "store_svid: needs all selectors of one type (SVIDStore export), got types ['docker', 'unix']")
    ]
    assert _failures({**props, "selectors": ["unix:uid:0", "unix:gid:0"]}) == []


def test_one_failure_per_broken_rule_across_fields() -> None:
    props = {**VALID, "spiffe_id": "spiffe://example.org/a/", "x509_svid_ttl": -1, "hint": "x" * 2000}
    assert sorted(prop for prop, _ in _failures(props)) == ["hint", "spiffe_id", "x509_svid_ttl"]


def test_owner_parts_come_from_the_provider_environment_when_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    bare = {k: v for k, v in GRPC.items() if k not in ("project", "stack")}
    monkeypatch.delenv("PULUMI_PROJECT", raising=False)
    monkeypatch.delenv("PULUMI_STACK", raising=False)
    assert sorted(r for _, r in _failures({**VALID, "connection": bare})) == [
        "connection.project is required",
        "connection.stack is required",
    ]
    monkeypatch.setenv("PULUMI_PROJECT", "identity-platform")
    monkeypatch.setenv("PULUMI_STACK", "prod")
    result = SpireEntryProvider().check({}, {**VALID, "connection": bare})
    assert result.failures == []
    assert result.inputs["connection"] == {**bare, "project": "identity-platform", "stack": "prod"}
    given = SpireEntryProvider().check({}, {**VALID, "connection": {**bare, "project": "p", "stack": "s"}})
    assert given.inputs["connection"]["stack"] == "s"  # what the program says wins


def test_check_fills_defaults_and_drops_output_keys() -> None:
    result = SpireEntryProvider().check({}, {**VALID, "entry_id": None, "__provider": "blob"})
    assert result.failures == []
    assert result.inputs == {
        **{k: v for k, v in VALID.items()},
        "x509_svid_ttl": 0,
        "jwt_svid_ttl": 0,
        "dns_names": [],
        "federates_with": [],
        "admin": False,
        "downstream": False,
        "hint": "",
        "store_svid": False,
    }


@pytest.fixture(params=[pytest.param(Unknown, id="Unknown()"), pytest.param(lambda: rpc.UNKNOWN, id="sentinel")])
def unknown(request: pytest.FixtureRequest) -> Any:
    """The host passes `pulumi.output.Unknown()`; the wire sentinel string is handled too."""
    return request.param()


class TestUnknownValuesDuringPreview:
    """Preview passes Unknown placeholders for values other resources have not produced yet."""

    @pytest.mark.parametrize("field", ["spiffe_id", "parent_id", "selectors", "dns_names", "hint", "connection"])
    def test_unknown_field_is_not_reported(self, field: str, unknown: Any) -> None:
        assert _failures({**VALID, field: unknown}) == []

    def test_unknown_inside_lists_and_connection(self, unknown: Any) -> None:
        props = {
            **VALID,
            "selectors": ["unix:uid:0", unknown],
            "connection": {**DOCKER, "service": unknown},
        }
        assert _failures(props) == []

    def test_known_problems_next_to_unknowns_still_fail(self, unknown: Any) -> None:
        props = {**VALID, "selectors": [unknown, "bad"], "connection": {**GRPC, "socket_path": unknown}}
        assert [p for p, _ in _failures(props)] == ["selectors"]

    def test_unknown_trust_domain_skips_membership_only(self, unknown: Any) -> None:
        props = {**VALID, "connection": {**GRPC, "trust_domain": unknown}, "spiffe_id": "spiffe://x.org/a/"}
        assert [p for p, _ in _failures(props)] == ["spiffe_id"]

    def test_unknowns_are_returned_as_is(self, unknown: Any) -> None:
        result = SpireEntryProvider().check({}, {**VALID, "hint": unknown})
        assert result.inputs["hint"] is unknown


def test_the_table_through_the_engine_host(dynamic_host) -> None:
    """The same verdicts when the engine calls Check on `python -m pulumi.dynamic`."""
    host = dynamic_host(SpireEntryProvider(), resource_type="pulumi-python:dynamic/spire:Entry")
    for param in TABLE:
        field, bad, good, needle = param.values
        checked = host.check("entry", {}, _props(field, bad))
        assert checked.failures and {p for p, _ in checked.failures} == {field}, (param.id, checked.failures)
        assert any(needle in reason for _, reason in checked.failures), (param.id, checked.failures)
        if field != "store_svid":
            assert host.check("entry", {}, _props(field, good)).failures == [], param.id


# --- properties ---------------------------------------------------------------------------------

segment = st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..")
)
paths = (
    st.lists(segment, min_size=1, max_size=6)
    .map(lambda segs: "/" + "/".join(segs))
    .filter(lambda p: p != "/spire" and not p.startswith("/spire/"))
)
selector = st.tuples(
    st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=8),
    st.text(alphabet=string.ascii_letters + string.digits + ":._-=/", min_size=1, max_size=20),
).map(lambda tv: f"{tv[0]}:{tv[1]}")
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True).filter(lambda s: s[2:4] != "--")
dns_name = st.lists(label, min_size=1, max_size=4).map(".".join)


@settings(max_examples=200, deadline=None)
@given(path=paths, selectors=st.lists(selector, min_size=1, max_size=5, unique=True), names=st.lists(dns_name))
def test_any_well_formed_entry_is_accepted(path: str, selectors: list[str], names: list[str]) -> None:
    props = {**VALID, "spiffe_id": f"spiffe://{TD}{path}", "selectors": selectors, "dns_names": sorted(set(names))}
    assert _failures(props) == []


@settings(max_examples=200, deadline=None)
@given(path=paths, bad=st.sampled_from(["%", " ", "@", "#", "?", "é", "+", "~", "*"]), where=st.integers(0, 100))
def test_any_character_outside_the_grammar_is_rejected(path: str, bad: str, where: int) -> None:
    i = 1 + where % len(path)
    corrupted = path[:i] + bad + path[i:]
    failures = _failures({**VALID, "spiffe_id": f"spiffe://{TD}{corrupted}"})
    assert [p for p, _ in failures] == ["spiffe_id"]


@settings(max_examples=200, deadline=None)
@given(td=st.from_regex(r"[a-z0-9.]{0,10}[A-Z][a-zA-Z0-9.]{0,10}", fullmatch=True), path=paths)
def test_uppercase_trust_domains_are_rejected(td: str, path: str) -> None:
    failures = _failures({**VALID, "parent_id": f"spiffe://{td}{path}"})
    assert failures and failures[0][0] == "parent_id" and "lowercase" in failures[0][1]


@settings(max_examples=200, deadline=None)
@given(
    project=st.text(min_size=1, max_size=300),
    stack=st.text(min_size=1, max_size=300),
    path=paths,
    selectors=st.lists(selector, min_size=1, max_size=6, unique=True),
    data=st.data(),
)
def test_entry_ids_fit_spire_and_ignore_selector_order(
    project: str, stack: str, path: str, selectors: list[str], data: st.DataObject
) -> None:
    prefix = owner_prefix(project, stack)
    spiffe_id, parent = f"spiffe://{TD}{path}", VALID["parent_id"]
    entry_id = entry_id_for(prefix, spiffe_id, parent, selectors)
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,255}", entry_id), entry_id
    assert entry_id.startswith(prefix) and prefix.startswith("pulumi.") and prefix.count(".") == 3
    shuffled = data.draw(st.permutations(selectors))
    assert entry_id_for(prefix, spiffe_id, parent, shuffled) == entry_id
    assert entry_id_for(prefix, spiffe_id + "x", parent, selectors) != entry_id


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@example(overrides={"x509_svid_ttl": float("inf")})  # found by CI: int(inf) raised OverflowError
@example(overrides={"x509_svid_ttl": float("-inf"), "jwt_svid_ttl": float("nan")})
@given(
    overrides=st.dictionaries(
        st.sampled_from(
            [
                "spiffe_id",
                "parent_id",
                "selectors",
                "x509_svid_ttl",
                "dns_names",
                "federates_with",
                "hint",
                "connection",
            ]
        ),
        json_values,
    )
)
def test_check_reports_instead_of_crashing(overrides: dict[str, Any]) -> None:
    failures = _failures({**VALID, **overrides})
    for prop, reason in failures:
        assert reason.startswith(prop), (prop, reason)
