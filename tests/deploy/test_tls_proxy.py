"""The documented TLS proxy (docs/deploy.md): deploy/Caddyfile in front of the web.

Debian's ``caddy`` runs ``deploy/Caddyfile`` as ``deploy/compose.tls.yml``
mounts it, with Caddy's own CA for ``localhost`` (ports made free ones
through the Caddyfile's ``HTTP_PORT``/``HTTPS_PORT``), in front of the web
service started from docker-compose.yml with the ``.env`` values that
docs/deploy.md lists (read from the page, ``datadog.example.com`` made
``localhost``). A user's HTTP request is redirected to HTTPS, the HTTPS login
page carries HSTS and Secure cookies, the form login works, and a client's
own ``X-Forwarded-Proto`` does not reach the app.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
import yaml

from tests.deploy.conftest import csrf_token
from tests.deploy.stack import ADMIN_PASSWORD, BASE, Stack, env_from_example
from tests.net import free_port
from tests.services import missing, need_redis, scratch_postgres_db, unique_name

pytestmark = [pytest.mark.postgres]

CADDYFILE = BASE / "deploy" / "Caddyfile"
OVERLAY = BASE / "deploy" / "compose.tls.yml"


class _ComposeLoader(yaml.SafeLoader):
    """YAML with compose's ``!reset`` / ``!override`` tags."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: None)
_ComposeLoader.add_constructor(
    "!override",
    lambda loader, node: loader.construct_sequence(node),  # type: ignore[arg-type]
)


def documented_https_env() -> dict[str, str]:
    """The ``.env`` lines of docs/deploy.md step 2, for ``localhost``."""
    page = (BASE / "docs" / "deploy.md").read_text()
    step = page.split("## 2. The app on HTTPS", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    values = dict(line.split("=", 1) for line in step.splitlines() if "=" in line)
    return {
        name: value.replace("datadog.example.com", "localhost") for name, value in values.items()
    }


def test_the_overlay_runs_this_caddyfile_in_front_of_web() -> None:
    overlay = yaml.load(OVERLAY.read_text(), Loader=_ComposeLoader)  # noqa: S506 - a SafeLoader
    proxy = overlay["services"]["proxy"]
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    assert "SITE_ADDRESS" in proxy["environment"]
    # web is reachable through the proxy only.
    assert overlay["services"]["web"]["ports"] is None
    assert "reverse_proxy {$UPSTREAM:web:8000}" in CADDYFILE.read_text()


@dataclass
class Proxied:
    stack: Stack
    url: str  # https://localhost:<port>, through Caddy
    root: Path  # Caddy's local CA certificate
    http_port: int  # Caddy's plain-HTTP listener


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    caddy = shutil.which("caddy")
    if caddy is None:
        missing("caddy (apt-get install caddy)")
    assert caddy is not None
    need_redis()
    folder = tmp_path_factory.mktemp("tls")
    env = documented_https_env()
    site = env.pop("SITE_ADDRESS")
    with scratch_postgres_db() as database_url:
        stack = Stack(
            folder,
            env_from_example(folder, **env),
            database_url.rsplit("/", 1)[1],
            redis_prefix=unique_name("tls"),
        )
        http_port, https_port = free_port(), free_port()
        proxy: subprocess.Popen[bytes] | None = None
        try:
            bootstrap = stack.run("migrate")
            assert bootstrap.returncode == 0, bootstrap.stdout + bootstrap.stderr
            stack.start("web")
            stack.wait_web()
            with (folder / "caddy.log").open("wb") as log:
                proxy = subprocess.Popen(
                    [caddy, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                    env={
                        "PATH": "/usr/bin:/bin",
                        "HOME": str(folder),
                        "XDG_DATA_HOME": str(folder / "caddy-data"),
                        "XDG_CONFIG_HOME": str(folder / "caddy-config"),
                        "SITE_ADDRESS": site,
                        "HTTP_PORT": str(http_port),
                        "HTTPS_PORT": str(https_port),
                        "UPSTREAM": f"127.0.0.1:{stack.port}",
                    },
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            root = folder / "caddy-data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
            url = f"https://{site}:{https_port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if root.exists() and requests.get(
                        f"{url}/healthz", verify=str(root), timeout=5
                    ):
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline or proxy.poll() is not None:
                    raise AssertionError((folder / "caddy.log").read_text(errors="replace"))
                time.sleep(0.3)
            yield Proxied(stack, url, root, http_port)
        finally:
            if proxy is not None and proxy.poll() is None:
                proxy.terminate()
                proxy.wait(timeout=15)
            stack.stop()
            shutil.rmtree(folder, ignore_errors=True)


def test_http_is_redirected_to_https(tls_stack: Proxied) -> None:
    response = requests.get(
        f"http://localhost:{tls_stack.http_port}/login", allow_redirects=False, timeout=10
    )
    assert response.status_code in {301, 302, 307, 308}
    # To the same name and path over HTTPS (Caddy names port 443; here it is another).
    location = urlparse(response.headers["Location"])
    assert (location.scheme, location.hostname, location.path) == ("https", "localhost", "/login")


def test_https_login_with_hsts_and_secure_cookies(tls_stack: Proxied) -> None:
    url, root = tls_stack.url, tls_stack.root
    session = requests.Session()
    # verify on each call: a session's own is overridden by REQUESTS_CA_BUNDLE.
    verify = str(root)
    page = session.get(f"{url}/login", verify=verify, allow_redirects=False, timeout=10)
    assert page.status_code == 200, (page.status_code, page.headers.get("Location"))
    assert page.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    cookies: dict[str, Any] = {cookie.name: cookie for cookie in session.cookies}
    assert cookies["csrftoken"].secure
    login = session.post(
        f"{url}/login",
        data={
            "username": "admin",
            "password": ADMIN_PASSWORD,
            "csrfmiddlewaretoken": csrf_token(page.text),
        },
        headers={"Referer": f"{url}/login"},
        verify=verify,
        allow_redirects=False,
        timeout=10,
    )
    assert login.status_code == 302, login.text[:2000]
    assert {cookie.name: cookie for cookie in session.cookies}["sessionid"].secure
    home = session.get(f"{url}/", verify=verify, allow_redirects=False, timeout=10)
    assert home.status_code == 200


def test_a_client_s_forwarded_proto_does_not_reach_the_app(tls_stack: Proxied) -> None:
    url, root = tls_stack.url, tls_stack.root
    # Were "http" passed on, the app (TRUSTED_PROXY) would redirect to HTTPS.
    response = requests.get(
        f"{url}/login",
        headers={"X-Forwarded-Proto": "http"},
        verify=str(root),
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 200
