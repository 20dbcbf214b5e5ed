"""`ops drift`, saved plans, `--target` and `--replace` under the REAL engine: a `platform: external`
stack of the project's own program against the real SPIRE, Keycloak and OpenZiti (as
tests/engine/test_ops_status.py sets it up), driven through `ops`' entry point with that CLI's
environment. What the pinned CLI does with each flag is what is checked, on the servers:

- drift: none after `up`; an entry deleted out of band is drift (exit 10, the entry named) and the
  check writes nothing to the state; `up --refresh` puts it back;
- a saved plan: `up --plan` applies what `preview --save-plan` showed; a change made after the
  preview is refused (exit 11) and does not reach the server;
- `--target`: only the targeted identity changes on the server;
- `--replace` of the Ziti CA and the Keycloak client (through `ops`) and of the edge router (the
  raw CLI) deletes the old object first and makes a new one (the resource option
  `delete_before_replace`); of a SPIRE entry (through `ops` and the raw CLI) the replacement, made
  first, takes the entry over (same id, written again) and the old resource's delete leaves it:
  the entry stays, no drift, also when the same run changes the entry's settings (raw CLI);
- a workload key renamed with its SPIFFE ID kept, and a user key with its email: the program reads
  the previous deployment and follows the objects to their new resource names (aliases), so the
  preview proposes no create or delete, `scripts/up --yes` (which previews through `ops` and
  applies that plan) keeps the entry and both identities, and so does the raw `pulumi up` renaming
  them back; a user key renamed while its old key is declared again for another email, and an email
  passed along a chain of user keys, are each applied in one deployment (the identity that takes an
  email is written after the one that lets it go), while a trade of emails, or an email taken from
  a key the same change removes, fails the preview with one error saying what to do (raw CLI, and
  `ops` in one line), nothing applied; a workload key renamed with its SPIFFE path while the old
  key is declared again with another: the renamed key's entry adopts the entry, kept, and the
  identities take their SPIFFE IDs in order;
- the policy pack, copied out of the repository under another name, runs in the preview
  (`pulumi preview --policy-pack <copy>`, started by the CLI through the language host);
- docs/operations.md's `StackReference` example, run as a second project on the same file backend,
  reads the deployed stack's outputs, and the admin password stays encrypted in its state.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dynamic_providers.spire._proto import entry_pb2
from ops.cli import main
from ops.errors import ExitCode
from servers.stack import write_stack_file
from stack_config import PROJECT
from tests.engine.cli import REPO, Cli, ExternalStack, external_stack
from tests.real._ziti import Admin as ZitiAdmin
from tests.real.conftest import RealServers
from tests.real.keycloak_support import RealKeycloak
from tests.real.spire_targets import Admin as SpireAdmin


@pytest.fixture
def servers(real_servers: RealServers) -> Iterator[dict[str, Any]]:
    yield {"spire": real_servers("spire"), "keycloak": real_servers("keycloak"), "ziti": real_servers("ziti")}


class Ops:
    """`ops ...` in process, on the stack's project copy, with its CLI's environment."""

    def __init__(self, ext: ExternalStack) -> None:
        self.ext = ext

    def __call__(self, *argv: str) -> tuple[int, dict[str, Any]]:
        out, err = io.StringIO(), io.StringIO()
        code = main([*argv, "--stack", self.ext.stack, "--json"], stdout=out, stderr=err, environ=self.ext.cli.env,
                    root=self.ext.cli.dir)
        assert out.getvalue().strip(), err.getvalue()
        doc: dict[str, Any] = json.loads(out.getvalue())
        return code, doc

    def resource(self, name: str) -> dict[str, Any]:
        """The state's record of resource `name` (`pulumi stack export`)."""
        state = json.loads(self.ext.cli("stack", "export").stdout)
        (found,) = [r for r in state["deployment"]["resources"] if r["urn"].endswith(f"::{name}")]
        return dict(found)

    def names(self) -> list[str]:
        """The names of the resources in the state."""
        state = json.loads(self.ext.cli("stack", "export").stdout)
        return [str(r["urn"]).rsplit("::", 1)[1] for r in state["deployment"]["resources"]]

    def urn(self, name: str) -> str:
        return str(self.resource(name)["urn"])

    def outputs(self) -> dict[str, Any]:
        return dict(json.loads(self.ext.cli("stack", "output", "--json").stdout))

    def settings(self) -> dict[str, Any]:
        """The stack file's plain project settings (what `write_stack_file` takes)."""
        config = yaml.safe_load((self.ext.cli.dir / f"Pulumi.{self.ext.stack}.yaml").read_text())["config"]
        return {k.split(":", 1)[1]: v for k, v in config.items()
                if k.startswith(f"{PROJECT}:") and not (isinstance(v, dict) and set(v) == {"secure"})}

    def set_roles(self, workload: list[str] | None = None, user: list[str] | None = None) -> None:
        """New role attributes for the workload and the user, in the stack file as an operator edits it."""
        plain = self.settings()
        if workload is not None:
            plain["workloads"][self.ext.workload]["zitiRoleAttributes"] = workload
        if user is not None:
            plain["users"][self.ext.user]["zitiRoleAttributes"] = user
        write_stack_file(self.ext.cli.dir, self.ext.stack, plain)


def changed(doc: dict[str, Any]) -> dict[str, set[str]]:
    """Resource name -> the operations of the report's steps on it, without the engine's default
    provider of the dynamic resources (the pinned CLI lists it as an update in these previews; it
    manages nothing itself)."""
    found: dict[str, set[str]] = {}
    for s in doc["steps"]:
        if not s["type"].startswith("pulumi:providers:"):
            found.setdefault(s["urn"].rsplit("::", 1)[1], set()).add(s["op"])
    return found


def stack_reference_example() -> str:
    """The consumer program of docs/operations.md ("From another Pulumi program")."""
    doc = (REPO / "docs" / "operations.md").read_text()
    section = doc[doc.index("### From another Pulumi program"):]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "docs/operations.md lost its StackReference example"
    return found.group(1)


def run_stack_reference_example(ext: ExternalStack, engine_bin: Path, work: Path) -> dict[str, Any]:
    """The docs' consumer as another project on the same backend, naming this stack and workload."""
    work.mkdir()
    consumer = Cli(engine_bin, work, "consumer")
    consumer.env = {**ext.cli.env}  # the same backend, passphrase and PULUMI_HOME
    program = stack_reference_example().replace(
        '"organization/identity-platform/prod"', f'"organization/identity-platform/{ext.stack}"'
    ).replace('["payments-api"]', f"[{ext.workload!r}]")
    (consumer.dir / "__main__.py").write_text(program)
    (consumer.dir / "Pulumi.yaml").write_text("name: platform-consumer\nruntime:\n  name: python\n"
                                              "  options:\n    toolchain: pip\n    virtualenv: .venv\n")
    (consumer.dir / ".venv").symlink_to(REPO / ".venv")
    consumer("stack", "init")
    consumer("up", "--yes")
    outputs: dict[str, Any] = json.loads(consumer("stack", "output", "--json").stdout)
    state = consumer("stack", "export").stdout
    secret = json.loads(ext.cli("stack", "output", "--json", "--show-secrets").stdout)["zitiRouterEnrollmentJwt"]
    assert secret.count(".") == 2 and secret not in state, "a secret output is in clear in the consumer's state"
    return outputs


def scripts_up(ext: ExternalStack, *argv: str) -> subprocess.CompletedProcess[str]:
    """The checkout's `scripts/up` run in the stack's project copy (whose `.venv` is the
    checkout's: the dev install satisfies it), with the CLI's environment and no terminal."""
    for name in ("scripts/up", "scripts/_venv.sh", "pyproject.toml", *(p.name for p in REPO.glob("requirements*.txt"))):
        (ext.cli.dir / name).parent.mkdir(exist_ok=True)
        shutil.copy2(REPO / name, ext.cli.dir / name)
    return subprocess.run([str(ext.cli.dir / "scripts" / "up"), ext.stack, *argv], env=ext.cli.env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900, check=False)


def test_drift_plans_targets_and_replacements_on_a_live_external_stack(
    engine_bin: Path, servers: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ext = external_stack(engine_bin, tmp_path, servers, "opsx", monkeypatch)
    ops = Ops(ext)
    spire_admin = SpireAdmin(servers["spire"]["admin_socket"])
    ziti = ZitiAdmin(servers["ziti"])
    workload_identity, user_identity = f"ziti-trust-identity-{ext.workload}", f"ziti-trust-user-{ext.user}"

    def ziti_roles(output_key: str, name: str) -> list[str]:
        identity = ziti.get(f"/identities/{ops.outputs()[output_key][name]}")
        assert identity is not None
        return sorted(identity["roleAttributes"])

    plain = ops.settings()
    plain["ziti"]["routerName"] = f"router-{ext.tag}"  # its enrollment JWT: a secret output to follow
    write_stack_file(ext.cli.dir, ext.stack, plain)
    try:
        code, doc = ops("up")
        assert code == ExitCode.OK, doc
        outputs = ops.outputs()

        # -- the policy pack from a copy outside the repository ---------------------------------
        pack = tmp_path / "guard rails v0.1.0"
        shutil.copytree(REPO / "policy", pack, ignore=shutil.ignore_patterns("__pycache__", "venv"))
        (pack / "venv").symlink_to(REPO / ".venv")  # requirements.txt's pins are the dev venv's
        preview = ext.cli("preview", "--policy-pack", str(pack)).stdout
        assert "identity-platform-policies" in preview and "Policies:" in preview, preview

        # -- the docs' StackReference consumer reads these outputs ----------------------------
        consumed = run_stack_reference_example(ext, engine_bin, tmp_path / "consumer")
        assert consumed == {"paymentsZitiIdentity": outputs["zitiIdentityIds"][ext.workload]}

        # -- drift: none, then an entry deleted behind Pulumi's back --------------------------
        code, doc = ops("drift")
        assert code == ExitCode.OK and doc["command"] == "drift" and doc["steps"] == [], doc
        entry_id = outputs["spireEntryIds"][ext.workload]
        spire_admin.stub.BatchDeleteEntry(entry_pb2.BatchDeleteEntryRequest(ids=[entry_id]), timeout=10)
        state_before = ext.cli.state_text()
        code, doc = ops("drift")
        assert code == ExitCode.DRIFT and doc["error"]["kind"] == "drift", (doc["error"], doc.get("diagnostics"))
        assert [(s["op"], s["urn"].rsplit("::", 1)[1]) for s in doc["steps"]] == [
            ("create", f"spire-entries-entry-{ext.workload}")], doc["steps"]
        assert ext.cli.state_text() == state_before, "drift wrote to the state"
        code, doc = ops("up", "--refresh")
        assert code == ExitCode.OK, doc
        assert ops("drift")[0] == ExitCode.OK
        assert spire_admin.get(ops.outputs()["spireEntryIds"][ext.workload]) is not None

        # -- a saved plan is applied as reviewed ----------------------------------------------
        plan = tmp_path / "reviewed.plan.json"
        ops.set_roles(workload=["reviewed"])
        code, doc = ops("preview", "--save-plan", str(plan))
        assert code == ExitCode.OK and plan.is_file(), doc
        assert set(changed(doc)) == {workload_identity}, doc["steps"]
        code, doc = ops("up", "--plan", str(plan))
        assert code == ExitCode.OK, doc
        assert ziti_roles("zitiIdentityIds", ext.workload) == ["reviewed"]

        # -- ... and a change made after the review is refused -------------------------------
        ops.set_roles(workload=["reviewed-again"])
        assert ops("preview", "--save-plan", str(plan))[0] == ExitCode.OK
        ops.set_roles(workload=["reviewed-again"], user=["not-reviewed"])
        code, doc = ops("up", "--plan", str(plan))
        assert code == ExitCode.PLAN_REJECTED and doc["error"]["kind"] == "plan_rejected", (
            doc["error"], doc["diagnostics"])
        assert "plan" in doc["error"]["message"], doc["error"]
        assert ziti_roles("zitiUserIdentityIds", ext.user) == ["operators"], "an unreviewed change was applied"

        # -- --target: only the user's identity is updated ------------------------------------
        ops.set_roles(workload=["later"], user=["targeted"])
        code, doc = ops("up", "--target", ops.urn(user_identity))
        assert code == ExitCode.OK, doc
        assert ziti_roles("zitiUserIdentityIds", ext.user) == ["targeted"]
        assert ziti_roles("zitiIdentityIds", ext.workload) != ["later"]
        code, doc = ops("preview")
        assert set(changed(doc)) == {workload_identity}, doc["steps"]

        # -- --replace of Keycloak and Ziti objects: deleted first, then made anew ------------------
        ca_urn, old_ca = ops.urn("ziti-trust-spire-ca"), outputs["zitiCaId"]
        client_name = next(n for n in ops.names() if n.endswith("-ziti-client"))
        old_client = ops.resource(client_name)
        old_client_id, client_id = old_client["id"], old_client["outputs"]["client_id"]
        code, doc = ops("up", "--replace", ca_urn, "--replace", ops.urn(client_name))
        assert code == ExitCode.OK, doc
        new_ca = ops.resource("ziti-trust-spire-ca")["id"]
        ca = ziti.get(f"/cas/{new_ca}")
        assert new_ca != old_ca and ca is not None and ca["isVerified"] is True
        assert ziti.get(f"/cas/{old_ca}") is None, "the old CA outlived its replacement"
        new_client = ops.resource(client_name)["id"]
        assert new_client != old_client_id, "the replacement adopted the old client instead of making a new one"
        assert [c["id"] for c in RealKeycloak(servers["keycloak"]).clients(ext.stack, client_id)] == [new_client]
        assert ops("drift")[0] == ExitCode.OK
        # With the raw CLI, as components/ziti_router.py tells an operator who lost the router's JWT.
        router = ops.resource("ziti-trust-router")
        ext.cli("up", "--yes", "--replace", router["urn"], "--target", router["urn"])
        replaced = ops.resource("ziti-trust-router")
        assert replaced["id"] != router["id"] and ziti.get(f"/edge-routers/{router['id']}") is None
        assert ziti.get(f"/edge-routers/{replaced['id']}") is not None
        assert ops("drift")[0] == ExitCode.OK

        # -- --replace of a SPIRE entry: the replacement takes the entry over, with ops and the raw CLI --
        entry_name = f"spire-entries-entry-{ext.workload}"
        entry_urn, entry_id = ops.urn(entry_name), ops.outputs()["spireEntryIds"][ext.workload]
        for how in ("ops", "pulumi up"):
            before = spire_admin.get(entry_id)
            assert before is not None
            if how == "ops":
                code, doc = ops("up", "--replace", entry_urn)
                assert code == ExitCode.OK, doc
            else:
                ext.cli("up", "--yes", "--replace", entry_urn, "--target", entry_urn)
            after = spire_admin.get(entry_id)
            assert ops.resource(entry_name)["id"] == entry_id, how
            assert after is not None, f"{how}: the forced replacement lost the entry"
            assert after.revision_number > before.revision_number, how  # written by the replacement
            assert ops("drift")[0] == ExitCode.OK, how
        # ... and when the same run also changes its settings (the replacement writes other fields than
        # the old state recorded: the delete knows the revision its own provider process wrote).
        dns_name = "svc." + ops.settings()["users"][ext.user]["email"].split("@", 1)[1]
        plain = ops.settings()
        plain["workloads"][ext.workload]["dnsNames"] = [dns_name]
        write_stack_file(ext.cli.dir, ext.stack, plain)
        ext.cli("up", "--yes", "--replace", entry_urn)
        after = spire_admin.get(entry_id)
        assert after is not None and list(after.dns_names) == [dns_name], "the replacement lost the entry"
        del plain["workloads"][ext.workload]["dnsNames"]
        write_stack_file(ext.cli.dir, ext.stack, plain)
        assert ops("up")[0] == ExitCode.OK and ops("drift")[0] == ExitCode.OK

        # -- keys renamed, the objects kept: followed to the new names, with ops and the raw CLI --
        outputs = ops.outputs()
        entry_id, identity_id = outputs["spireEntryIds"][ext.workload], outputs["zitiIdentityIds"][ext.workload]
        user_identity = outputs["zitiUserIdentityIds"][ext.user]
        plain = ops.settings()
        first = {"workloads": dict(plain["workloads"]), "users": dict(plain["users"])}
        renamed = {"workloads": {f"{ext.workload}-renamed": plain["workloads"][ext.workload]},
                   "users": {f"{ext.user}-renamed": plain["users"][ext.user]}}
        for keys, how in ((renamed, "scripts/up"), (first, "pulumi up")):
            write_stack_file(ext.cli.dir, ext.stack, {**ops.settings(), **keys})
            code, doc = ops("preview")
            assert code == ExitCode.OK, doc
            assert not {"create", "delete"} & set().union(*changed(doc).values()), doc["steps"]
            if how == "scripts/up":
                deployed = scripts_up(ext, "--yes")
                assert deployed.returncode == ExitCode.OK, deployed.stdout + deployed.stderr
                assert "installing" not in deployed.stdout and f"up {ext.stack}: " in deployed.stdout, deployed.stdout
            else:
                ext.cli("up", "--yes")
            (workload,), (user,) = keys["workloads"], keys["users"]
            outputs = ops.outputs()
            assert outputs["spireEntryIds"] == {workload: entry_id} and spire_admin.get(entry_id) is not None, how
            assert outputs["zitiIdentityIds"] == {workload: identity_id}, how
            assert outputs["zitiUserIdentityIds"] == {user: user_identity}, how
            for id_ in (identity_id, user_identity):
                assert ziti.get(f"/identities/{id_}") is not None, how
            assert f"spire-entries-entry-{workload}" in ops.names(), how
            assert ops("drift")[0] == ExitCode.OK, how

        # -- values changing hands among keys that stay: ordered in one deployment, or one error --
        email = plain["users"][ext.user]["email"]
        domain, moved = email.split("@", 1)[1], f"{ext.user}-moved"

        def emails(**declared: str) -> dict[str, Any]:
            return {k: {**plain["users"][ext.user], "email": v} for k, v in declared.items()}

        def external_ids() -> dict[str, str]:
            ids = ops.outputs()["zitiUserIdentityIds"]
            return {key: ziti.get(f"/identities/{id_}")["externalId"] for key, id_ in ids.items()}

        # A key renamed while its old key is declared again for another email (raw CLI): the old key
        # keeps its identity, which takes the new email; the renamed key's is made once it let go.
        write_stack_file(ext.cli.dir, ext.stack, {
            **ops.settings(), "users": emails(**{moved: email, ext.user: f"someone-else@{domain}"})})
        ext.cli("up", "--yes")
        assert ops.outputs()["zitiUserIdentityIds"][ext.user] == user_identity
        assert external_ids() == {ext.user: f"someone-else@{domain}", moved: email}
        assert ops("drift")[0] == ExitCode.OK
        # A chain (ops up): the user takes the renamed key's email back, which takes a third one.
        write_stack_file(ext.cli.dir, ext.stack, {
            **ops.settings(), "users": emails(**{ext.user: email, moved: f"third@{domain}"})})
        code, doc = ops("up")
        assert code == ExitCode.OK, doc
        assert external_ids() == {ext.user: email, moved: f"third@{domain}"}
        # A trade, and an email taken from a key the same change removes: one error each at preview,
        # nothing applied (raw CLI, and `ops` in one line: the exception's message, not the traceback).
        held = external_ids()
        for declared, said in ((emails(**{ext.user: f"third@{domain}", moved: email}), "trade values"),
                               (emails(**{ext.user: f"third@{domain}"}), "which this deployment removes")):
            write_stack_file(ext.cli.dir, ext.stack, {**ops.settings(), "users": declared})
            done = ext.cli("up", "--yes", ok=False)
            out = done.stdout + done.stderr
            assert done.returncode != 0 and said in out and "Duplicate resource alias" not in out, out
            code, doc = ops("preview")
            assert code == ExitCode.FAILED and doc["error"]["message"].startswith("values change hands"), doc
            assert said in doc["error"]["message"], doc
            assert external_ids() == held
        # A workload key renamed with its SPIFFE path while the old key is declared again with another:
        # the renamed key's entry adopts the entry (its id kept), the old key's is replaced, and its
        # identity lets the SPIFFE ID go before the renamed key's identity takes it (ops up).
        write_stack_file(ext.cli.dir, ext.stack, {**ops.settings(), **first})
        assert ops("up")[0] == ExitCode.OK
        outputs, spec = ops.outputs(), plain["workloads"][ext.workload]
        entry_id, identity_id = outputs["spireEntryIds"][ext.workload], outputs["zitiIdentityIds"][ext.workload]
        spiffe_id = ziti.get(f"/identities/{identity_id}")["externalId"]
        kept = f"{ext.workload}-kept"
        write_stack_file(ext.cli.dir, ext.stack, {**ops.settings(), "workloads": {
            kept: spec, ext.workload: {**spec, "spiffePath": spec["spiffePath"] + "-next"}}})
        code, doc = ops("up")
        assert code == ExitCode.OK, doc
        outputs = ops.outputs()
        assert outputs["spireEntryIds"][kept] == entry_id and spire_admin.get(entry_id) is not None
        moved_entry = spire_admin.get(outputs["spireEntryIds"][ext.workload])
        assert moved_entry is not None and moved_entry.spiffe_id.path.endswith("-next"), moved_entry
        assert outputs["zitiIdentityIds"][ext.workload] == identity_id
        assert ziti.get(f"/identities/{identity_id}")["externalId"] == spiffe_id + "-next"
        assert ziti.get(f"/identities/{outputs['zitiIdentityIds'][kept]}")["externalId"] == spiffe_id
        assert ops("drift")[0] == ExitCode.OK
        # Back in two deployments, as the error for a value taken from a removed key says.
        write_stack_file(ext.cli.dir, ext.stack, {
            **ops.settings(), "workloads": {ext.workload: {**spec, "spiffePath": spec["spiffePath"] + "-next"}}})
        assert ops("up")[0] == ExitCode.OK
        write_stack_file(ext.cli.dir, ext.stack, {**ops.settings(), **first})
        assert ops("up")[0] == ExitCode.OK and ops("drift")[0] == ExitCode.OK
        assert external_ids() == {ext.user: email}
    finally:
        ext.cli("destroy", "--yes", ok=False)
        spire_admin.close()
        ziti.close()
    assert json.loads(ext.cli("stack", "output", "--json").stdout) == {}
