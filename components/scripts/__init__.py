"""The scripts the stacks run inside their containers, kept as files so that shellcheck (the shell
ones, `tests/test_scripts.py`) and ruff and mypy (the Python one) read them like any other code.

Components load a script's text with `script(name)` and pass it to the container as a command
(`sh -c TEXT`, `bash -c TEXT`, `python3 -c TEXT`) or ship it as a Swarm config; Swarm config
names are content hashes, so an unchanged file keeps its config. Container paths inside a script
are literal; the tests check that they match the mounts the component declares.
"""

from __future__ import annotations

from importlib import resources


def script(name: str) -> str:
    """The text of `components/scripts/<name>`."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def names() -> list[str]:
    """Every script file (not this module), sorted."""
    return sorted(
        p.name for p in resources.files(__name__).iterdir() if p.is_file() and not p.name.startswith("__")
    )
