"""The Ziti providers called in-process, through their public methods, against the loopback
controller fake: what each call leaves on the controller and what it says.

tests/dynamic_providers/test_foreign_objects.py, test_ziti_import.py and test_ziti_faults.py prove
these contracts through the engine's provider host; here they run in the test process for every
kind, so mutation testing (bench/mutation.py) sees which test exercises which decision:

* ownership on every write: update and delete write only an entity whose tags carry this
  resource's ownership (the state's `owner`, the new one on update, or the host's stack on a
  delete without one); anything else is refused untouched with `ForeignObjectError`;
* create-or-adopt: a create that meets the name taken adopts the entity only when it carries this
  resource's tags (after a crash between create and state write), and brings it to the declared
  state; any other holder is refused naming it; a lost answer is looked up before posting again;
* take-over (`import_id`): an untagged entity becomes this resource's; another owner's is refused;
* check: every failure named by its property path, Unknown values skipped, misspelt inputs named;
* what the controller computes: a CA verified right after its create (deleted again when that
  fails, or named for the next `up` when it cannot be), an unenrolled router with an expired JWT
  re-enrolled on update and an enrolled one never, the outputs read from the controller.
"""

from __future__ import annotations

import base64
import copy
import datetime
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from pulumi.runtime import rpc

from dynamic_providers._kernel import REFRESH_HINT, ForeignObjectError
from dynamic_providers._transport import RetryPolicy, forget_sessions
from dynamic_providers.ziti import provider as zp
from dynamic_providers.ziti.client import ZitiApiError, ZitiClient
from tests.fakes import ziti as fake_ziti
from tests.fakes.ziti import API, BodyRecorder, ZitiController, make_ca
from tests.fakes.ziti_kinds import ZITI_KINDS, ZitiKind
from tests.harness.loopback import LoopbackServer

OWNER = "identity-platform/test"  # this stack: PULUMI_PROJECT / PULUMI_STACK below
OTHER = "identity-platform/prod"
RESOURCE = "ziti-resource"
Ziti = tuple[ZitiController, LoopbackServer]


@pytest.fixture(autouse=True)
def _this_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_PROJECT", "identity-platform")
    monkeypatch.setenv("PULUMI_STACK", "test")


@pytest.fixture
def ziti(loopback: Callable[..., LoopbackServer]) -> Ziti:
    return fake_ziti.start(loopback)


def inputs(kind: ZitiKind, ziti: Ziti, **extra: Any) -> dict[str, Any]:
    fake, srv = ziti
    raw = {**kind.props(fake), "connection": fake_ziti.connection(srv, fake), "owner": fake_ziti.owner(RESOURCE)}
    return kind.provider().check({}, {**raw, **extra}).inputs


def unowned_inputs(kind: ZitiKind, ziti: Ziti, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> dict[str, Any]:
    """Inputs of a provider call that carries no ownership: no `owner` input, and no stack in the
    host's environment to take one from."""
    monkeypatch.delenv("PULUMI_PROJECT")
    return {k: v for k, v in inputs(kind, ziti, **extra).items() if k != "owner"}


def decode_jwt(token: str) -> dict[str, Any]:
    """The claims of a JWT (the signature is the controller's business, not checked here)."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def writes(srv: LoopbackServer) -> list[str]:
    """Requests that could change an entity: anything but reads and the login."""
    return [f"{r.method} {r.pattern}" for r in srv.log if r.method != "GET" and not r.pattern.endswith("/authenticate")]


def entity(fake: ZitiController, kind: ZitiKind, id_: str) -> dict[str, Any]:
    return fake.entities[kind.provider.collection][id_]


def named(fake: ZitiController, kind: ZitiKind, name: str) -> list[dict[str, Any]]:
    return [e for e in fake.all(kind.provider.collection) if e["name"] == name]


def sha1_of(cert_pem: str) -> str:
    """The controller's CA fingerprint of a PEM certificate (lowercase hex SHA-1 of the DER), computed
    here with `cryptography` alone, not with the provider's helper under test."""
    return x509.load_pem_x509_certificate(cert_pem.encode()).fingerprint(hashes.SHA1()).hex()  # noqa: S303


def handover(kind: ZitiKind, id_: str, tags: dict[str, str]) -> str:
    return (
        f"add the tags {json.dumps(tags)} to it (PATCH /edge/management/v1/{kind.provider.collection}/{id_} with "
        '{"tags": {...}}, keeping its other tags), then run the same Pulumi command again'
    )


TAGS = {
    "another-stack": (
        {"pulumi.stack": OTHER, "pulumi.name": RESOURCE, "team": "prod"},
        f"its tags name stack {OTHER!r}, resource {RESOURCE!r}",
    ),
    "another-resource-of-this-stack": (
        {"pulumi.stack": OWNER, "pulumi.name": "ziti-other"},
        f"its tags name stack {OWNER!r}, resource 'ziti-other'",
    ),
    "no-pulumi-tags": (
        {"team": "payments"},
        "it carries no Pulumi ownership tags (created or re-tagged outside this program)",
    ),
}
OURS = {"pulumi.stack": OWNER, "pulumi.name": RESOURCE}
# The identity the `identity` kind declares, as another tool would have created it (no tags).
IDENTITY_BY_HAND = {"name": "payments-api", "type": "Default", "isAdmin": False, "authPolicyId": "default"}


class TestOwnershipOnWrites:
    @pytest.mark.parametrize("tags", sorted(TAGS))
    @pytest.mark.parametrize("name", sorted(ZITI_KINDS))
    def test_an_entity_with_foreign_tags_is_refused_untouched(self, ziti: Ziti, name: str, tags: str) -> None:
        fake, srv = ziti
        kind = ZITI_KINDS[name]
        provider = kind.provider()
        props = inputs(kind, ziti)
        created = provider.create(props)
        theirs, holder = TAGS[tags]
        entity(fake, kind, created.id)["tags"] = dict(theirs)  # re-tagged outside Pulumi
        before = copy.deepcopy(entity(fake, kind, created.id))
        srv.reset_log()
        changed = provider.check({}, {**props, **kind.change}).inputs
        for action, call in (
            ("update", lambda: provider.update(created.id, created.outs, changed)),
            ("delete", lambda: provider.delete(created.id, created.outs)),
        ):
            with pytest.raises(ForeignObjectError) as err:
                call()
            assert str(err.value) == (
                f"refusing to {action} Ziti {provider.label} {props['name']!r} (id {created.id}): it is not managed "
                f"by this resource; {holder}; this resource is stack {OWNER!r}, resource {RESOURCE!r}. Nothing was "
                f"changed. To hand it over to this stack: {handover(kind, created.id, OURS)}. {REFRESH_HINT}"
            )
        assert entity(fake, kind, created.id) == before
        assert writes(srv) == []
        assert provider.read(created.id, created.outs).id is None  # a refresh forgets it
        with pytest.raises(ZitiApiError) as create:  # and the create then planned refuses it: it holds the name
            provider.create(props)
        owner = "no Pulumi ownership tags: created outside this program"
        if "pulumi.stack" in theirs:
            owner = f"stack {theirs['pulumi.stack']!r}, resource {theirs['pulumi.name']!r}"
        assert create.value.args[0] == (
            f"{provider.label} {props['name']!r} (id {created.id}) already exists and is not owned by this resource "
            f"({owner}). Rename the resource, delete the existing entity, or tag it with pulumi.stack={OWNER!r} and "
            f"pulumi.name={RESOURCE!r} to let Pulumi adopt it"
        )
        assert entity(fake, kind, created.id) == before

    @pytest.mark.parametrize("name", sorted(ZITI_KINDS))
    def test_our_entity_is_updated_and_deleted_and_a_gone_one_is_deleted(self, ziti: Ziti, name: str) -> None:
        fake, _ = ziti
        kind = ZITI_KINDS[name]
        provider = kind.provider()
        props = inputs(kind, ziti)
        created = provider.create(props)
        assert entity(fake, kind, created.id)["tags"] == OURS
        changed = provider.check({}, {**props, **kind.change}).inputs
        updated = provider.update(created.id, created.outs, changed)
        assert provider.diff(created.id, updated.outs, changed).changes is False
        provider.delete(created.id, updated.outs)
        assert created.id not in fake.entities[kind.provider.collection]
        provider.delete(created.id, updated.outs)  # already gone: success

    def test_a_resource_renamed_by_alias_still_owns_and_re_tags_its_entity(self, ziti: Ziti) -> None:
        fake, _ = ziti
        kind = ZITI_KINDS["edge-router-policy"]
        created = kind.provider().create(inputs(kind, ziti))
        renamed = inputs(kind, ziti, owner=fake_ziti.owner("ziti-renamed"))
        kind.provider().update(created.id, created.outs, renamed)
        assert entity(fake, kind, created.id)["tags"] == {"pulumi.stack": OWNER, "pulumi.name": "ziti-renamed"}

    def test_a_delete_without_a_recorded_owner_goes_by_the_engines_stack(self, ziti: Ziti) -> None:
        fake, _ = ziti
        kind = ZITI_KINDS["identity"]
        created = kind.provider().create(inputs(kind, ziti))
        state = {k: v for k, v in created.outs.items() if k != "owner"}
        kind.provider().delete(created.id, state)
        assert created.id not in fake.entities["identities"]

    def test_a_delete_without_any_ownership_touches_only_untagged_entities(
        self, ziti: Ziti, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        fake, _ = ziti
        kind = ZITI_KINDS["identity"]
        created = kind.provider().create(inputs(kind, ziti))
        monkeypatch.delenv("PULUMI_PROJECT")
        monkeypatch.delenv("PULUMI_STACK")
        state = {k: v for k, v in created.outs.items() if k != "owner"}
        with pytest.raises(ForeignObjectError) as err:
            kind.provider().delete(created.id, state)
        assert (
            f"this resource is unknown (no owner input and no PULUMI_PROJECT/PULUMI_STACK). Nothing was changed. "
            f"To hand it over to this stack: {handover(kind, created.id, {'pulumi.stack': '<project>/<stack>'})}"
        ) in str(err.value)
        assert created.id in fake.entities["identities"]
        entity(fake, kind, created.id)["tags"] = {}
        kind.provider().delete(created.id, state)
        assert created.id not in fake.entities["identities"]

    def test_a_refusal_by_the_hosts_stack_names_the_stack_alone(self, ziti: Ziti) -> None:
        """A state without `owner` (older state) is checked against the host's stack, which names
        no resource: the refusal says so and asks for the stack tag only, not `resource None`."""
        fake, srv = ziti
        kind = ZITI_KINDS["identity"]
        created = kind.provider().create(inputs(kind, ziti))
        entity(fake, kind, created.id)["tags"] = {"pulumi.stack": OTHER, "pulumi.name": RESOURCE}
        state = {k: v for k, v in created.outs.items() if k != "owner"}
        srv.reset_log()
        with pytest.raises(ForeignObjectError) as err:
            kind.provider().delete(created.id, state)
        assert str(err.value) == (
            f"refusing to delete Ziti identity 'payments-api' (id {created.id}): it is not managed by this "
            f"resource; its tags name stack {OTHER!r}, resource {RESOURCE!r}; this resource is stack {OWNER!r}. "
            f"Nothing was changed. To hand it over to this stack: "
            f"{handover(kind, created.id, {'pulumi.stack': OWNER})}. {REFRESH_HINT}"
        )
        assert writes(srv) == []

    def test_an_entity_whose_tags_the_controller_answers_as_null_is_untagged(
        self, ziti: Ziti, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`"tags": null` carries no stack tag: without any ownership it is one no stack has
        tagged, so the delete goes ahead instead of failing on the null."""
        fake, _ = ziti
        kind = ZITI_KINDS["identity"]
        created = kind.provider().create(inputs(kind, ziti))
        entity(fake, kind, created.id)["tags"] = None
        monkeypatch.delenv("PULUMI_PROJECT")
        state = {k: v for k, v in created.outs.items() if k != "owner"}
        assert kind.provider().read(created.id, state).id == created.id
        kind.provider().delete(created.id, state)
        assert created.id not in fake.entities["identities"]

    def test_an_update_of_an_entity_deleted_outside_pulumi_names_it_and_the_way_out(self, ziti: Ziti) -> None:
        """The update cannot write what is gone: it names the entity by its kind and name and says
        that a refresh then an `up` re-creates it."""
        fake, srv = ziti
        kind = ZITI_KINDS["identity"]
        props = inputs(kind, ziti)
        created = kind.provider().create(props)
        del fake.entities["identities"][created.id]
        changed = kind.provider().check({}, {**props, **kind.change}).inputs
        srv.reset_log()
        with pytest.raises(ZitiApiError) as err:
            kind.provider().update(created.id, created.outs, changed)
        assert err.value.args[0] == (
            f"identity 'payments-api' (id {created.id}) no longer exists on the controller (deleted outside "
            "Pulumi): run `pulumi refresh` to drop it from the state, then `pulumi up` creates it again"
        )
        assert (err.value.status, err.value.code) == (404, "NOT_FOUND")
        assert writes(srv) == []

    def test_a_damaged_owner_in_the_state_proves_nothing(self, ziti: Ziti) -> None:
        fake, _ = ziti
        kind = ZITI_KINDS["identity"]
        created = kind.provider().create(inputs(kind, ziti))
        entity(fake, kind, created.id)["tags"] = {"pulumi.stack": OTHER}
        with pytest.raises(ForeignObjectError, match=f"its tags name stack {OTHER!r}, resource None"):
            kind.provider().delete(created.id, {**created.outs, "owner": {"stack": ""}})
        assert created.id in fake.entities["identities"]

    def test_a_state_without_a_connection_is_reported_not_a_key_error(self, ziti: Ziti) -> None:
        kind = ZITI_KINDS["identity"]
        created = kind.provider().create(inputs(kind, ziti))
        state = {k: v for k, v in created.outs.items() if k != "connection"}
        with pytest.raises(ValueError, match=r"^connection: connection is required$"):
            kind.provider().delete(created.id, state)
        broken = {**created.outs, "connection": {"url": created.outs["connection"]["url"]}}
        with pytest.raises(ValueError, match=r"connection\.username"):
            kind.provider().read(created.id, broken)


class TestCreateOrAdopt:
    @pytest.mark.parametrize("name", sorted(ZITI_KINDS))
    def test_our_entity_left_by_a_crash_is_adopted_and_brought_to_the_declared_state(
        self, ziti: Ziti, name: str
    ) -> None:
        fake, srv = ziti
        kind = ZITI_KINDS[name]
        provider = kind.provider()
        props = inputs(kind, ziti)
        first = provider.create(props)  # then the state write was lost; the program changed meanwhile
        changed = provider.check({}, {**props, **kind.change}).inputs
        srv.reset_log()
        again = provider.create(changed)
        assert again.id == first.id
        assert [e["id"] for e in named(fake, kind, props["name"])] == [first.id]
        assert provider.diff(again.id, again.outs, changed).changes is False
        assert entity(fake, kind, first.id)["tags"] == OURS

    def test_an_own_ca_registering_another_certificate_is_not_adopted(self, ziti: Ziti) -> None:
        fake, _ = ziti
        kind = ZITI_KINDS["ca"]
        first = kind.provider().create(inputs(kind, ziti))
        before = copy.deepcopy(entity(fake, kind, first.id))
        cert, key = make_ca()
        with pytest.raises(ZitiApiError) as err:
            kind.provider().create(inputs(kind, ziti, cert_pem=cert, ca_key_pem=key))
        assert err.value.code == "CERTIFICATE_MISMATCH"
        assert f"CA 'spire' (id {first.id}) is owned by this resource but registers a different certificate" in str(
            err.value
        )
        assert entity(fake, kind, first.id) == before

    @pytest.mark.parametrize("render", [str.upper, lambda h: ":".join(h[i : i + 2] for i in range(0, len(h), 2))])
    def test_our_ca_is_adopted_whatever_case_or_colons_its_fingerprint_is_written_in(
        self, ziti: Ziti, render: Callable[[str], str]
    ) -> None:
        """The swagger types `fingerprint` as a plain string; the same SHA-1 written in upper case or
        with colons is the same certificate, not a mismatch."""
        fake, _ = ziti
        kind = ZITI_KINDS["ca"]
        props = inputs(kind, ziti)
        first = kind.provider().create(props)  # then the state write was lost
        stored = entity(fake, kind, first.id)
        stored["fingerprint"] = render(stored["fingerprint"])
        again = kind.provider().create(props)
        assert again.id == first.id and [e["id"] for e in named(fake, kind, props["name"])] == [first.id]

    def test_our_ca_under_an_older_name_is_found_by_its_certificate_and_renamed(self, ziti: Ziti) -> None:
        fake, _ = ziti
        kind = ZITI_KINDS["ca"]
        props = inputs(kind, ziti, name="spire-old")
        first = kind.provider().create(props)
        again = kind.provider().create({**props, "name": "spire"})
        assert again.id == first.id and entity(fake, kind, first.id)["name"] == "spire"
        assert len(fake.all("cas")) == 1

    def test_a_lost_answer_is_looked_up_and_adopted_not_posted_again(self, ziti: Ziti) -> None:
        fake, srv = ziti
        kind = ZITI_KINDS["identity"]
        srv.inject("POST", f"{API}/identities", reset_after=True)
        created = kind.provider().create(inputs(kind, ziti))
        assert [e["id"] for e in fake.all("identities")] == [created.id]
        assert srv.count("POST", f"{API}/identities") == 1

    def test_a_ca_post_that_never_reached_the_controller_is_posted_again(self, ziti: Ziti) -> None:
        """The lookup after a lost answer finds the CA neither by name nor by certificate: nothing
        was made, so the create posts again (once) and the CA is registered and verified."""
        fake, srv = ziti
        kind = ZITI_KINDS["ca"]
        srv.inject("POST", f"{API}/cas", reset=True)
        created = kind.provider().create(inputs(kind, ziti))
        assert [e["id"] for e in fake.all("cas")] == [created.id]
        assert srv.count("POST", f"{API}/cas") == 2
        assert created.outs["is_verified"] is True

    def test_without_ownership_only_the_entity_of_its_own_lost_post_is_taken(
        self, ziti: Ziti, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        fake, srv = ziti
        kind = ZITI_KINDS["identity"]
        props = unowned_inputs(kind, ziti, monkeypatch)
        srv.inject("POST", f"{API}/identities", reset_after=True)
        created = kind.provider().create(props)
        assert [e["id"] for e in fake.all("identities")] == [created.id]
        with pytest.raises(ZitiApiError, match=r"\(this provider call carries no ownership, so it adopts nothing\)"):
            kind.provider().create(props)  # the name is held, and nothing proves whose it is
        assert len(fake.all("identities")) == 1

    def test_a_lost_post_adopts_only_an_entity_this_call_made(self, ziti: Ziti) -> None:
        """The POST never reached the controller, and meanwhile another stack made an entity of that
        name: the lookup finds it, and its tags say it is not this resource's, so it is refused,
        untouched, not taken as what the lost POST made."""
        fake, srv = ziti
        kind = ZITI_KINDS["identity"]
        theirs: list[str] = []

        def another_stack_creates(req: Any) -> None:
            if req.method == "GET" and req.path == f"{API}/identities" and not theirs:
                tags = {"pulumi.stack": OTHER, "pulumi.name": "elsewhere"}
                theirs.append(fake.put_entity("identities", {**IDENTITY_BY_HAND, "tags": tags}))

        srv.inject("POST", f"{API}/identities", reset=True)
        fake.on_request = another_stack_creates
        with pytest.raises(ZitiApiError) as err:
            kind.provider().create(inputs(kind, ziti))
        assert err.value.args[0] == (
            f"identity 'payments-api' (id {theirs[0]}) already exists and is not owned by this resource (stack "
            f"{OTHER!r}, resource 'elsewhere'). Rename the resource, delete the existing entity, or tag it with "
            f"pulumi.stack={OWNER!r} and pulumi.name={RESOURCE!r} to let Pulumi adopt it"
        )
        assert fake.entities["identities"][theirs[0]]["tags"] == {"pulumi.stack": OTHER, "pulumi.name": "elsewhere"}
        assert srv.count("POST", f"{API}/identities") == 1 and srv.count("PATCH", f"{API}/identities/{{id}}") == 0

    def test_without_ownership_a_lost_post_does_not_take_the_entity_that_held_the_name_before(
        self, ziti: Ziti, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without ownership only a name free before the POST proves that what holds it after a lost
        answer is this call's: an entity that held it already is refused, untouched."""
        fake, srv = ziti
        kind = ZITI_KINDS["identity"]
        before = fake.put_entity("identities", {**IDENTITY_BY_HAND, "tags": {"team": "x"}})
        props = unowned_inputs(kind, ziti, monkeypatch)
        srv.inject("POST", f"{API}/identities", reset=True)
        with pytest.raises(ZitiApiError, match=r"\(this provider call carries no ownership, so it adopts nothing\)$"):
            kind.provider().create(props)
        assert [e["id"] for e in fake.all("identities")] == [before]
        assert fake.entities["identities"][before]["tags"] == {"team": "x"}

    def test_without_ownership_the_signer_of_its_own_lost_post_counts_as_created(
        self, ziti: Ziti, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The entity of this call's own lost POST is created, not adopted: a signer's tags, which
        the controller drops from a create, are written after it as for any create."""
        fake, srv = ziti
        kind = ZITI_KINDS["external-jwt-signer"]
        props = unowned_inputs(kind, ziti, monkeypatch, tags={"team": "iam"})
        srv.inject("POST", f"{API}/external-jwt-signers", reset_after=True)
        created = kind.provider().create(props)
        assert [e["id"] for e in fake.all("external-jwt-signers")] == [created.id]
        assert entity(fake, kind, created.id)["tags"] == {"team": "iam"}

    def test_without_ownership_the_ca_of_its_own_lost_post_is_registered_and_verified(
        self, ziti: Ziti, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The CA a lost POST of this call made (same name, same certificate) is taken and verified."""
        fake, srv = ziti
        kind = ZITI_KINDS["ca"]
        props = unowned_inputs(kind, ziti, monkeypatch)
        srv.inject("POST", f"{API}/cas", reset_after=True)
        created = kind.provider().create(props)
        assert [e["id"] for e in fake.all("cas")] == [created.id]
        assert srv.count("POST", f"{API}/cas") == 1
        assert entity(fake, kind, created.id)["isVerified"] is True and created.outs["is_verified"] is True

    def test_an_adopted_ca_that_fails_verification_is_not_deleted(self, ziti: Ziti) -> None:
        """Only a CA this call created is deleted when its verification fails: one adopted (ours,
        left unverified by a crash) stays, and the failure is reported as the controller gave it."""
        fake, _ = ziti
        kind = ZITI_KINDS["ca"]
        props = inputs(kind, ziti)
        first = kind.provider().create(props)
        entity(fake, kind, first.id)["isVerified"] = False  # the crash came before the verification
        fake.clock_skew = datetime.timedelta(hours=2)  # the verification certificate is not valid yet there
        with pytest.raises(ZitiApiError) as err:
            kind.provider().create(props)
        assert err.value.code == "CERTIFICATE_FAILED_VALIDATION"
        assert err.value.args[0] == "The supplied certificate failed validation"
        assert [e["id"] for e in fake.all("cas")] == [first.id]

    def test_a_lost_post_waits_as_long_as_the_controllers_retry_after(
        self, ziti: Ziti, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A 503 with `Retry-After: 2` to the POST: the create waits those 2 seconds (after its
        first attempt) before it looks up and, finding nothing, posts again."""
        fake, srv = ziti
        pauses: list[tuple[Any, Any]] = []
        monkeypatch.setattr(ZitiClient, "pause", lambda _c, attempt, err: pauses.append((attempt, err.retry_after)))
        kind = ZITI_KINDS["identity"]
        srv.inject("POST", f"{API}/identities", status=503, headers={"Retry-After": "2"},
                   body={"error": {"code": "UNAVAILABLE", "message": "busy"}})
        created = kind.provider().create(inputs(kind, ziti))
        assert pauses == [(1, 2.0)]
        assert [e["id"] for e in fake.all("identities")] == [created.id]
        assert srv.count("POST", f"{API}/identities") == 2

    def test_a_login_answered_404_is_an_error_not_an_entity_gone(self, ziti: Ziti) -> None:
        """A 404 to `POST /authenticate` (a proxy, a wrong URL) says nothing of the entity: read and
        delete fail with it, where taking it as "gone" would drop the resource from the state on a
        refresh and leave the entity behind on a destroy."""
        fake, srv = ziti
        kind = ZITI_KINDS["identity"]
        props = inputs(kind, ziti)
        created = kind.provider().create(props)
        state = {**props, **created.outs}
        forget_sessions()  # the next call logs in again
        srv.inject("POST", f"{API}/authenticate", status=404, times=10, body={"error": {"code": "NOT_FOUND"}})
        with pytest.raises(ZitiApiError) as read:
            kind.provider().read(created.id, state)
        with pytest.raises(ZitiApiError) as delete:
            kind.provider().delete(created.id, state)
        assert read.value.status == delete.value.status == 404
        assert [e["id"] for e in fake.all("identities")] == [created.id]
        assert srv.count("DELETE", f"{API}/identities/{{id}}") == 0

    def test_a_create_the_controller_keeps_refusing_with_429_is_tried_as_often_as_the_policy_says(
        self, ziti: Ziti
    ) -> None:
        """A 429 is a request not processed: the transport repeats it (4 attempts, the policy's) and
        the create adds no lookup and no further POSTs of its own on top (it did: 16 POSTs)."""
        fake, srv = ziti
        kind = ZITI_KINDS["identity"]
        srv.inject("POST", f"{API}/identities", status=429, times=100, headers={"Retry-After": "0"},
                   body={"error": {"code": "RATE_LIMITED", "message": "slow down"}})
        with pytest.raises(ZitiApiError) as err:
            kind.provider().create(inputs(kind, ziti))
        assert err.value.status == 429
        assert srv.count("POST", f"{API}/identities") == RetryPolicy().attempts == 4
        assert srv.count("GET", f"{API}/identities") == 0 and fake.all("identities") == []

    @pytest.mark.parametrize("body", [{"data": {}}, {"meta": {}}, "<html>proxy</html>"])
    def test_a_create_answered_2xx_without_an_id_looks_up_before_it_posts_again(self, ziti: Ziti, body: Any) -> None:
        """A 2xx whose body names no id (a proxy's page, a broken envelope) leaves the create's outcome
        unknown: the provider looks the entity up by name (adopting it if the POST made it) and
        posts again only when nothing holds the name."""
        fake, srv = ziti
        kind = ZITI_KINDS["identity"]
        srv.inject("POST", f"{API}/identities", status=201, body=body)
        created = kind.provider().create(inputs(kind, ziti))
        assert [e["id"] for e in fake.all("identities")] == [created.id]
        assert srv.count("POST", f"{API}/identities") == 2 and srv.count("GET", f"{API}/identities") == 1

    def test_a_create_the_controller_asks_to_retry_much_later_fails_at_once(self, ziti: Ziti) -> None:
        """A 429 with `Retry-After: 3600` to the POST: the transport does not repeat an answer that
        asks for more than the policy waits (60 s), and neither does the create's own loop: no wait,
        no lookup, no second POST; the error says what the controller asked."""
        fake, srv = ziti
        kind = ZITI_KINDS["identity"]
        srv.inject("POST", f"{API}/identities", status=429, headers={"Retry-After": "3600"},
                   body={"error": {"code": "RATE_LIMITED", "message": "slow down"}})
        with pytest.raises(ZitiApiError) as err:
            kind.provider().create(inputs(kind, ziti))
        assert err.value.status == 429 and "retry after 3600 s" in str(err.value)
        assert srv.count("POST", f"{API}/identities") == 1 and srv.count("GET", f"{API}/identities") == 0
        assert fake.all("identities") == []

    def test_a_signer_whose_post_answer_was_lost_is_this_resources_not_refused(self, ziti: Ziti) -> None:
        """The controller drops a signer's tags on create, so a tag cannot say whose the signer a lost
        answer left is: it is posted under a name only this resource gives, found by it, then
        renamed and tagged. One signer, one POST, no refusal."""
        fake, srv = ziti
        kind = ZITI_KINDS["external-jwt-signer"]
        srv.inject("POST", f"{API}/external-jwt-signers", reset_after=True)
        created = kind.provider().create(inputs(kind, ziti, tags={"team": "iam"}))
        [signer] = fake.all("external-jwt-signers")
        assert signer["id"] == created.id and signer["name"] == "keycloak" == created.outs["name"]
        assert signer["tags"] == {"team": "iam", "pulumi.stack": OWNER, "pulumi.name": RESOURCE}
        assert srv.count("POST", f"{API}/external-jwt-signers") == 1

    def test_a_signer_left_before_its_rename_is_taken_by_the_next_create(self, ziti: Ziti) -> None:
        """A crash (here: every rename answered 500) between the create and the rename leaves the signer
        under its pending name, untagged: the next `pulumi up` finds it by that name and makes it
        this resource's, with the settings now declared."""
        fake, srv = ziti
        kind = ZITI_KINDS["external-jwt-signer"]
        refused = srv.inject("PATCH", f"{API}/external-jwt-signers/{{id}}", status=500, times=100,
                             body={"error": {"code": "UNHANDLED", "message": "boom"}})
        with pytest.raises(ZitiApiError, match="500"):
            kind.provider().create(inputs(kind, ziti))
        refused.times = 0
        [left] = fake.all("external-jwt-signers")
        pending = f"keycloak (pulumi: being created by {OWNER} {RESOURCE})"
        assert left["name"] == pending and left["tags"] == {}
        created = kind.provider().create(inputs(kind, ziti, audience="ziti-users"))
        [signer] = fake.all("external-jwt-signers")
        assert signer["id"] == left["id"] == created.id
        assert signer["name"] == "keycloak" and signer["audience"] == "ziti-users"
        assert signer["tags"] == {"pulumi.stack": OWNER, "pulumi.name": RESOURCE}

    def test_our_signer_under_its_name_with_another_issuer_is_adopted_not_doubled(self, ziti: Ziti) -> None:
        """This resource's signer already holds the name (a crash after the rename, before the state
        write) and the issuer has changed since: no unique value refuses the POST under the pending
        name, the rename does. The signer this call made is deleted again and ours is adopted, with
        the new issuer."""
        fake, srv = ziti
        kind = ZITI_KINDS["external-jwt-signer"]
        first = kind.provider().create(inputs(kind, ziti))
        moved = "https://auth.example.com/realms/moved"
        created = kind.provider().create(inputs(kind, ziti, issuer=moved, jwks_endpoint=f"{moved}/certs"))
        [signer] = fake.all("external-jwt-signers")
        assert signer["id"] == first.id == created.id
        assert signer["name"] == "keycloak" and signer["issuer"] == moved
        assert signer["tags"] == {"pulumi.stack": OWNER, "pulumi.name": RESOURCE}
        assert srv.count("DELETE", f"{API}/external-jwt-signers/{{id}}") == 1

    def test_a_foreign_signer_under_the_name_is_refused_and_nothing_is_left(self, ziti: Ziti) -> None:
        """Another holder of the name (untagged, another issuer) is refused, as for any kind; the
        signer this call posted under the pending name is deleted again."""
        fake, _ = ziti
        kind = ZITI_KINDS["external-jwt-signer"]
        theirs = fake.put_entity("external-jwt-signers", {
            "name": "keycloak", "issuer": "https://elsewhere.example", "audience": "a",
            "jwksEndpoint": "https://elsewhere.example/certs", "enabled": True})
        with pytest.raises(ZitiApiError, match="already exists and is not owned by this resource"):
            kind.provider().create(inputs(kind, ziti))
        assert [e["id"] for e in fake.all("external-jwt-signers")] == [theirs]

    def test_another_resources_pending_signer_is_not_taken(self, ziti: Ziti) -> None:
        """The pending name names its resource: another resource's (same signer name, same issuer)
        is refused as a unique value held, untouched."""
        fake, _ = ziti
        kind = ZITI_KINDS["external-jwt-signer"]
        body = {**kind.props(fake), "name": f"keycloak (pulumi: being created by {OWNER} elsewhere)"}
        theirs = fake.put_entity("external-jwt-signers", {
            "name": body["name"], "issuer": body["issuer"], "audience": body["audience"],
            "jwksEndpoint": body["jwks_endpoint"], "enabled": True})
        with pytest.raises(ZitiApiError, match="another entity already holds a unique value"):
            kind.provider().create(inputs(kind, ziti))
        assert [e["id"] for e in fake.all("external-jwt-signers")] == [theirs]
        assert fake.entities["external-jwt-signers"][theirs]["name"] == body["name"]

    def test_a_unique_value_held_under_another_name_is_reported(self, ziti: Ziti) -> None:
        fake, _ = ziti
        kind = ZITI_KINDS["identity"]
        fake.put_entity(
            "identities",
            {"name": "elsewhere", "type": "Default", "isAdmin": False, "externalId": "spiffe://prod.example/api"},
        )
        with pytest.raises(ZitiApiError) as err:
            kind.provider().create(inputs(kind, ziti))
        assert err.value.args[0].startswith(
            "the controller refused to create identity 'payments-api' because another entity already holds a "
            "unique value ("
        )
        assert err.value.status == 400 and err.value.code == "COULD_NOT_VALIDATE"
        assert [e["name"] for e in fake.all("identities")] == ["elsewhere"]


class TestTakeOver:
    def existing(self, fake: ZitiController, tags: dict[str, str]) -> str:
        return fake.put_entity(
            "identities",
            {"name": "payments-api", "type": "Default", "isAdmin": False, "authPolicyId": "default", "tags": tags},
        )

    @pytest.mark.parametrize(
        "tags",
        [
            pytest.param({"team": "payments"}, id="untagged"),
            pytest.param({"pulumi.stack": OWNER, "pulumi.name": RESOURCE}, id="ours-already"),
            pytest.param({"pulumi.stack": OWNER}, id="this-stack-without-a-resource"),
        ],
    )
    def test_an_entity_no_other_owner_holds_becomes_this_resources(self, ziti: Ziti, tags: dict[str, str]) -> None:
        fake, srv = ziti
        theirs = self.existing(fake, tags)
        kind = ZITI_KINDS["identity"]
        created = kind.provider().create(inputs(kind, ziti, import_id=theirs))
        assert created.id == theirs and len(fake.all("identities")) == 1
        taken = fake.entities["identities"][theirs]
        assert taken["tags"] == OURS and taken["externalId"] == "spiffe://prod.example/api"
        assert srv.count("POST", f"{API}/identities") == 0

    @pytest.mark.parametrize(
        ("tags", "holder"),
        [
            pytest.param({"pulumi.stack": OTHER, "pulumi.name": "r"}, f"stack {OTHER!r}, resource 'r'", id="other"),
            pytest.param({"pulumi.stack": OWNER, "pulumi.name": "x"}, f"stack {OWNER!r}, resource 'x'", id="sibling"),
        ],
    )
    def test_an_entity_another_resource_owns_is_refused_untouched(
        self, ziti: Ziti, tags: dict[str, str], holder: str
    ) -> None:
        fake, srv = ziti
        theirs = self.existing(fake, tags)
        before = copy.deepcopy(fake.entities["identities"][theirs])
        kind = ZITI_KINDS["identity"]
        with pytest.raises(ValueError) as err:
            kind.provider().create(inputs(kind, ziti, import_id=theirs))
        assert str(err.value) == (
            f"import: identity 'payments-api' (id {theirs}) belongs to {holder}: remove it from that stack first"
        )
        assert fake.entities["identities"][theirs] == before and writes(srv) == []

    def test_an_id_that_is_not_on_the_controller_is_reported(self, ziti: Ziti) -> None:
        kind = ZITI_KINDS["identity"]
        with pytest.raises(ValueError) as err:
            kind.provider().create(inputs(kind, ziti, import_id="nope"))
        assert str(err.value) == (
            "import: no identity with id 'nope' on the controller: check the id in identity-platform:imports "
            "(`ziti edge list` shows it)"
        )

    def test_a_ca_registering_another_certificate_is_not_taken_over(self, ziti: Ziti) -> None:
        fake, _ = ziti
        cert, _key = make_ca()
        theirs = fake.put_entity("cas", {"name": "spire", "certPem": cert, "fingerprint": "00" * 20, "tags": {}})
        kind = ZITI_KINDS["ca"]
        props = inputs(kind, ziti, import_id=theirs)
        with pytest.raises(ZitiApiError) as err:
            kind.provider().create(props)
        assert err.value.code == "CERTIFICATE_MISMATCH"
        assert err.value.args[0] == (
            f"CA 'spire' (id {theirs}) is owned by this resource but registers a different certificate "
            f"(fingerprint {'00' * 20}, expected {sha1_of(props['cert_pem'])}); certPem cannot be changed in "
            "place: delete that CA, then run `pulumi up` again"
        )
        assert fake.entities["cas"][theirs]["tags"] == {}

    def test_a_ca_taken_over_is_patched_with_every_updatable_field_but_not_its_certificate(
        self, ziti: Ziti
    ) -> None:
        """Take-over writes the update body (`create=False`): every declared setting and our tags,
        never `certPem`, which the controller takes only on create."""
        fake, srv = ziti
        kind = ZITI_KINDS["ca"]
        props = inputs(kind, ziti)
        theirs = fake.put_entity(
            "cas",
            {
                "name": "spire-by-hand",
                "certPem": props["cert_pem"],
                "fingerprint": sha1_of(props["cert_pem"]),
                "isVerified": True,
                "isAuthEnabled": False,
                "identityRoles": [],
                "tags": {},
            },
        )
        recorder = BodyRecorder()
        fake.on_request = recorder
        created = kind.provider().create({**props, "import_id": theirs})
        assert created.id == theirs and srv.count("POST", f"{API}/cas") == 0
        assert recorder.bodies("PATCH") == [
            {
                "name": "spire",
                "isAuthEnabled": True,
                "isAutoCaEnrollmentEnabled": False,
                "isOttCaEnrollmentEnabled": False,
                "identityRoles": ["a"],
                "identityNameFormat": "[caName]-[commonName]",
                "tags": OURS,
            }
        ]


# --- check --------------------------------------------------------------------------------------------

CONN = {"url": "https://ziti.example.com:1280", "username": "admin", "password": "s3cret-Passw0rd"}
OWNED = {"stack": OWNER, "name": "r"}
U = rpc.UNKNOWN


def failures(provider: zp.ZitiProvider, **props: Any) -> list[tuple[str, str]]:
    result = provider.check({}, {"connection": CONN, "owner": OWNED, **props})
    return [(f.property, f.reason) for f in result.failures]


IDENTITY = zp.IdentityProvider()
CLAIM = {"location": "SAN_URI", "matcher": "SCHEME", "matcher_criteria": "spiffe"}


class TestCreateRefusesBrokenMetaInputs:
    """`create` validates `connection` and `owner` itself (a program may skip `check`'s verdict):
    the message names the input and the field, as `check` would."""

    @pytest.mark.parametrize(
        ("extra", "message"),
        [
            pytest.param({"connection": None}, "connection: connection is required", id="no-connection"),
            pytest.param(
                {"connection": {"url": CONN["url"], "password": CONN["password"]}},
                "connection.username: connection.username is required",
                id="no-username",
            ),
            pytest.param(
                {"owner": {"stack": ""}}, "owner.stack: String should have at least 1 character", id="empty-stack"
            ),
            pytest.param(
                {"owner": {"stack": OWNER, "name": ""}},
                "owner.name: String should have at least 1 character",
                id="empty-name",
            ),
        ],
    )
    def test_a_broken_meta_input_is_named(self, extra: dict[str, Any], message: str) -> None:
        props = {"name": "payments-api", "connection": CONN, "owner": {"stack": OWNER, "name": RESOURCE}, **extra}
        with pytest.raises(ValueError) as err:
            zp.IdentityProvider().create(props)
        assert str(err.value) == message


class TestCheck:
    @pytest.mark.parametrize(
        ("props", "expected"),
        [
            pytest.param({}, [("name", "name is required")], id="missing-name"),
            pytest.param(
                {"name": "a", "owner": {"stack": ""}},
                [("owner.stack", "String should have at least 1 character")],
                id="empty-owner-stack",
            ),
            pytest.param({"name": "a", "owner": None}, [], id="no-owner"),
            pytest.param({"name": "a", "owner": U}, [], id="unknown-owner"),
            pytest.param({"name": "a", "connection": U}, [], id="unknown-connection"),
            pytest.param({"name": "a", "connection": None}, [("connection", "connection is required")], id="no-conn"),
            pytest.param(
                {"name": "a", "roleAttributes": ["x"]},
                [("roleAttributes", "roleAttributes is not an input of this resource; write it as role_attributes")],
                id="api-spelling",
            ),
        ],
    )
    def test_identity(self, props: dict[str, Any], expected: list[tuple[str, str]]) -> None:
        assert failures(IDENTITY, **props) == expected

    def test_an_unknown_value_does_not_hide_a_later_broken_one(self) -> None:
        assert failures(IDENTITY, name="a", type=U, is_admin="maybe") == [
            ("is_admin", "Input should be a valid boolean, unable to interpret input")
        ]

    def test_unset_inputs_get_the_controllers_defaults(self) -> None:
        result = IDENTITY.check({}, {"connection": CONN, "owner": OWNED, "name": "a"})
        assert result.failures == []
        defaults = {k: result.inputs[k] for k in ("type", "is_admin", "auth_policy_id", "role_attributes", "tags")}
        assert defaults == {
            "type": "Default",
            "is_admin": False,
            "auth_policy_id": "default",
            "role_attributes": [],
            "tags": {},
        }

    def test_a_misspelt_input_lists_the_inputs(self) -> None:
        [(prop, reason)] = failures(IDENTITY, name="a", rol_attributes=["x"])
        assert prop == "rol_attributes"
        assert reason.startswith("rol_attributes is not an input of this resource; the inputs are name, ")
        assert "role_attributes" in reason

    @pytest.mark.parametrize(
        ("claim", "expected"),
        [
            pytest.param(
                {**CLAIM, "bogus": 1},
                [
                    (
                        "external_id_claim.bogus",
                        "external_id_claim.bogus is not an input of this resource (check the spelling)",
                    )
                ],
                id="nested-misspelling",
            ),
            pytest.param({"location": "SAN_URI", "matcher": U}, [], id="nested-unknown"),
        ],
    )
    def test_ca_claims(self, claim: dict[str, Any], expected: list[tuple[str, str]]) -> None:
        cert, key = make_ca()
        found = failures(
            zp.CertificateAuthorityProvider(),
            name="spire",
            cert_pem=cert,
            ca_key_pem=key,
            **{"external_id_claim": claim},
        )
        assert found == expected

    @pytest.mark.parametrize(
        ("given", "passed_on"),
        [
            pytest.param(["b", "a"], ["a", "b"], id="known-sorted"),
            pytest.param(U, U, id="unknown-list"),
            pytest.param(["b", U, "a"], ["b", U, "a"], id="unknown-item"),
        ],
    )
    def test_a_role_list_is_sorted_only_when_fully_known(self, given: Any, passed_on: Any) -> None:
        """A list is a set to the controller, so check sorts it; a list not known yet in this
        preview (or one with an unknown item) is passed on as given, not turned into a list of the
        placeholder's characters or reordered around a value that is still to come."""
        result = IDENTITY.check({}, {"connection": CONN, "owner": OWNED, "name": "a", "role_attributes": given})
        assert result.failures == []
        assert result.inputs["role_attributes"] == passed_on

    def test_an_unknown_role_item_does_not_hide_a_broken_one(self) -> None:
        assert failures(IDENTITY, name="a", role_attributes=[U, "#bad"]) == [
            ("role_attributes", "'#bad': role attributes may not start with '#' or '@' (write the bare attribute)")
        ]


class TestDiffDetails:
    def test_an_empty_external_id_is_unset(self) -> None:
        state = {"name": "a", "connection": CONN, "owner": OWNED}
        assert IDENTITY.diff("id", state, {**state, "external_id": ""}).changes is False

    @pytest.mark.parametrize(
        ("declared", "changes"), [pytest.param("Router", False, id="same"), pytest.param("Default", True, id="other")]
    )
    def test_an_identity_type_stored_as_an_entity_reference_compares_as_its_id(
        self, declared: str, changes: bool
    ) -> None:
        """The controller renders an identity's `type` as `{"entity": ..., "id": ...}`: the id is
        the value, so a state holding the reference matches the same declared type."""
        state = {"name": "a", "connection": CONN, "owner": OWNED, "type": {"entity": "identity-types", "id": "Router"}}
        assert IDENTITY.diff("id", state, {**state, "type": declared}).changes is changes

    @pytest.mark.parametrize(
        ("declared", "changes"),
        [
            pytest.param({"entity": "payments", "id": "7"}, False, id="same"),
            pytest.param({"entity": "billing", "id": "7"}, True, id="other-entity-tag"),
        ],
    )
    def test_user_tags_named_entity_and_id_are_tags_not_a_reference(
        self, declared: dict[str, str], changes: bool
    ) -> None:
        """`tags` is a map: user tags that happen to be called `entity` and `id` are compared in
        full, so changing the `entity` tag is a change."""
        state = {"name": "a", "connection": CONN, "owner": OWNED, "tags": {"entity": "payments", "id": "7"}}
        assert IDENTITY.diff("id", state, {**state, "tags": declared}).changes is changes

    @pytest.mark.parametrize(
        ("old", "new", "replaces"),
        [
            pytest.param(CLAIM, "", ["external_id_claim"], id="claim-removed-by-blank"),
            pytest.param("", None, [], id="blank-was-never-a-claim"),
        ],
    )
    def test_a_blank_external_id_claim_is_no_claim(self, old: Any, new: Any, replaces: list[str]) -> None:
        """A CA's claim cannot be removed in place, so removing it replaces the CA; "" means no
        claim on either side, so a state recording "" is not replaced when the claim stays unset."""
        cert, key = make_ca()
        base = {"name": "spire", "cert_pem": cert, "ca_key_pem": key, "connection": CONN, "owner": OWNED}
        result = zp.CertificateAuthorityProvider().diff(
            "id", {**base, "external_id_claim": old}, {**base, "external_id_claim": new}
        )
        assert (result.changes, result.replaces) == (bool(replaces), replaces)

    def test_an_unenrolled_router_whose_jwt_expired_is_re_enrolled(self) -> None:
        state = {"name": "r1", "connection": CONN, "owner": OWNED, "is_verified": False}
        router = zp.EdgeRouterProvider()
        expired = {**state, "enrollment_expires_at": "2020-01-01T00:00:00Z"}
        assert router.diff("id", expired, state).changes is True
        assert router.diff("id", {**expired, "is_verified": True}, state).changes is False
        assert router.diff("id", {**state, "enrollment_expires_at": "2999-01-01T00:00:00Z"}, state).changes is False

    @pytest.mark.parametrize(
        ("expires", "changes"),
        [pytest.param("2020-01-01T00:00:00", True, id="past"), pytest.param("2999-01-01T00:00:00", False, id="future")],
    )
    def test_an_expiry_without_an_offset_is_read_as_utc(self, expires: str, changes: bool) -> None:
        """A state whose expiry lost its `Z` (edited by hand, or an older controller) is still a time:
        the preview compares it as UTC instead of failing on a naive datetime."""
        state = {"name": "r1", "connection": CONN, "owner": OWNED, "is_verified": False}
        router = zp.EdgeRouterProvider()
        assert router.diff("id", {**state, "enrollment_expires_at": expires}, state).changes is changes


# --- what the controller computes: CA verification, router enrollment ------------------------------------


class TestCertificateAuthorityVerification:
    """A CA is verified with its own key right after it is created; the outputs are the
    controller's (fingerprint, verification, the enrollment JWT it signs for the CA)."""

    KIND = ZITI_KINDS["ca"]

    def test_a_created_ca_is_verified_and_reports_what_the_controller_computed(self, ziti: Ziti) -> None:
        fake, srv = ziti
        created = self.KIND.provider().create(inputs(self.KIND, ziti))
        ca = entity(fake, self.KIND, created.id)
        assert ca["isVerified"] is True
        assert writes(srv) == [f"POST {API}/cas", f"POST {API}/cas/{{id}}/verify"]
        assert created.outs["fingerprint"] == ca["fingerprint"] and created.outs["is_verified"] is True
        claims = decode_jwt(created.outs["enrollment_jwt"])
        assert (claims["em"], claims["sub"]) == ("ca", created.id)

    def test_a_failed_verification_deletes_the_ca_it_created_and_says_why(self, ziti: Ziti) -> None:
        fake, _ = ziti
        fake.clock_skew = datetime.timedelta(hours=2)  # the verification certificate is not valid yet there
        with pytest.raises(ZitiApiError) as err:
            self.KIND.provider().create(inputs(self.KIND, ziti))
        message = err.value.args[0]  # str() adds the request and the controller's cause
        assert err.value.code == "CERTIFICATE_FAILED_VALIDATION"
        assert message.startswith("verification of CA 'spire' failed (CERTIFICATE_FAILED_VALIDATION: ")
        assert message.endswith("the unverified CA was deleted again")
        assert fake.all("cas") == []

    def test_a_ca_that_cannot_be_deleted_again_is_named_for_the_next_up(self, ziti: Ziti) -> None:
        fake, srv = ziti
        fake.clock_skew = datetime.timedelta(hours=2)
        srv.inject("DELETE", f"{API}/cas/{{id}}", status=403)
        with pytest.raises(ZitiApiError) as err:
            self.KIND.provider().create(inputs(self.KIND, ziti))
        (left,) = fake.all("cas")
        assert left["isVerified"] is False
        message = err.value.args[0]
        failed_delete = f"DELETE {API}/cas/{left['id']}: HTTP 403"
        assert f"the unverified CA {left['id']} could not be deleted ({failed_delete}" in message
        assert message.endswith("the next `pulumi up` adopts it")

    def test_already_verified_counts_as_verified(self, ziti: Ziti) -> None:
        _, srv = ziti
        srv.inject("POST", f"{API}/cas/{{id}}/verify", status=409,
                   body={"error": {"code": "CA_ALREADY_VERIFIED", "message": "already verified"}})
        created = self.KIND.provider().create(inputs(self.KIND, ziti))
        assert created.outs["is_verified"] is True

    def test_an_update_re_verifies_a_ca_found_unverified_and_keeps_the_jwt_a_refresh_reads_again(
        self, ziti: Ziti
    ) -> None:
        fake, srv = ziti
        provider = self.KIND.provider()
        props = inputs(self.KIND, ziti)
        created = provider.create(props)
        state = {**props, **created.outs}
        entity(fake, self.KIND, created.id)["isVerified"] = False  # e.g. re-created by an admin's script
        changed = provider.check({}, {**props, **self.KIND.change}).inputs
        srv.reset_log()
        updated = provider.update(created.id, state, changed)
        assert entity(fake, self.KIND, created.id)["isVerified"] is True and updated.outs["is_verified"] is True
        assert f"POST {API}/cas/{{id}}/verify" in writes(srv)
        assert updated.outs["enrollment_jwt"] == created.outs["enrollment_jwt"]
        assert srv.count("GET", f"{API}/cas/{{id}}/jwt") == 0, "an update keeps the JWT of the state"
        state = {**state, "enrollment_jwt": "an.older.jwt"}
        read = provider.read(created.id, state)
        assert read.outs["enrollment_jwt"] == created.outs["enrollment_jwt"], "a refresh reads it again"


    def test_a_verified_ca_is_not_verified_again_on_update(self, ziti: Ziti) -> None:
        """The update of a CA the controller shows verified only PATCHes the change."""
        fake, srv = ziti
        provider = self.KIND.provider()
        props = inputs(self.KIND, ziti)
        created = provider.create(props)
        changed = provider.check({}, {**props, **self.KIND.change}).inputs
        srv.reset_log()
        updated = provider.update(created.id, {**props, **created.outs}, changed)
        assert writes(srv) == [f"PATCH {API}/cas/{{id}}"]
        assert updated.outs["is_verified"] is True
        assert entity(fake, self.KIND, created.id)["identityRoles"] == ["b"]

    def test_an_unverified_ca_without_a_verification_token_is_reported(self, ziti: Ziti) -> None:
        """An unverified CA the controller gives no verificationToken cannot be verified: the
        update says which CA and why, with its own error code, and deletes nothing."""
        fake, _ = ziti
        provider = self.KIND.provider()
        props = inputs(self.KIND, ziti)
        created = provider.create(props)
        ca = entity(fake, self.KIND, created.id)
        ca["isVerified"] = False
        del ca["verificationToken"]
        changed = provider.check({}, {**props, **self.KIND.change}).inputs
        with pytest.raises(ZitiApiError) as err:
            provider.update(created.id, {**props, **created.outs}, changed)
        assert err.value.args[0] == f"CA {created.id} is unverified and has no verificationToken"
        assert err.value.code == "NO_VERIFICATION_TOKEN"
        assert created.id in fake.entities["cas"]


class TestEdgeRouterEnrollment:
    KIND = ZITI_KINDS["edge-router"]

    def test_a_new_router_reports_its_one_time_jwt_until_it_enrolls(self, ziti: Ziti) -> None:
        fake, _ = ziti
        provider = self.KIND.provider()
        props = inputs(self.KIND, ziti)
        created = provider.create(props)
        router = entity(fake, self.KIND, created.id)
        assert created.outs["enrollment_jwt"] == router["enrollmentJwt"]
        assert created.outs["enrollment_expires_at"] == router["enrollmentExpiresAt"]
        assert created.outs["is_verified"] is False
        fake.enroll_router(created.id)
        read = provider.read(created.id, {**props, **created.outs})
        # Enrolled: the controller no longer shows the token; the state keeps the used one.
        assert read.outs["is_verified"] is True and read.outs["enrollment_expires_at"] is None
        assert read.outs["enrollment_jwt"] == created.outs["enrollment_jwt"]

    def test_an_unenrolled_router_whose_jwt_expired_gets_a_new_one_on_update(self, ziti: Ziti) -> None:
        fake, srv = ziti
        provider = self.KIND.provider()
        props = inputs(self.KIND, ziti)
        created = provider.create(props)
        entity(fake, self.KIND, created.id)["enrollmentExpiresAt"] = "2020-01-01T00:00:00.000Z"
        state = provider.read(created.id, {**props, **created.outs}).outs
        assert provider.diff(created.id, state, props).changes is True
        srv.reset_log()
        updated = provider.update(created.id, state, props)
        assert writes(srv) == [f"POST {API}/edge-routers/{{id}}/re-enroll"]
        router = entity(fake, self.KIND, created.id)
        assert updated.outs["enrollment_jwt"] == router["enrollmentJwt"] != created.outs["enrollment_jwt"]
        assert updated.outs["enrollment_expires_at"] == router["enrollmentExpiresAt"] > "2026"

    def test_an_unenrolled_router_whose_enrollment_was_removed_reports_no_jwt(self, ziti: Ziti) -> None:
        """Not enrolled and no enrollment left on the controller (an admin deleted it): the token
        in the state no longer enrolls anything, so a refresh reports none."""
        fake, _ = ziti
        provider = self.KIND.provider()
        props = inputs(self.KIND, ziti)
        created = provider.create(props)
        entity(fake, self.KIND, created.id).update(
            enrollmentJwt=None, enrollmentToken=None, enrollmentExpiresAt=None, enrollmentCreatedAt=None
        )
        read = provider.read(created.id, {**props, **created.outs})
        assert read.outs["enrollment_jwt"] is None
        assert read.outs["is_verified"] is False

    @pytest.mark.parametrize(
        "spent_expiry", [pytest.param(None, id="cleared"), pytest.param("2020-01-01T00:00:00.000Z", id="kept")]
    )
    def test_an_enrolled_router_is_never_re_enrolled(self, ziti: Ziti, spent_expiry: str | None) -> None:
        """Verified is enrolled, whatever expiry the controller still shows for the spent token."""
        fake, srv = ziti
        provider = self.KIND.provider()
        props = inputs(self.KIND, ziti)
        created = provider.create(props)
        fake.enroll_router(created.id)
        entity(fake, self.KIND, created.id)["enrollmentExpiresAt"] = spent_expiry
        state = provider.read(created.id, {**props, **created.outs}).outs
        changed = provider.check({}, {**props, **self.KIND.change}).inputs
        srv.reset_log()
        provider.update(created.id, state, changed)
        assert f"POST {API}/edge-routers/{{id}}/re-enroll" not in writes(srv)
        assert entity(fake, self.KIND, created.id)["isVerified"] is True


class TestRenames:
    """A name is updated in place, and read back: the controller (1.7.2, as the fake) answers a
    write that gives an entity a name another entity holds with 200 and applies none of it."""

    @pytest.mark.parametrize("kind_key", sorted(ZITI_KINDS))
    def test_a_rename_is_written_and_read_back(self, ziti: Ziti, kind_key: str) -> None:
        fake, srv = ziti
        kind = ZITI_KINDS[kind_key]
        olds = inputs(kind, ziti)
        created = kind.provider().create(olds)
        srv.reset_log()
        news = inputs(kind, ziti, name="renamed")
        outs = kind.provider().update(created.id, {**olds, **created.outs}, news).outs
        assert entity(fake, kind, created.id)["name"] == "renamed" == outs["name"]
        assert srv.count("GET", f"{API}/{kind.provider.collection}/{{id}}") == 2  # before and after

    def test_a_name_another_entity_holds_fails_the_update_and_changes_nothing(self, ziti: Ziti) -> None:
        fake, _ = ziti
        kind = ZITI_KINDS["identity"]
        olds = inputs(kind, ziti)
        created = kind.provider().create(olds)
        holder = fake.put_entity("identities", {**IDENTITY_BY_HAND, "name": "taken"})
        news = inputs(kind, ziti, name="taken", role_attributes=["q"])
        with pytest.raises(ZitiApiError) as err:
            kind.provider().update(created.id, {**olds, **created.outs}, news)
        assert err.value.code == "NAME_TAKEN" and err.value.is_duplicate
        assert str(err.value) == (
            f"PATCH /identities/{created.id}: NAME_TAKEN: the controller did not rename identity 'payments-api' "
            f"(id {created.id}) to 'taken': identity 'taken' (id {holder}) holds that name (it answers such a "
            "write 200 and applies none of it) [name: duplicate value 'taken']"
        )
        stored = entity(fake, kind, created.id)
        assert stored["name"] == "payments-api" and stored["roleAttributes"] == ["p"]


class TestTakenValues:
    """An update giving an entity a unique value (an identity's externalId, a signer's issuer)
    another entity holds: the controller (1.7.2, as the fake) answers 500 UNHANDLED and applies
    nothing. The provider sends it once (a repeat gets the same answer) and names the holder."""

    CASES = {
        "identity": ("externalId", "external_id", "spiffe://prod.example/billing",
                     {**IDENTITY_BY_HAND, "name": "billing"}),
        "external-jwt-signer": ("issuer", "issuer", "https://auth.example.com/realms/other",
                                {"name": "other", "audience": "a", "jwksEndpoint": "https://o/jwks", "enabled": True}),
    }

    @pytest.mark.parametrize("kind_key", sorted(CASES))
    def test_the_update_fails_once_naming_the_holder_and_changes_nothing(self, ziti: Ziti, kind_key: str) -> None:
        fake, srv = ziti
        kind = ZITI_KINDS[kind_key]
        api_field, field, value, by_hand = self.CASES[kind_key]
        collection = kind.provider.collection
        olds = inputs(kind, ziti)
        created = kind.provider().create(olds)
        before = copy.deepcopy(entity(fake, kind, created.id))
        holder = fake.put_entity(collection, {**by_hand, api_field: value})
        srv.reset_log()
        with pytest.raises(ZitiApiError) as err:
            kind.provider().update(created.id, {**olds, **created.outs}, inputs(kind, ziti, **{field: value}))
        assert err.value.status == 500 and err.value.is_duplicate and err.value.duplicate_value == value
        assert str(err.value) == (
            f"PATCH /edge/management/v1/{collection}/{created.id}: HTTP 500 UNHANDLED: the controller refused to "
            f"set {api_field} of {kind.provider.label} {before['name']!r} (id {created.id}) to {value!r}: "
            f"{kind.provider.label} {by_hand['name']!r} (id {holder}) holds that value; nothing was applied. Two "
            "resources that trade values need two updates (first a value no entity holds) "
            f"[duplicate value '{value}' in unique index on {fake_ziti.KINDS[collection].store} store]"
        )
        assert writes(srv) == [f"PATCH {API}/{collection}/{{id}}"]  # not repeated
        assert entity(fake, kind, created.id) == before


class TestRefresh:
    """What a refresh records: the entity as the controller holds it, its settings as the inputs."""

    def test_the_refreshed_inputs_are_the_settings_and_the_meta_inputs_not_the_computed_outputs(
        self, ziti: Ziti
    ) -> None:
        fake, srv = ziti
        kind = ZITI_KINDS["edge-router"]
        props = inputs(kind, ziti)
        created = kind.provider().create(props)
        entity(fake, kind, created.id)["isTunnelerEnabled"] = True  # changed outside Pulumi
        read = kind.provider().read(created.id, {**props, **created.outs})
        assert read.inputs == {
            "name": "router-1",
            "tags": {},
            "role_attributes": ["public"],
            "is_tunneler_enabled": True,
            "connection": fake_ziti.connection(srv, fake),
            "owner": {"stack": OWNER, "name": RESOURCE},
        }

    def test_a_router_identity_reads_back_as_router(self, ziti: Ziti) -> None:
        """The controller answers `type` as an entity reference; the refresh records its id."""
        kind = ZITI_KINDS["identity"]
        props = inputs(kind, ziti, type="Router")
        created = kind.provider().create(props)
        read = kind.provider().read(created.id, {**props, **created.outs})
        assert (read.outs["type"], read.inputs["type"]) == ("Router", "Router")
        assert kind.provider().diff(created.id, read.outs, props).changes is False


@pytest.mark.parametrize(("name", "collection", "label"), [
    ("ExternalJwtSigner", "external-jwt-signers", "external JWT signer"),
    ("AuthPolicy", "auth-policies", "auth policy"),
    ("Identity", "identities", "identity"),
    ("ServicePolicy", "service-policies", "service policy"),
    ("EdgeRouterPolicy", "edge-router-policies", "edge router policy"),
    ("ServiceEdgeRouterPolicy", "service-edge-router-policies", "service edge router policy"),
])
def test_each_kind_made_from_settings_is_importable_by_its_name(name: str, collection: str, label: str) -> None:
    """The engine pickles a provider class by reference: its name must find it in the module."""
    cls = getattr(zp, f"{name}Provider")
    assert (cls.__name__, cls.__module__, cls.collection, cls.label) == (f"{name}Provider", zp.__name__, collection,
                                                                         label)
    assert pickle.loads(pickle.dumps(cls)) is cls  # noqa: S301 (our own bytes)
