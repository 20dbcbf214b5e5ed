"""Mutation testing of the code that decides behaviour: how many deliberate bugs do the tests catch?

mutmut (pinned in requirements-dev.txt) changes the providers' check / diff / ownership logic, their
models and the stack configuration's validators one small edit at a time (`==` to `!=`, `and` to
`or`, a constant to another, a call's argument to None, ...), and runs, for each such mutant, only
the tests that call the mutated function (it learns which from one traced run of the suite), stopping
at the first failure. A mutant the tests fail on is killed; one they pass on survived: a bug no test
would notice. What is mutated and which tests run: bench/mutation.toml.

The run happens in a scratch copy (the working tree, or `--rev`), never in the checkout, and is cut
at `--minutes` (mutants not reached are reported as such). Printed: per file the mutants and their
fate, the kill rate next to the floor, and every survivor with the line it changed.

Usage:
    .venv/bin/python bench/mutation.py [--scope full|decisions] [--minutes 60] [--rev HEAD]
                                       [--only GLOB] [--max-children N] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import tokenize
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = Path(__file__).with_name("mutation.toml")
KILLED = ("killed", "timeout", "caught by type check")
NOT_RUN = ("not checked", "skipped", "check was interrupted by user")
SURVIVED = ("survived", "suspicious", "segfault")
COLUMNS = ("killed", "survived", "no tests", "timeout", "suspicious", "not checked")


def _mutmut() -> Path:
    exe = Path(sys.executable).with_name("mutmut")
    if not exe.exists():
        sys.exit("mutmut is not installed in this interpreter: .venv/bin/pip install -r requirements-dev.txt")
    return exe


def _snapshot(workdir: Path, rev: str | None, only: str | None = None) -> None:
    """The project's files into `workdir`: the tree of `rev`, or the working tree (tracked and
    untracked files git does not ignore); with `only`, just that folder (the sources stay as they
    are, so mutmut keeps its mutants and verdicts)."""
    if only:
        with tempfile.TemporaryDirectory() as tmp:
            _snapshot(Path(tmp), rev)
            shutil.copytree(Path(tmp) / only, workdir / only, dirs_exist_ok=True)
        return
    if rev:
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(workdir)], input=archive, check=True)
        return
    listed = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            dst = workdir / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


PREFLIGHT_PLUGIN = """
import json, os

_failed = set()
_broken = set()


def pytest_runtest_logreport(report):
    if report.failed:
        _failed.add(report.nodeid)


def pytest_collectreport(report):
    if report.failed:
        _broken.add(report.nodeid)


def pytest_sessionfinish(session):
    with open(os.environ["MUTATION_PREFLIGHT_OUT"], "w") as f:
        json.dump({"failed": sorted(_failed), "broken": sorted(_broken)}, f)
"""


def _preflight(workdir: Path, tests: list[str], pytest_args: list[str]) -> list[str]:
    """Run the selected tests once, unmutated. mutmut stops at the first failing test, so tests that
    fail without any mutation (a tree in the middle of a change) are left out: returns the pytest
    arguments that leave them out."""
    (workdir / "_mutation_preflight.py").write_text(PREFLIGHT_PLUGIN)
    out = workdir / "preflight.json"
    env = {**os.environ, "MUTATION_PREFLIGHT_OUT": str(out), "PYTHONPATH": str(workdir)}
    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "_mutation_preflight", *pytest_args, *tests],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    found = json.loads(out.read_text()) if out.exists() else {"failed": [], "broken": []}
    (workdir / "_mutation_preflight.py").unlink()
    left_out = [*found["broken"], *found["failed"]]
    print(f"preflight: the selected tests unmutated in {(time.monotonic() - start) / 60:.1f} min", end="")
    print(f"; {len(left_out)} fail without any mutation and are left out:" if left_out else "; all pass")
    for nodeid in left_out:
        print(f"    {nodeid}")
    return [f"--ignore={n}" for n in found["broken"]] + [f"--deselect={n}" for n in found["failed"]]


def _leave_out_functions(workdir: Path, globs: list[str], names: set[str]) -> None:
    """Mark the functions called `names` in the scratch copy's files matching `globs` with mutmut's
    `# pragma: no mutate block`, which mutmut honours on the line that ends a `def` header."""
    for pattern in globs:
        for path in workdir.glob(pattern):
            source = path.read_text()
            lines = source.splitlines(keepends=True)
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in names:
                    end = _header_end(source, node)
                    lines[end - 1] = lines[end - 1].rstrip("\n") + "  # pragma: no mutate block\n"
            path.write_text("".join(lines))


def _header_end(source: str, node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """The line of the `:` that ends the `def` header of `node`."""
    lines = source.splitlines(keepends=True)
    text = "".join(lines[node.lineno - 1 :])
    depth = 0
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif tok.type == tokenize.OP and tok.string == ":" and depth == 0:
            return node.lineno + tok.start[0] - 1
    raise ValueError(f"no header end for {node.name} at line {node.lineno}")


def _setup_cfg(
    workdir: Path,
    conf: dict[str, Any],
    scope: str,
    only: list[str] | None,
    tests: list[str] | None,
    preflight: bool,
    sources_ready: bool = False,
) -> list[str]:
    """mutmut reads its settings from setup.cfg in the directory it runs in; returns the test paths."""
    if "mutmut" in tomllib.loads((workdir / "pyproject.toml").read_text()).get("tool", {}):
        sys.exit("pyproject.toml has a [tool.mutmut] table, which would override bench/mutation.toml")
    mutate = conf["mutate"]
    sources = mutate["source_paths"]
    only = only or (mutate["decisions"] if scope == "decisions" else mutate["only_mutate"])
    # mutmut skips every statement that starts on a matching line: a `def` line skips the function.
    tests = [t for t in tests or conf["tests"]["paths"] if (workdir / t).exists()]
    if scope == "decisions" and not sources_ready:
        _leave_out_functions(workdir, only, set(mutate["engine_time"]))
    pytest_args = list(conf["tests"]["pytest_args"])
    if preflight:
        pytest_args += _preflight(workdir, tests, pytest_args)
    # Everything else the tests import or read (components, policy, stack files, schema, ...).
    also = sorted(p.name for p in workdir.iterdir() if p.name not in {*sources, "mutants", ".git", "setup.cfg"})
    lines = ["[mutmut]"]
    for key, values in (
        ("source_paths", sources),
        ("only_mutate", only),
        ("do_not_mutate", mutate["do_not_mutate"]),
        ("also_copy", also),
        ("pytest_add_cli_args", pytest_args),
        ("pytest_add_cli_args_test_selection", tests),
    ):
        if values:  # an empty value would read as [""], and the pattern "" matches every line
            lines.append(f"{key} =" + "".join(f"\n    {v}" for v in values))
    (workdir / "setup.cfg").write_text("\n".join(lines) + "\n")
    return tests


def _results(workdir: Path) -> dict[str, dict[str, str]]:
    """{source file: {mutant name: status}} from mutmut's per-file meta files."""
    from mutmut.stats import status_by_exit_code

    out: dict[str, dict[str, str]] = {}
    for meta in sorted((workdir / "mutants").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        source = str(meta.relative_to(workdir / "mutants"))[: -len(".meta")]
        out[source] = {k: status_by_exit_code[v] for k, v in data["exit_code_by_key"].items()}
    return out


def _diffs(workdir: Path, names: list[str]) -> dict[str, str]:
    """The changed line of each mutant ("- old" / "+ new"), from mutmut's own diff."""
    if not names:
        return {}
    script = textwrap.dedent(
        """
        import json, sys
        from mutmut.mutation.diff_apply import get_diff_for_mutant
        out = {}
        for name in json.load(sys.stdin):
            try:
                out[name] = get_diff_for_mutant(name)
            except Exception as e:  # noqa: BLE001 (a missing diff must not hide the others)
                out[name] = f"(no diff: {e})"
        print(json.dumps(out))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=workdir, input=json.dumps(names), capture_output=True, text=True
    )
    if done.returncode != 0:
        return {n: "(no diff)" for n in names}
    diffs: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return {n: _changed_lines(d) for n, d in diffs.items()}


def _changed_lines(diff: str) -> str:
    lines = [ln for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    return "  |  ".join(" ".join(ln.split()) for ln in lines)[:400]


def _run_mutmut(workdir: Path, max_children: int, deadline: float, log: Path, names: list[str]) -> bool:
    """Run `mutmut run`; stop it at `deadline` (time.monotonic()). Finished?

    mutmut saves each verdict as it comes, so stopping it (SIGTERM to its process group, which its
    workers pass on to the tests they run, then SIGKILL) loses only the mutants in flight."""
    start = time.monotonic()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(_mutmut()), "run", "--max-children", str(max_children), *names],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        last_report = start
        while proc.poll() is None:
            now = time.monotonic()
            if now >= deadline:
                for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 20)):
                    try:
                        os.killpg(proc.pid, sig)
                        proc.wait(timeout=wait)
                        break
                    except (ProcessLookupError, subprocess.TimeoutExpired):
                        continue
                return False
            if now - last_report >= 120:
                last_report = now
                _progress(workdir, now - start)
            time.sleep(2)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        sys.exit(f"mutmut failed (exit {proc.returncode}); the end of {log}:\n{tail}")
    return True


def _progress(workdir: Path, elapsed: float) -> None:
    if not (workdir / "mutants").exists():
        print(f"  {elapsed / 60:5.1f} min: preparing (mutants, traced test run)", flush=True)
        return
    try:
        counts = Counter(s for m in _results(workdir).values() for s in m.values())
    except (OSError, ValueError):
        return
    total = sum(counts.values())
    print(f"  {elapsed / 60:5.1f} min: {total - counts['not checked']}/{total} mutants checked", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scope", choices=("full", "decisions"), default="full")
    parser.add_argument("--minutes", type=float, default=60.0, help="budget of the whole run (default 60)")
    parser.add_argument("--only", action="append", help="mutate only files matching this glob (repeatable)")
    parser.add_argument("--tests", action="append", help="run only these test paths (repeatable)")
    parser.add_argument("--rev", help="mutate this git revision instead of the working tree")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--workdir", type=Path, help="scratch directory (reused: mutmut keeps earlier verdicts)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (`mutmut browse` there)")
    parser.add_argument("--no-preflight", action="store_true", help="skip the unmutated run that finds failing tests")
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="with --workdir of an earlier run: take the tests anew (sources stay), run again only the "
        "survivors and unchecked mutants (after adding tests; mutmut traces the new tests first)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()

    started = time.monotonic()
    conf = tomllib.loads(CONFIG.read_text())
    floor = float(conf["report"]["floor"])
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mutation-"))
    workdir.mkdir(parents=True, exist_ok=True)
    recheck = args.recheck and (workdir / "mutants").exists()
    _snapshot(workdir, args.rev, only="tests" if recheck else None)
    from importlib.metadata import version

    scope = " ".join(args.only) if args.only else args.scope
    print(f"== mutation testing (mutmut {version('mutmut')}, {args.max_children} workers, scope {scope}) ==")
    print(f"source: {args.rev or 'working tree'}; scratch copy {workdir}", flush=True)
    tests = _setup_cfg(
        workdir, conf, args.scope, args.only, args.tests, preflight=not args.no_preflight, sources_ready=recheck
    )
    print(f"tests: {' '.join(tests)}", flush=True)
    names: list[str] = []
    if args.recheck:
        before = _results(workdir) if (workdir / "mutants").exists() else {}
        names = [n for m in before.values() for n, st in m.items() if st in (*SURVIVED, "not checked")]
        print(f"recheck: {len(names)} survivors and unchecked mutants of the earlier run in {workdir}", flush=True)
    if not args.recheck or names:
        finished = _run_mutmut(workdir, args.max_children, started + args.minutes * 60, workdir / "mutmut.log", names)
    else:
        finished = True
    seconds = time.monotonic() - started

    results = _results(workdir)
    totals: Counter[str] = Counter()
    print(f"\n{'file':<44} {'mutants':>7}" + "".join(f" {c:>11}" for c in COLUMNS))
    for source, statuses in results.items():
        counts = Counter(statuses.values())
        totals.update(counts)
        print(f"{source:<44} {len(statuses):>7}" + "".join(f" {counts[c]:>11}" for c in COLUMNS))
    print(f"{'total':<44} {sum(totals.values()):>7}" + "".join(f" {totals[c]:>11}" for c in COLUMNS))

    killed = sum(totals[s] for s in KILLED)
    reached = sum(n for s, n in totals.items() if s not in (*NOT_RUN, "no tests"))
    rate = 100.0 * killed / reached if reached else 0.0
    verdict = "meets the floor" if rate >= floor else "BELOW the floor"
    print(
        f"\nkill rate {rate:.1f} % ({killed} of the {reached} mutants the tests reach)   floor {floor:.0f} %: {verdict}"
    )
    strict = 100.0 * killed / (reached + totals["no tests"]) if reached + totals["no tests"] else 0.0
    print(f"counting the {totals['no tests']} mutants no selected test reaches as survivors: {strict:.1f} %")
    print(f"wall time {seconds / 60:.1f} min" + ("" if finished else f", cut at --minutes {args.minutes:g}: partial"))

    survivors = [(name, st) for m in results.values() for name, st in m.items() if st in SURVIVED]
    diffs = _diffs(workdir, [name for name, _ in survivors])
    print(f"\nsurvivors ({len(survivors)}):")
    for name, status in survivors:
        print(f"  {name}  [{status}]\n      {diffs.get(name, '')}")
    unreached = Counter(
        name.partition("__mutmut_")[0] for m in results.values() for name, st in m.items() if st == "no tests"
    )
    print(f"\nfunctions no selected test calls in-process ({len(unreached)}; mutants each):")
    for function, n in sorted(unreached.items()):
        print(f"  {function}  {n}")

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rate": rate,
                    "floor": floor,
                    "finished": finished,
                    "minutes": seconds / 60,
                    "totals": dict(totals),
                    "results": results,
                    "strict_rate": strict,
                    "survivors": {n: diffs.get(n, "") for n, _ in survivors},
                    "unreached": dict(unreached),
                },
                indent=1,
            )
        )
    if args.keep or args.workdir:
        print(f"\nscratch copy kept: {workdir} (`cd {workdir} && {_mutmut()} browse`)")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
