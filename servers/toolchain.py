"""The ordinary clients that bring the pinned servers here: the Go toolchain (modules from the Go
module proxy, built from the tools modules in `servers/go/`), Maven (artifacts from Maven Central)
and apt (Debian's packages). Each failure names the server and the log of the command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from servers import cache
from servers.errors import ServerError

GO_MODULES = Path(__file__).resolve().parent / "go"


def run_logged(server: str, what: str, argv: Sequence[str], log: Path, *, cwd: Path | None = None,
               env: Mapping[str, str] | None = None, timeout: float = 3600) -> str:
    """Run an install step with its output appended to `log`; a failure names the server and the log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        try:
            done = subprocess.run(
                list(argv), cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                stderr=out, stdin=subprocess.DEVNULL, text=True, timeout=timeout, check=False,
            )
        except FileNotFoundError as e:
            raise ServerError(server, f"{what}: `{argv[0]}` is not installed", log) from e
        except subprocess.TimeoutExpired as e:
            raise ServerError(server, f"{what}: no result after {timeout:.0f} s", log) from e
        out.write(done.stdout)
    if done.returncode != 0:
        raise ServerError(server, f"{what} failed (exit {done.returncode})", log)
    return done.stdout


def built(server: str, bins: Path, names: Sequence[str]) -> Path:
    """`bins` after a build that reported success: each of `names` must be in it."""
    for name in names:
        if not (bins / name).is_file():
            raise ServerError(server, f"the build reported success but {bins / name} is missing")
    return bins


def go_version() -> str:
    go = shutil.which("go")
    if go is None:
        raise ServerError("go", "the Go toolchain is not installed (needed to build SPIRE and OpenZiti)")
    return subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()


def go_module_require(module_dir: Path, path: str) -> str:
    """The version `module_dir/go.mod` requires of module `path` (the pin test reads it)."""
    text = (module_dir / "go.mod").read_text()
    m = re.search(rf"^\s*(?:require\s+)?{re.escape(path)}\s+(v\S+)", text, re.MULTILINE)
    if m is None:
        raise ValueError(f"{module_dir / 'go.mod'} does not require {path}")
    return m.group(1)


def go_build_entry(server: str, version: str, module: str, packages: Sequence[str], ldflags: str = "",
                   binary: str | None = None) -> Path:
    """The cache entry `go_build` uses for these inputs (built or not); its binaries are in `bin/`."""
    src = GO_MODULES / module
    files = [(src / "go.mod").read_bytes(), (src / "go.sum").read_bytes()]
    named = (f"binary={binary}",) if binary else ()
    return cache.entry(server, version, cache.key(*files, *packages, ldflags, go_version(), *named))


def go_build(server: str, version: str, module: str, packages: Sequence[str], ldflags: str = "",
             binary: str | None = None) -> Path:
    """Build `packages` of the tools module `servers/go/<module>` into the cache; returns its bin dir.

    `binary` names the one package's executable where Go's own choice is wrong: a main package at
    a major-version path (`go.etcd.io/etcd/server/v3`) would be called `server`.

    The tools module (go.mod + go.sum, committed) pins every dependency and its checksum, so the
    build needs only the module proxy and never the checksum database. The cache key covers both
    files, the packages, the flags and the Go version: any change builds a new entry.
    """
    src = GO_MODULES / module
    if binary is not None and len(packages) != 1:
        raise ValueError("a binary name needs exactly one package")
    dest = go_build_entry(server, version, module, packages, ldflags, binary)
    with cache.building(dest) as must_build:
        if must_build:
            work = dest / "src"
            work.mkdir()
            shutil.copy2(src / "go.mod", work / "go.mod")
            shutil.copy2(src / "go.sum", work / "go.sum")
            (dest / "bin").mkdir()
            log = dest / "build.log"
            out = str(dest / "bin" / binary) if binary else str(dest / "bin") + "/"
            argv = ["go", "build", "-trimpath", "-o", out]
            if ldflags:
                argv += ["-ldflags", ldflags]
            run_logged(server, f"building {server} {version} ({' '.join(packages)})", [*argv, *packages], log,
                 cwd=work, env={"GOFLAGS": "-mod=readonly", "CGO_ENABLED": os.environ.get("CGO_ENABLED", "1")})
    return dest / "bin"


def maven_artifact(server: str, coordinates: str) -> Path:
    """Fetch `group:artifact:version:packaging` from Maven Central into ~/.m2; returns the file."""
    group, artifact, version, packaging = coordinates.split(":")
    m2 = Path(os.environ.get("MAVEN_REPO", Path.home() / ".m2" / "repository"))
    path = m2.joinpath(*group.split("."), artifact, version, f"{artifact}-{version}.{packaging}")
    if path.is_file():
        return path
    log = cache.cache_root() / "logs" / f"{server}-maven.log"
    run_logged(server, f"fetching {coordinates} from Maven Central",
         ["mvn", "-q", "-B", "dependency:get", f"-Dartifact={coordinates}", "-Dtransitive=false",
          f"-Dmaven.repo.local={m2}"], log, timeout=1800)
    if not path.is_file():
        raise ServerError(server, f"Maven reported success but {path} is missing", log)
    return path


def debian_package(server: str, package: str, version: str, probe: Path) -> None:
    """Make sure `package=version` is installed (apt-get when it is not); `probe` is a file it ships."""
    installed = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                               check=False).stdout.strip()
    if installed == version and probe.exists():
        return
    if os.geteuid() != 0:
        raise ServerError(server, f"{package}={version} is not installed (found {installed or 'none'}); "
                                  f"run as root or: sudo apt-get install {package}={version}")
    log = cache.cache_root() / "logs" / f"{server}-apt.log"
    if not _apt_has(package, version):
        run_logged(server, "apt-get update", ["apt-get", "update"], log)
    apt = ["apt-get", "install", "-y", "--no-install-recommends", "--allow-downgrades", f"{package}={version}"]
    noninteractive = {"DEBIAN_FRONTEND": "noninteractive"}
    run_logged(server, f"installing {package}={version} from Debian", apt, log, env=noninteractive)


def _apt_has(package: str, version: str) -> bool:
    out = subprocess.run(["apt-cache", "madison", package], capture_output=True, text=True, check=False).stdout
    return any(line.split("|")[1].strip() == version for line in out.splitlines() if line.count("|") >= 2)


def java_home(minimum: int) -> Path:
    """A JDK of at least `minimum` (JAVA_HOME first, then /usr/lib/jvm), for Keycloak."""
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates += sorted((p for p in jvm.iterdir() if p.is_dir() and not p.is_symlink()), reverse=True)
    for home in candidates:
        release = home / "release"
        if not (home / "bin" / "java").exists() or not release.is_file():
            continue
        m = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(), re.MULTILINE)
        if m and int(m.group(1)) >= minimum:
            return home
    raise ServerError("keycloak", f"needs Java {minimum} or newer; none found in JAVA_HOME or /usr/lib/jvm "
                                  f"(install a JDK {minimum}+ and set JAVA_HOME)")
