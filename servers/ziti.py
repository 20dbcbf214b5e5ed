"""OpenZiti controller and edge router from the pinned `ziti` binary (Go module
`github.com/openziti/ziti`, built from the tools module `servers/go/ziti`).

The controller starts the way the `ziti-controller` image starts it under `ZitiStack`: the stack's
own wrapper (`CONTROLLER_WRAPPER`: Pulumi-style PKI root copied into `pki/root/`, admin password
read from a secret file) runs the image's own `entrypoint.bash` + `bootstrap.bash` (shipped in the
same module version under `dist/dist-packages/linux/openziti-controller/`), driven by the image's
`ENV` defaults (read from the same version's Dockerfile) and the `ZITI_*` environment ZitiStack
renders, remapped to the run directory and free loopback ports. The PKI root is made with
`cryptography` exactly as pulumi-tls makes the stack's (P-384, CA, cert/CRL signing, URI SAN
`spiffe://<ziti.clusterTrustDomain>`).

The router is created through the management API, enrolled with the real `ziti router enroll`
by the router image's own bootstrap (driven by the environment `ZitiRouter` renders and the
stack's `ROUTER_WRAPPER`), then run.
"""

from __future__ import annotations

import datetime
import re
import secrets
import shutil
import ssl
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from servers import cache, toolchain
from servers.errors import ServerError
from servers.process import Proc, Run, stop_procs
from stack_config import versions

MODULE = "github.com/openziti/ziti"
VERSION_PKG = f"{MODULE}/common/version"
# The release's commit and tag time, from the module proxy's `@v/<version>.info` (Origin.Hash, Time):
# upstream's release build (`ziti-ci go-build-flags`) stamps these into common/version.
RELEASES: dict[str, tuple[str, str]] = {
    "1.7.2": ("cee000e661ef0db223e0f2d1d547a02331bcf1b7", "2025-11-21T17:45:24Z"),
}
READY_SECONDS = 90
API = "/edge/management/v1"


def ldflags(version: str = versions.ZITI) -> str:
    if version not in RELEASES:
        raise ServerError("ziti", f"no release commit recorded for {version} in servers/ziti.py RELEASES")
    revision, date = RELEASES[version]
    return (
        f"-X {VERSION_PKG}.Version=v{version} -X {VERSION_PKG}.Revision={revision} "
        f"-X {VERSION_PKG}.BuildDate={date}"
    )


def bin_dir() -> Path:
    return toolchain.go_build("ziti", versions.ZITI, "ziti", [f"{MODULE}/ziti"], ldflags())


def module_dir() -> Path:
    """The pinned module's source in the Go module cache (the images' scripts live there)."""
    gomodcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    path = Path(gomodcache) / f"{MODULE}@v{versions.ZITI}"
    if not path.is_dir():
        log = cache.cache_root() / "logs" / "ziti-mod-download.log"
        toolchain.run_logged("ziti", f"downloading {MODULE}@v{versions.ZITI}",
                       ["go", "mod", "download", f"{MODULE}@v{versions.ZITI}"],
                       log, cwd=toolchain.GO_MODULES / "ziti", env={"GOFLAGS": "-mod=readonly"})
    return path


def installed_bin_dir() -> Path:
    """Where `install` puts the binary (without building it)."""
    return toolchain.go_build_entry("ziti", versions.ZITI, "ziti", [f"{MODULE}/ziti"], ldflags()) / "bin"


def image_scripts(component: str) -> Path:
    """`dist/dist-packages/linux/openziti-<component>/` of the pinned module: the images' scripts."""
    path = module_dir() / "dist" / "dist-packages" / "linux" / f"openziti-{component}"
    if not (path / "entrypoint.bash").is_file():
        raise ServerError("ziti", f"{path}/entrypoint.bash is missing from the module")
    return path


def image_root(run: Run, component: str) -> Path:
    """The image's `/entrypoint.bash` and `/bootstrap.bash` (Dockerfile COPY), executable, in the run
    directory (the module cache keeps them read-only and without the execute bit)."""
    dest = run.dir("ziti", f"image-{component}")
    for f in ("entrypoint.bash", "bootstrap.bash"):
        shutil.copyfile(image_scripts(component) / f, dest / f)
        (dest / f).chmod(0o755)
    return dest


def image_env(component: str) -> dict[str, str]:
    """The `ENV` defaults of `docker.io/openziti/ziti-<component>`, from the same version's Dockerfile."""
    dockerfile = module_dir() / "dist" / "docker-images" / f"ziti-{component}" / "Dockerfile"
    env: dict[str, str] = {}
    for m in re.finditer(r"^ENV\s+(\w+)=(\S*)\s*$", dockerfile.read_text(), re.MULTILINE):
        env[m.group(1)] = m.group(2).strip('"')
    return env


def localize(script: str, replacements: Mapping[str, str]) -> str:
    """A stack script with its container paths replaced by local ones; each must occur."""
    for old, new in replacements.items():
        if old not in script:
            raise ServerError("ziti", f"the stack's script no longer contains {old!r}; update servers/ziti.py")
        script = script.replace(old, new)
    return script


def pulumi_style_root(common_name: str, trust_domain: str, validity_hours: int) -> tuple[str, str]:
    """A root CA as `components.docker_helpers.self_signed_ca` makes it with pulumi-tls (P-384,
    CA, cert/CRL signing + digital signature, subject key id, URI SAN): (cert PEM, key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from stack_config import PROJECT

    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([
        x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, PROJECT),
    ])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(hours=validity_hours))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def api(url: str, method: str, path: str, ca_pem: str, *, token: str | None = None, body: Any = None,
        timeout: float = 10) -> tuple[int, dict[str, Any]]:
    """One management API call (status, JSON body), verified against `ca_pem`."""
    import httpx

    headers = {"Accept": "application/json", **({"zt-session": token} if token else {})}
    ctx = ssl.create_default_context(cadata=ca_pem)
    resp = httpx.request(method, f"{url}{API}{path}", json=body, headers=headers, verify=ctx, timeout=timeout)
    return resp.status_code, (resp.json() if resp.content.strip() else {})


def login(url: str, ca_pem: str, user: str, password: str) -> str:
    status, body = api(url, "POST", "/authenticate?method=password", ca_pem,
                                body={"username": user, "password": password})
    if status != 200:
        raise ServerError("ziti", f"admin login answered {status}: {body.get('error', {}).get('code')}")
    return str(body["data"]["token"])


class Controller:
    """One controller home started through the stack's wrapper and the image's entrypoint."""

    def __init__(self, run: Run, name: str = "controller", *, home: Path | None = None,
                 port: int | None = None) -> None:
        from components import docker_helpers, ziti_stack

        self.run, self.name = run, name
        self.bin = bin_dir()
        self.home = home or run.dir("ziti", name, "home")
        self.secrets = run.dir("ziti", name, "secrets")
        self.port = port or run.port("ziti")
        self.url = f"https://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(24)
        self.user = dev_settings().admin_user
        self.proc: Proc | None = None
        scripts = image_root(run, "controller")
        self.script = localize(ziti_stack.CONTROLLER_WRAPPER, {
            docker_helpers.SECRETS_DIR: str(self.secrets),
            ziti_stack.CONTROLLER_HOME: str(self.home),
            "/entrypoint.bash": str(scripts / "entrypoint.bash"),
        })
        console = run.dir("ziti", name, "console")
        (console / "index.html").write_text("<!-- the console's assets are not part of the Go module -->\n")
        stack_env = ziti_stack.controller_env(dev_settings())
        self.env = {
            **image_env("controller"),
            **stack_env,
            # remapped: the image's paths, ports and names to this run's
            "ZITI_CTRL_BOOTSTRAP_BASH": str(scripts / "bootstrap.bash"),
            "ZITI_CONSOLE_LOCATION": str(console),
            "ZITI_HOME": str(self.home),
            "ZITI_CTRL_ADVERTISED_ADDRESS": "localhost",
            "ZITI_CTRL_ADVERTISED_PORT": str(self.port),
            # added: listen on loopback only (the image listens on all interfaces)
            "ZITI_CTRL_BIND_ADDRESS": "127.0.0.1",
            "ZITI_CTRL_EDGE_BIND_ADDRESS": "127.0.0.1",
            "ZITI_CONFIG_DIR": str(run.dir("ziti", name, "cli")),
            "PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin",
        }
        self.stack_env = stack_env

    def place_secrets(self) -> str:
        """The Swarm secrets the wrapper reads: admin password and the Pulumi-style PKI root."""
        from components import ziti_stack

        zt = dev_settings()
        cert, key = pulumi_style_root(f"{zt.cluster_trust_domain} controller root CA", zt.cluster_trust_domain,
                                      validity_hours=24 * 30)
        for fname, content in ((ziti_stack.ADMIN_PASSWORD_FILE, self.password),
                               (ziti_stack.PKI_ROOT_CERT_FILE, cert), (ziti_stack.PKI_ROOT_KEY_FILE, key)):
            (self.secrets / fname).write_text(content)
            (self.secrets / fname).chmod(0o400)
        return cert

    @property
    def ca_pem(self) -> str:
        return (self.home / "pki" / "root" / "certs" / "root.cert").read_text()

    @property
    def config(self) -> Path:
        return self.home / "config.yml"

    def start(self, timeout: float = READY_SECONDS) -> Proc:
        """`bash -c WRAPPER entrypoint run config.yml`, as the service runs it; waits until the admin logs in."""
        argv = ["/bin/bash", "-c", self.script, "entrypoint", "run", "config.yml"]
        self.proc = self.run.spawn("ziti", self.name, argv, env=self.env, cwd=self.home)

        def ready() -> bool:
            status, _ = api(self.url, "GET", "/version", self.ca_pem, timeout=2)
            return status == 200 and bool(login(self.url, self.ca_pem, self.user, self.password))

        self.run.wait_ready(self.proc, ready, timeout=timeout, what=f"management API on {self.url} with admin login")
        return self.proc

    def stop(self) -> None:
        if self.proc is not None:
            stop_procs([self.proc])
            self.run.procs.remove(self.proc)
            self.run.save()
            self.proc = None

    def token(self) -> str:
        return login(self.url, self.ca_pem, self.user, self.password)

    def set_session_timeout(self, value: str) -> None:
        """Shorten `edge.api.sessionTimeout` in the bootstrapped config (takes effect on the next start;
        the controller takes at least 1m)."""
        text, n = re.subn(r"(?m)^(\s*sessionTimeout:\s*)\S+", rf"\g<1>{value}", self.config.read_text())
        if n != 1:
            raise ServerError("ziti", f"{self.config} has {n} sessionTimeout lines, expected 1")
        self.config.write_text(text)


class Router:
    """An edge router: created through the management API, enrolled by the router image's bootstrap
    (the real `ziti router enroll`) through the stack's wrapper, then run."""

    def __init__(self, run: Run, ctrl: Controller, name: str = "router", *, router_name: str | None = None,
                 tunneler: bool = False) -> None:
        from components import docker_helpers, ziti_router

        self.run, self.ctrl, self.name = run, ctrl, name
        zt = dev_settings()
        self.router_name = router_name or zt.router_name
        self.tunneler = tunneler
        self.home = run.dir("ziti", name, "home")
        self.secrets = run.dir("ziti", name, "secrets")
        self.port = run.port("ziti")
        self.jwt_file = self.secrets / ziti_router.ENROLLMENT_JWT_FILE
        scripts = image_root(run, "router")
        self.script = localize(ziti_router.ROUTER_WRAPPER, {
            docker_helpers.SECRETS_DIR: str(self.secrets),
            f'home="{ziti_router.ROUTER_HOME}"': f'home="{self.home}"',
            "/entrypoint.bash": str(scripts / "entrypoint.bash"),
        })
        stack_env = ziti_router.router_env(zt)
        self.stack_env = stack_env
        self.env = {
            **image_env("router"),
            **stack_env,
            "ZITI_ROUTER_BOOTSTRAP_BASH": str(scripts / "bootstrap.bash"),
            "ZITI_ENROLL_TOKEN": str(self.jwt_file),
            "ZITI_HOME": str(self.home),
            "ZITI_CTRL_ADVERTISED_ADDRESS": "localhost",
            "ZITI_CTRL_ADVERTISED_PORT": str(ctrl.port),
            "ZITI_ROUTER_ADVERTISED_ADDRESS": "localhost",
            "ZITI_ROUTER_PORT": str(self.port),
            "ZITI_ROUTER_LISTENER_BIND_PORT": str(self.port),
            "ZITI_ROUTER_BIND_ADDRESS": "127.0.0.1",
            "ZITI_CONFIG_DIR": str(run.dir("ziti", name, "cli")),
            "PATH": f"{ctrl.bin}:/usr/local/bin:/usr/bin:/bin",
        }
        self.id: str | None = None
        self.proc: Proc | None = None

    def create(self) -> str:
        """POST /edge-routers as ZitiTrust declares it; writes its enrollment JWT where the wrapper reads it."""
        token = self.ctrl.token()
        status, body = api(self.ctrl.url, "POST", "/edge-routers", self.ctrl.ca_pem, token=token,
                              body={"name": self.router_name, "roleAttributes": ["public"],
                                    "isTunnelerEnabled": self.tunneler})
        if status != 201:
            raise ServerError("ziti", f"creating edge router {self.router_name} answered {status}: {body}")
        self.id = str(body["data"]["id"])
        _, detail = api(self.ctrl.url, "GET", f"/edge-routers/{self.id}", self.ctrl.ca_pem, token=token)
        self.jwt_file.write_text(detail["data"]["enrollmentJwt"])
        self.jwt_file.chmod(0o400)
        return self.id

    def online(self) -> bool:
        _, detail = api(self.ctrl.url, "GET", f"/edge-routers/{self.id}", self.ctrl.ca_pem, token=self.ctrl.token())
        return bool(detail["data"].get("isOnline"))

    def start(self, timeout: float = READY_SECONDS) -> Proc:
        argv = ["/bin/bash", "-c", self.script, "entrypoint", "run", "config.yml"]
        self.proc = self.run.spawn("ziti", self.name, argv, env=self.env, cwd=self.home)
        self.run.wait_ready(self.proc, self.online, timeout=timeout,
                            what=f"edge router {self.router_name} online at the controller")
        return self.proc


def dev_settings() -> Any:
    """The dev stack's `ziti` settings (what `Pulumi.dev.yaml` deploys)."""
    import stack_config

    return stack_config.parse({"environment": "dev"}).ziti


class Ziti:
    name: ClassVar[str] = "ziti"
    version: ClassVar[str] = versions.ZITI
    requires: ClassVar[tuple[str, ...]] = ()

    def install(self) -> None:
        bin_dir()
        image_scripts("controller")
        image_scripts("router")

    def path_entries(self) -> list[Path]:
        return [installed_bin_dir()]

    def reported_version(self) -> str:
        ziti = installed_bin_dir() / "ziti"
        try:
            out = subprocess.run([str(ziti), "version"], capture_output=True, text=True, check=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError) as e:
            raise ServerError(self.name, f"{ziti} does not run: {e}") from e
        m = re.search(r"v?(\d+\.\d+\.\d+)", out)
        return m.group(1) if m else out.strip()

    def start(self, run: Run, deps: dict[str, dict[str, Any]]) -> dict[str, Any]:
        t0 = time.monotonic()
        ctrl = Controller(run)
        ctrl.place_secrets()
        cproc = ctrl.start()
        router = Router(run, ctrl)
        router.create()
        rproc = router.start()
        return {
            "url": ctrl.url,
            "management_url": f"{ctrl.url}{API}",
            "admin_user": ctrl.user,
            "admin_password": ctrl.password,
            "ca_pem": ctrl.ca_pem,
            "home": str(ctrl.home),
            "config": str(ctrl.config),
            "bin_dir": str(ctrl.bin),
            "pid": cproc.pid,
            "log": cproc.log,
            "router": {
                "name": router.router_name,
                "id": router.id,
                "address": f"tls:localhost:{router.port}",
                "home": str(router.home),
                "pid": rproc.pid,
                "log": rproc.log,
            },
            "started_in_seconds": round(time.monotonic() - t0, 1),
        }


SERVER = Ziti()
