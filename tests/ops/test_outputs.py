"""The StackOutputs contract: its fields are the documented exports, its loaders parse what the
CLI prints, secrets stay hidden, and the committed JSON Schema is current and actually validates."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import jsonschema
import pytest
from pulumi import automation as auto

from ops.outputs import SCHEMA_PATH, OutputsContractError, StackOutputs, json_schema, render_schema
from tests.harness.mock_engine import ROOT
from tests.ops.conftest import RECORDED, FakeCli

# The stack exports contract, as written in the project brief (camelCase keys), for swarm stacks;
# an external stack has no server admin credentials, console or mandatory router, and may hand the
# user a generated root's key and a router's enrollment token.
CONTRACT = {
    "environment", "platform", "zitiUserIdentityIds", "nodes",
    "spireTrustDomain", "spireBundlePem", "keycloakUrl", "keycloakIssuerUrl",
    "keycloakJwksUrl", "keycloakAdminUser", "keycloakAdminPassword", "keycloakRealmId", "keycloakZitiClientId",
    "zitiControllerUrl", "zitiConsoleUrl", "zitiAdminUser", "zitiAdminPassword", "zitiCaId", "zitiCaFingerprint",
    "zitiExtJwtSignerId", "zitiAuthPolicyId", "zitiRouterId", "zitiIdentityIds", "spireEntryIds", "buckets",
}  # fmt: skip
SWARM_ONLY = {"keycloakAdminPassword", "zitiConsoleUrl", "zitiAdminPassword", "zitiRouterId"}
EXTERNAL_MAY = {"zitiRouterId", "zitiRouterEnrollmentJwt", "spireUpstreamCaKeyPem"}
SECRET_KEYS = {"keycloakAdminPassword", "zitiAdminPassword", "zitiRouterEnrollmentJwt", "spireUpstreamCaKeyPem"}


def recorded(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((RECORDED / name).read_text())
    return doc


PROD = recorded("stack-output.prod.show-secrets.json")


class TestTheModelIsTheContract:
    def test_fields_are_exactly_the_export_keys(self) -> None:
        assert StackOutputs.export_keys("swarm") == CONTRACT
        assert StackOutputs.export_keys("external") == CONTRACT - SWARM_ONLY
        assert StackOutputs.optional_keys("external") == EXTERNAL_MAY

    def test_each_platform_refuses_the_others_keys(self) -> None:
        with pytest.raises(OutputsContractError, match="spireUpstreamCaKeyPem: not exported with platform swarm"):
            StackOutputs.from_mapping({**PROD, "spireUpstreamCaKeyPem": "k"})
        external = {k: v for k, v in PROD.items() if k not in SWARM_ONLY} | {"platform": "external"}
        assert StackOutputs.from_mapping(external).ziti_router_id is None
        with pytest.raises(OutputsContractError, match="zitiConsoleUrl: not exported with platform external"):
            StackOutputs.from_mapping({**external, "zitiConsoleUrl": PROD["zitiConsoleUrl"]})
        with pytest.raises(OutputsContractError, match="zitiAdminPassword: required with platform swarm"):
            StackOutputs.from_mapping({k: v for k, v in PROD.items() if k != "zitiAdminPassword"})

    def test_secret_fields_are_secretstr(self) -> None:
        assert StackOutputs.secret_keys() == SECRET_KEYS

    def test_unknown_and_missing_outputs_are_named(self) -> None:
        data = {k: v for k, v in PROD.items() if k != "zitiCaId"} | {"zitiCaID": "W8bEXyDWQ"}
        with pytest.raises(OutputsContractError) as err:
            StackOutputs.from_mapping(data)
        text = str(err.value)
        assert "zitiCaId: required with platform swarm" in text
        assert "zitiCaID: unexpected output" in text

    @pytest.mark.parametrize(
        ("key", "value", "expect"),
        [
            ("keycloakUrl", "auth.zt.acme-identity.net", "keycloakUrl"),
            ("environment", "staging", "environment"),
            ("spireBundlePem", "not a certificate", "spireBundlePem"),
            ("spireTrustDomain", "spiffe://zt.acme-identity.net", "spireTrustDomain"),
            ("zitiIdentityIds", {"ledger": ""}, "zitiIdentityIds.ledger"),
            ("buckets", {"backups": {"name": "b", "region": "fra1"}}, "buckets.backups.endpoint"),
            ("keycloakAdminPassword", "", "keycloakAdminPassword"),
        ],
    )
    def test_bad_values_are_rejected_with_their_path(self, key: str, value: Any, expect: str) -> None:
        with pytest.raises(OutputsContractError, match=rf"(?m)^  {expect}:"):
            StackOutputs.from_mapping({**PROD, key: value})

    def test_errors_never_echo_secret_values(self) -> None:
        with pytest.raises(OutputsContractError) as err:
            StackOutputs.from_mapping({**PROD, "keycloakAdminPassword": 12345678})
        assert "12345678" not in str(err.value)


class TestLoaders:
    def test_from_json_parses_stack_output_show_secrets(self) -> None:
        text = (RECORDED / "stack-output.prod.show-secrets.json").read_text()
        outs = StackOutputs.from_json(text)
        assert outs.environment == "prod" and outs.nodes == ["manager-1", "worker-1", "worker-2"]
        assert outs.buckets["pki"].endpoint == "https://fra1.digitaloceanspaces.com"
        assert outs.ziti_identity_ids == {"ledger": "Hq2sN7dVa", "payments-api": "b3JxW0yRe"}
        assert outs.keycloak_admin_password.get_secret_value() == PROD["keycloakAdminPassword"]

    def test_secrets_do_not_leak_through_repr_or_dump(self) -> None:
        outs = StackOutputs.from_json(json.dumps(PROD))
        for text in (repr(outs), str(outs), json.dumps(outs.model_dump(mode="json")), json.dumps(outs.to_exports())):
            assert PROD["keycloakAdminPassword"] not in text and PROD["zitiAdminPassword"] not in text

    def test_masked_output_tells_you_to_use_show_secrets(self) -> None:
        with pytest.raises(OutputsContractError, match="--show-secrets") as err:
            StackOutputs.from_json((RECORDED / "stack-output.prod.json").read_text())
        assert "keycloakAdminPassword" in str(err.value) and "zitiAdminPassword" in str(err.value)

    def test_masked_outputs_validate_when_read_as_masked(self) -> None:
        masked = json.loads((RECORDED / "stack-output.prod.json").read_text())
        outs = StackOutputs.from_mapping(masked, masked=True)
        assert outs.to_exports() == masked  # what the CLI printed, secrets still masked

    def test_a_plain_contract_output_masked_in_the_stack_is_named(self) -> None:
        masked = {**json.loads((RECORDED / "stack-output.prod.json").read_text()), "zitiControllerUrl": "[secret]"}
        with pytest.raises(OutputsContractError, match=r"secrets in the stack \(zitiControllerUrl\)"):
            StackOutputs.from_mapping(masked, masked=True)

    @pytest.mark.parametrize("text", ["", "[1, 2]", "{not json"])
    def test_non_object_json_is_rejected(self, text: str) -> None:
        with pytest.raises(OutputsContractError):
            StackOutputs.from_json(text)

    def test_round_trip_through_exports(self) -> None:
        outs = StackOutputs.from_json(json.dumps(PROD))
        assert outs.to_exports(show_secrets=True) == PROD
        assert StackOutputs.from_json(json.dumps(outs.to_exports(show_secrets=True))) == outs

    def test_from_output_map_takes_automation_api_values(self) -> None:
        omap = {k: auto.OutputValue(v, k in SECRET_KEYS) for k, v in PROD.items()}
        assert StackOutputs.from_output_map(omap).ziti_router_id == "Xr5TgU1kc"

    def test_from_stack_reads_through_the_automation_api(self, fake_cli: FakeCli, monkeypatch) -> None:
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "p")
        monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://zt-state?region=fra1")
        fake_cli.configure(
            stacks=["prod"],
            operations={
                "up": {
                    "events": ["up.prod.events.jsonl"],
                    "outputs": {
                        "show_secrets": "stack-output.prod.show-secrets.json",
                        "masked": "stack-output.prod.json",
                    },
                }
            },
        )
        assert fake_cli.run("up", "--stack", "prod", "--yes").code == 0
        before = len(fake_cli.calls())
        outs = StackOutputs.from_stack("prod", root=fake_cli.project)
        assert outs.ziti_admin_password.get_secret_value() == PROD["zitiAdminPassword"]
        reads = [c.args for c in fake_cli.calls()[before:] if c.args[:2] == ["stack", "output"]]
        assert ["--show-secrets" in a for a in reads] == [False, True]
        assert all(a[-2:] == ["--stack", "prod"] for a in reads)


class TestCommittedSchema:
    def test_committed_schema_is_current(self) -> None:
        assert SCHEMA_PATH.read_text() == render_schema(), "schema is stale: run `python -m ops schema`"

    def test_schema_check_command_agrees(self) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "ops", "schema", "--check"], cwd=ROOT, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr

    def test_a_stale_schema_is_detected(self, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
        from ops import cli

        stale = tmp_path / "stack-outputs.schema.json"
        stale.write_text(render_schema().replace('"zitiRouterId"', '"zitiRouterName"'))
        monkeypatch.setattr(cli, "SCHEMA_PATH", stale)
        assert cli.main(["schema", "--check"]) == 1

    def test_schema_validates_recorded_outputs_and_rejects_broken_ones(self) -> None:
        schema = json.loads(SCHEMA_PATH.read_text())
        validator = jsonschema.Draft202012Validator(schema)
        validator.check_schema(schema)
        assert list(validator.iter_errors(PROD)) == []
        broken = recorded("stack-output.prod.broken.show-secrets.json")
        messages = [e.message for e in validator.iter_errors(broken)]
        assert any("zitiRouterId" in m for m in messages) and any("zitiRouterName" in m for m in messages)
        assert list(validator.iter_errors({**PROD, "keycloakUrl": "auth.example"}))

    def test_schema_marks_secrets_write_only(self) -> None:
        props = json_schema()["properties"]
        assert {k for k, v in props.items() if v.get("writeOnly")} == SECRET_KEYS
        # What every platform exports; the rest is required per platform (if/then on `platform`).
        assert set(json_schema()["required"]) == {
            "environment", "platform", "nodes", "spireTrustDomain", "spireBundlePem", "spireEntryIds"}

    def test_schema_applies_the_platform_rules(self) -> None:
        validator = jsonschema.Draft202012Validator(json_schema())
        assert list(validator.iter_errors({k: v for k, v in PROD.items() if k != "zitiAdminPassword"}))
        external = {k: v for k, v in PROD.items() if k not in SWARM_ONLY} | {"platform": "external"}
        assert list(validator.iter_errors(external)) == []
        assert list(validator.iter_errors({**external, "zitiConsoleUrl": PROD["zitiConsoleUrl"]}))

    def test_schema_types_the_kubernetes_exports(self) -> None:
        """A Kubernetes stack: its topology keys, Keycloak's and Ziti's outputs each whole or absent."""
        validator = jsonschema.Draft202012Validator(json_schema())
        base = {k: PROD[k] for k in ("environment", "spireTrustDomain", "spireBundlePem", "spireEntryIds")}
        k8s = {**base, "platform": "kubernetes", "nodes": [], "kubernetesTopology": "basic",
               "kubernetesClusters": ["dev"], "spireServerAddress": "spire-server.spire-server.svc:8081"}
        assert list(validator.iter_errors(k8s)) == []
        assert StackOutputs.from_mapping(k8s).keycloak_url is None
        keycloak = {k: PROD[k] for k in PROD if k.startswith("keycloak")}
        assert list(validator.iter_errors({**k8s, **keycloak})) == []
        partial = {**k8s, **{k: v for k, v in keycloak.items() if k != "keycloakRealmId"}}
        messages = [e.message for e in validator.iter_errors(partial)]
        assert messages and all(m.startswith("'keycloakRealmId' is a dependency of 'keycloak") for m in messages)
        assert list(validator.iter_errors({**k8s, "buckets": {}}))  # swarm's and external's, not kubernetes'
        assert list(validator.iter_errors({**PROD, "kubernetesTopology": "basic"}))
