"""`python -m ops diagram` on a real stack: the project's program in `platform: external` against
the real SPIRE, Keycloak and OpenZiti of `scripts/servers`, under the real engine.

ops itself drives the engine here (Automation API: `pulumi preview --json` for `--from preview`,
`pulumi stack export` for `--from state`), so what is drawn is the CLI's own documents: the plan
of an empty stack (everything created), the deployed state (the trust chain by name), then a plan
with one change of each kind (a new workload created, role attributes updated, a user deleted,
another root CA replacing the Ziti CA), marked as such. No secret reaches any output.
"""

from __future__ import annotations

import io
import secrets
from pathlib import Path

import pytest

from ops import diagram
from ops.cli import main
from servers.stack import external_settings, set_secrets, write_stack_file
from tests.engine.cli import REPO, Cli
from tests.engine.test_external_stack import another_root
from tests.ops.diagram_exports import parse_svg
from tests.ops.test_diagram import label_name, read_mermaid
from tests.real.conftest import RealServers

# What ops reads from the process environment: this test's engine, home, backend and passphrase.
OPS_ENV = ("PATH", "PULUMI_HOME", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_SKIP_UPDATE_CHECK",
           "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "PYTHONPATH")


def ops_diagram(cli: Cli, *argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    code = main(["diagram", "--stack", cli.stack, *argv], stdout=out, stderr=err, root=cli.dir)
    assert code == 0, err.getvalue()
    return out.getvalue()


def drawn(text: str) -> tuple[set[tuple[str, str, str | None]], dict[str, set[str]]]:
    """The trust edges (source, target, label) and the classes of every node, by resource name."""
    m = read_mermaid(text)
    labels = {**m["nodes"], **m["subgraphs"]}
    trust = {(label_name(labels[a]), label_name(labels[b]), lbl) for a, arrow, lbl, b in m["edges"] if arrow == "==>"}
    classes = {label_name(label): m["classes"].get(i, set()) for i, label in labels.items()}
    return trust, classes


def test_ops_diagram_draws_a_real_external_stack(
    engine_bin: Path, real_servers: RealServers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = {"spire": real_servers("spire"), "keycloak": real_servers("keycloak"), "ziti": real_servers("ziti")}
    tag = secrets.token_hex(3)
    cli = Cli(engine_bin, tmp_path, f"dia-{tag}")
    for name in ("__main__.py", "Pulumi.yaml"):
        (cli.dir / name).write_text((REPO / name).read_text())
    (cli.dir / ".venv").symlink_to(REPO / ".venv")
    for key in OPS_ENV:
        monkeypatch.setenv(key, cli.env[key])

    plain, secret_values = external_settings(servers)
    td = servers["spire"]["trust_domain"]
    shell, billing, user = f"shell-{tag}", f"billing-{tag}", f"alice-{tag}"
    plain["keycloak"]["realm"] = f"diagram-{tag}"
    plain["workloads"] = {shell: {**plain["workloads"]["local-shell"], "spiffePath": f"/diagram/{tag}/shell"}}
    plain["users"] = {user: {"email": f"{user}@acme-identity.net", "zitiRoleAttributes": ["operators"]}}
    cli("stack", "init")
    write_stack_file(cli.dir, cli.stack, plain)
    set_secrets(secret_values, stack=cli.stack, cwd=cli.dir, env=cli.env)
    never = [v.strip() for v in secret_values.values()] + [f"{user}@acme-identity.net"]
    never += ["".join(v.strip().splitlines()[1:-1])[:40] for v in secret_values.values() if v.startswith("-----")]

    def no_secret(*texts: str) -> None:
        for text in texts:
            assert not [v for v in never if v and v in text], "a secret (or the user's email) reached a diagram"

    chain = {
        ("root-ca", "SPIRE server (yours)", "UpstreamAuthority"),
        ("root-ca", "ziti-trust-spire-ca", "verified"),
        ("ziti-trust-spire-ca", f"ziti-trust-identity-{shell}", f"spiffe://{td}/diagram/{tag}/shell"),
        (f"spire-entries-entry-{shell}", f"ziti-trust-identity-{shell}", "SVID"),
        ("keycloak-identity-realm", "ziti-trust-keycloak-signer", "issuer, JWKS"),
        ("keycloak-identity-ziti-client", "ziti-trust-keycloak-signer", "audience"),
        ("ziti-trust-keycloak-signer", "ziti-trust-user-policy", "ext-JWT signer"),
        ("ziti-trust-user-policy", f"ziti-trust-user-{user}", "JWT login"),
    }
    try:
        # -- the plan of an empty stack: everything is created --------------------------------
        text = ops_diagram(cli, "--from", "preview")
        trust, classes = drawn(text)
        assert trust == chain
        assert classes.pop("SPIRE server (yours)") == {"external"}
        assert all(c == {"created"} for c in classes.values()), classes
        # The brought root CA creates nothing: the chain starts at the RootCa component.
        assert '["root-ca<br/><small>pki:RootCa</small>"]' in text
        no_secret(text)

        # -- the deployed state: the same chain, nothing marked ---------------------------------
        cli("up", "--yes")
        deployed = diagram.build_graph(diagram.state_resources(cli.stack, root=cli.dir), stack=cli.stack)
        assert deployed.edge_names(trust=True) == chain
        assert deployed.changes() == {}
        text = ops_diagram(cli)  # --from state is the default
        svg_path = tmp_path / "diagram.svg"
        ops_diagram(cli, "--format", "svg", "--output", str(svg_path))
        svg = svg_path.read_text()
        root_el = parse_svg(svg)
        assert {"ziti-trust-spire-ca", "verified", "UpstreamAuthority"} <= {t.text for t in root_el.iter()}
        assert drawn(text)[0] == chain
        no_secret(text, svg, diagram.render_dot(deployed))

        # -- one change of each kind ------------------------------------------------------------
        plain["workloads"][shell]["zitiRoleAttributes"] = ["local", "shell"]
        plain["workloads"][billing] = {**plain["workloads"][shell], "spiffePath": f"/diagram/{tag}/billing",
                                       "selectors": ["unix:uid:4243"]}
        del plain["users"]
        cert_pem, key_pem = another_root(f"{cli.stack} replacement root")
        plain["rootCa"] = {"certificate": cert_pem}
        write_stack_file(cli.dir, cli.stack, plain)
        set_secrets({"rootCaKey": key_pem}, stack=cli.stack, cwd=cli.dir, env=cli.env)
        never.append("".join(key_pem.strip().splitlines()[1:-1])[:40])
        text = ops_diagram(cli, "--from", "preview")
        trust, classes = drawn(text)
        assert {name: c for name, c in classes.items() if c and c != {"external"}} == {
            f"ziti-trust-identity-{shell}": {"updated"},
            f"ziti-trust-identity-{billing}": {"created"},
            f"spire-entries-entry-{billing}": {"created"},
            f"ziti-trust-user-{user}": {"deleted"},
            "ziti-trust-spire-ca": {"replaced"},
        }
        billing_id = f"spiffe://{td}/diagram/{tag}/billing"
        assert ("ziti-trust-spire-ca", f"ziti-trust-identity-{billing}", billing_id) in trust
        assert "🟩 created: 2, 🟨 updated: 1, 🟧 replaced: 1, 🟥 deleted: 1." in text
        no_secret(text)
    finally:
        cli("destroy", "--yes", ok=False)
