"""``X-Forwarded-Proto`` is believed only with ``TRUSTED_PROXY`` (issue 10 item 10).

Each case starts a fresh process with the configuration from the
environment (settings are read once), serves the real WSGI application on a
loopback port and sends a plain-HTTP request claiming ``https`` in the
header. With ``SECURE_SSL_REDIRECT`` on, a request Django takes for HTTPS
goes through (404 for an unknown page), one it takes for HTTP is redirected
(301); ``request.is_secure()`` is also asked directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workers import BASE_DIR, run_check

PROBE = r"""
import http.client, json, threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import django
django.setup()
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.test import RequestFactory

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

server = make_server("127.0.0.1", 0, get_wsgi_application(), handler_class=Quiet)
threading.Thread(target=server.serve_forever, daemon=True).start()
conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
conn.request("GET", "/no-such-page", headers={"X-Forwarded-Proto": "https"})
response = conn.getresponse()
secure = RequestFactory().get("/", HTTP_X_FORWARDED_PROTO="https").is_secure()
print(json.dumps({
    "status": response.status,
    "location": response.getheader("Location"),
    "is_secure": secure,
    "header": getattr(settings, "SECURE_PROXY_SSL_HEADER", None),
}))
server.shutdown()
"""


def probe(tmp_path: Path, **env: str) -> dict[str, object]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DEBUG", "TRUSTED_PROXY", "DATADOG_TESTING"}
    }
    clean.update(
        {
            "DJANGO_SETTINGS_MODULE": "datadog_web.settings",
            "DATADOG_VAR_DIR": str(tmp_path / "var"),
            "SECURE_SSL_REDIRECT": "true",
            **env,
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=BASE_DIR,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("env", [{}, {"TRUSTED_PROXY": "false"}])
def test_it_ignores_x_forwarded_proto_without_a_trusted_proxy(
    tmp_path: Path, env: dict[str, str]
) -> None:
    answer = probe(tmp_path, **env)
    assert answer["is_secure"] is False and answer["header"] is None
    assert answer["status"] == 301
    assert str(answer["location"]).startswith("https://127.0.0.1")


def test_it_believes_x_forwarded_proto_behind_a_trusted_proxy(tmp_path: Path) -> None:
    answer = probe(tmp_path, TRUSTED_PROXY="true")
    assert answer["is_secure"] is True
    assert answer["header"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert answer["status"] == 404  # served as HTTPS: no redirect


def test_it_refuses_a_bad_trusted_proxy_value_naming_it(tmp_path: Path) -> None:
    result = run_check(tmp_path, TRUSTED_PROXY="sometimes")
    assert result.returncode != 0 and "TRUSTED_PROXY" in result.stderr
