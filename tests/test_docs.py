"""The README is a landing page and the docs hold together: the README stays short and shows the
quick start on its first screen, every relative link in README.md and docs/ reaches an existing
file (and heading, where it names one), every page in docs/ is linked from the README, and the
README's trust-chain picture is a diagram Mermaid's own parser accepts."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.harness.mock_engine import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 200
FIRST_SCREEN = 50  # lines a reader sees before scrolling

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
GENERATED = {(DOCS / "configuration.md").resolve(): "stack_config.docs"}  # page -> the module that writes it


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fence = [], ""
    for line in text.splitlines():
        m = FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = ""
            continue
        if m:
            fence = m.group(1)
            continue
        lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(path.read_text()):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def relative_links(path: Path) -> list[str]:
    """Every link and image target of `path` that is not a URL with a scheme."""
    targets = []
    for line in prose_lines(path.read_text()):
        for m in LINK.finditer(INLINE_CODE.sub("", line)):
            target = m.group(1)
            if not SCHEME.match(target):
                targets.append(target)
    return targets


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def broken(path: Path) -> list[str]:
    """One line per link of `path` whose file, or heading, does not exist."""
    problems = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path
        where = f"{_shown(path)}: ({target})"
        if dest in GENERATED and not dest.exists():
            continue  # one test below says the generated page is missing, not one per link to it
        if not dest.exists():
            problems.append(f"{where}: no file {_shown(dest)}")
        elif anchor and dest.suffix == ".md" and unquote(anchor).lower() not in anchors(dest):
            problems.append(f"{where}: no heading with the anchor #{anchor} in {_shown(dest)}")
    return problems


def test_the_readme_is_a_landing_page() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_the_first_screen_has_both_quick_start_commands_and_where_to_go_next() -> None:
    screen = "\n".join(README.read_text().splitlines()[:FIRST_SCREEN])
    assert "./scripts/up dev" in screen
    assert "scripts/servers configure local" in screen and "pulumi up --stack local" in screen
    for page in ("docs/first-prod-deploy.md", "docs/operations.md", "docs/troubleshooting.md"):
        assert f"]({page}" in screen, f"the README's first {FIRST_SCREEN} lines do not link {page}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_its_file_and_heading(path: Path) -> None:
    assert broken(path) == []


def test_the_generated_pages_the_docs_link_are_committed() -> None:
    for page, module in GENERATED.items():
        assert page.exists(), f"{_shown(page)} is linked from the docs but missing: run `python -m {module}`"


def test_every_page_in_docs_is_linked_from_the_readme() -> None:
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in relative_links(README)}
    missing = [str(p.relative_to(ROOT)) for p in sorted(DOCS.rglob("*.md")) if p.resolve() not in linked]
    assert missing == [], f"not linked from README.md: {missing}"


def test_the_link_checker_finds_broken_links(tmp_path: Path) -> None:
    """The checks above are not vacuous: a missing file, a missing heading, and links hidden in
    code (which must be ignored) are told apart."""
    (tmp_path / "other.md").write_text("# Other\n\n## Health: `ops status`\n\n## Twice\n\n## Twice\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#health-ops-status) [dup](other.md#twice-1) [self](#page) ![img](other.md)\n"
        "[gone](missing.md) [bad anchor](other.md#nope) [web](https://example.com/x.md)\n"
        "`[in code](nowhere.md)`\n```\n[in a fence](nowhere.md)\n```\n# Page\n"
    )
    assert relative_links(page) == [
        "other.md#health-ops-status",
        "other.md#twice-1",
        "#page",
        "other.md",
        "missing.md",
        "other.md#nope",
    ]
    assert anchors(tmp_path / "other.md") == {"other", "health-ops-status", "twice", "twice-1"}
    problems = broken(page)
    assert len(problems) == 2, problems
    assert "(missing.md): no file" in problems[0] and "no heading with the anchor #nope" in problems[1]
    assert slug("6. Teardown") == "6-teardown"
    assert slug("`ZitiTrust` (components/ziti_trust.py)") == "zititrust-componentsziti_trustpy"


def test_the_trust_chain_picture_parses_with_mermaids_own_parser(tmp_path: Path) -> None:
    from tests.ops.test_diagram import _npm_mermaid  # Mermaid's parser, pinned and cached

    block = re.search(r"```mermaid\n(.*?)```", README.read_text(), re.S)
    assert block, "README.md has no Mermaid diagram"
    (tmp_path / "chain.md").write_text(f"```mermaid\n{block.group(1)}```\n")
    home = _npm_mermaid()
    done = subprocess.run(
        ["node", str(home / "parse.mjs"), str(tmp_path / "chain.md")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0 and '"ok":true' in done.stdout, done.stdout + done.stderr
