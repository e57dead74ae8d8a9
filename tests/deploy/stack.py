"""The compose stack's product services run as processes of this machine.

``Stack`` computes a service's environment with the compose reader, then
maps what only exists inside the compose network onto this machine, and
nothing else: the ``postgres`` and ``redis`` hosts become a fresh test
database and a private Redis prefix, named volumes and the image's own
directories become temporary directories, and the published port
``8000`` becomes a free one (``WEB_BIND``, read by deploy/gunicorn.conf.py).
Commands come from the compose ``command:`` lists (``Compose.host_command``).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import requests
from cryptography.fernet import Fernet

from tests.deploy.compose import Compose, ComposeError
from tests.net import free_port
from tests.services import PG_ADMIN_URL, REDIS_TEST_URL

BASE = Path(__file__).resolve().parent.parent.parent
# The services built from this project's image.
APP_SERVICES = ("migrate", "web", "worker")
# Where the product reads its variables (settings, commands, gunicorn config).
PRODUCT_CODE = [
    BASE / name for name in ("core", "datadog_web", "ops", "pipelines", "connectors", "accounts")
] + [BASE / "deploy" / "gunicorn.conf.py", BASE / "manage.py"]
# The variables of the host that a container gets from its image instead.
HOST_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")

ADMIN_PASSWORD = "compose-admin-" + secrets.token_urlsafe(8)


def env_from_example(folder: Path, **overrides: str) -> Path:
    """``cp .env.example .env``, the secrets the README says to set and ``overrides``
    (replacing a line of .env.example, or added); returns the .env path."""
    to_set = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FERNET_KEYS": Fernet.generate_key().decode(),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
        "GRAFANA_ADMIN_PASSWORD": secrets.token_urlsafe(16),
        "DATADOG_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    real = {**to_set, **overrides}
    lines = []
    for line in (BASE / ".env.example").read_text().splitlines():
        name = line.partition("=")[0]
        if name in real:
            line = f"{name}={real.pop(name)}"
        lines.append(line)
    assert not set(real) & set(to_set), f".env.example no longer has {sorted(real)}"
    lines.extend(f"{name}={value}" for name, value in real.items())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".env"
    path.write_text("\n".join(lines) + "\n")
    return path


class Stack:
    """migrate, web and worker of docker-compose.yml on one fresh database."""

    def __init__(self, folder: Path, env_file: Path, database: str, redis_prefix: str) -> None:
        self.folder = folder
        self.compose = Compose(BASE / "docker-compose.yml", env_file)
        self.database = database
        self.redis_prefix = redis_prefix
        self.port = free_port()
        self.volumes = {"data": folder / "volume-data"}
        self.volumes["data"].mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    @property
    def url(self) -> str:
        """The README's http://localhost:8000, on the port this test published."""
        return f"http://localhost:{self.port}"

    def _database_url(self, compose_url: str) -> str:
        """The compose DATABASE_URL, checked against the postgres service, on the test server."""
        url = urlparse(compose_url)
        postgres = self.compose.service("postgres").environment()
        if (url.hostname, url.port or 5432) != ("postgres", 5432):
            raise ComposeError(f"DATABASE_URL does not name the postgres service: {url.hostname}")
        expected = (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])
        if (url.username, url.password) != expected:
            raise ComposeError("DATABASE_URL's user/password differ from the postgres service's")
        if url.path.lstrip("/") != postgres["POSTGRES_DB"]:
            raise ComposeError("DATABASE_URL's database differs from POSTGRES_DB")
        admin = urlparse(PG_ADMIN_URL)
        # Trust authentication here: the password is kept, the user is the admin's.
        netloc = f"{admin.username}:{url.password}@{admin.hostname}:{admin.port or 5432}"
        return url._replace(netloc=netloc, path=f"/{self.database}").geturl()

    def _redis_url(self, compose_url: str) -> str:
        url = urlparse(compose_url)
        if url.hostname != "redis":
            raise ComposeError(f"REDIS_URL does not name the redis service: {url.hostname}")
        here = urlparse(REDIS_TEST_URL)
        return url._replace(netloc=f"{here.hostname}:{here.port or 6379}").geturl()

    def environment(self, name: str) -> dict[str, str]:
        service = self.compose.service(name)
        image = self.compose.image
        assert image is not None
        env = {**image.env, **service.environment()}
        env["DATABASE_URL"] = self._database_url(env["DATABASE_URL"])
        env["REDIS_URL"] = self._redis_url(env["REDIS_URL"])
        env["REDIS_PREFIX"] = self.redis_prefix
        env["DATA_ROOT"] = str(self.compose.host_path(service, env["DATA_ROOT"], self.volumes))
        # Directories of the image itself, private to each container.
        env["DATADOG_VAR_DIR"] = str(self.folder / f"var-{name}")
        env["PROMETHEUS_MULTIPROC_DIR"] = str(self.folder / f"prometheus-{name}")
        env["WEB_BIND"] = f"127.0.0.1:{self.port}"
        for variable in HOST_VARIABLES:
            if variable in os.environ:
                env[variable] = os.environ[variable]
        return env

    def run(
        self, name: str, *command: str, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        """The service's command (or ``command``, as ``docker compose exec``) to its end."""
        service = self.compose.service(name)
        argv = self.compose.host_command(service, self.volumes, list(command) or None)
        return subprocess.run(
            argv,
            cwd=BASE,
            env=self.environment(name),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, name: str) -> subprocess.Popen[bytes]:
        argv = self.compose.host_command(self.compose.service(name), self.volumes)
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                cwd=BASE,
                env=self.environment(name),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name], self.logs[name] = proc, log
        return proc

    def wait_web(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes["web"].poll() is not None:
                raise AssertionError(f"web exited:\n{self.output('web')}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or still starting
                pass
            time.sleep(0.3)
        raise AssertionError(f"web did not answer /healthz:\n{self.output('web')}")

    def output(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        for proc in self.processes.values():
            try:
                os.killpg(proc.pid, 15)
            except ProcessLookupError:
                continue
        for proc in self.processes.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=5)


def scratch_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="compose-stack-"))
