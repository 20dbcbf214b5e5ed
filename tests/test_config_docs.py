"""docs/configuration.md is generated from the config models: it must be current, so the models'
field descriptions are the one place keys are described."""

from __future__ import annotations

from stack_config import docs


def test_the_committed_configuration_page_is_current() -> None:
    assert docs.DOC.read_text() == docs.render(), "run `python -m stack_config.docs` and commit docs/configuration.md"


def test_the_check_command_agrees() -> None:
    assert docs.main(["--check"]) == 0


def test_every_secret_key_is_listed() -> None:
    text = docs.render()
    for key in ("keycloakAdminPassword", "zitiAdminPassword", "rootCaKey"):
        assert f"| `{key}` |" in text


def test_nested_keys_are_listed_with_their_path() -> None:
    text = docs.render()
    keys = ("spire.transport.socketPath", "workloads.<name>.spiffePath", "users.<name>.email", "rootCa.certificate")
    for key in keys:
        assert f"| `{key}` |" in text, key


def test_every_key_has_a_description() -> None:
    assert docs.undocumented() == []
