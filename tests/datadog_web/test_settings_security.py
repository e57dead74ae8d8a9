"""CORS, CSRF on session requests, production settings (``check --deploy``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client

from tests.factories import sql_pipeline
from tests.http import assert_error, url

BASE_DIR = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("isolated_cache")


# ------------------------------------------------------------------- CORS


@pytest.mark.django_db
def test_it_sends_cors_headers_to_an_allowed_origin_only(
    api_client_for: Any, developer: Any
) -> None:
    client = api_client_for(developer)
    allowed = client.get(url("pipelines"), HTTP_ORIGIN="http://localhost:3000")
    assert allowed["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert allowed["Access-Control-Allow-Credentials"] == "true"
    other = client.get(url("pipelines"), HTTP_ORIGIN="https://evil.example")
    assert "Access-Control-Allow-Origin" not in other


@pytest.mark.django_db
def test_it_answers_preflights_for_allowed_origins_only(anon: Any) -> None:
    headers = {
        "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST",
        "HTTP_ACCESS_CONTROL_REQUEST_HEADERS": "authorization, content-type, idempotency-key",
    }
    ok = anon.options(url("pipelines"), HTTP_ORIGIN="http://localhost:8080", **headers)
    assert ok["Access-Control-Allow-Origin"] == "http://localhost:8080"
    assert "idempotency-key" in ok["Access-Control-Allow-Headers"].lower()
    refused = anon.options(url("pipelines"), HTTP_ORIGIN="http://localhost:9999", **headers)
    assert "Access-Control-Allow-Origin" not in refused


@pytest.mark.django_db
def test_it_never_answers_cors_with_a_wildcard(anon: Any) -> None:
    response = anon.get(url("pipelines"), HTTP_ORIGIN="http://localhost:3000")
    assert response.get("Access-Control-Allow-Origin") != "*"


def test_it_refuses_a_wildcard_origin_at_start() -> None:
    result = _manage(["check"], {"ALLOWED_ORIGINS": "*"})
    assert result.returncode != 0
    assert "ALLOWED_ORIGINS" in result.stderr


# ------------------------------------------------------------------- CSRF


@pytest.mark.django_db
def test_it_refuses_a_session_post_without_the_csrf_token(developer: Any, wh: Any) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(developer)
    assert browser.get(url("pipelines")).status_code == 200  # the session works for the API
    response = browser.post(url("pipelines"), sql_pipeline("p1"), content_type="application/json")
    body = assert_error(response, 403)
    assert "CSRF" in body["detail"]


@pytest.mark.django_db
def test_it_accepts_a_session_post_with_the_csrf_token(developer: Any, wh: Any) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(developer)
    token = _get_new_csrf_string()
    browser.cookies["csrftoken"] = token
    response = browser.post(
        url("pipelines"),
        sql_pipeline("p1"),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 201, response.content


@pytest.mark.django_db
def test_it_needs_no_csrf_token_with_a_bearer_token(api_client_for: Any, developer: Any) -> None:
    # Bearer tokens are not sent by browsers on their own: no CSRF risk.
    client = api_client_for(developer)
    client.handler.enforce_csrf_checks = True
    body = {"name": "x", "kind": "csv", "config": {"path": "d"}}
    response = client.post(url("connections"), body, format="json")
    assert response.status_code == 201, response.content


# ---------------------------------------------------- production settings


def _production_env(**extra: str) -> dict[str, str]:
    # Only the basics of this environment: the test run's own variables
    # (DATADOG_TESTING, DJANGO_ALLOW_ASYNC_UNSAFE, ...) are not production.
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}}
    env.update(
        {
            "DATADOG_VAR_DIR": str(Path(os.environ.get("DATADOG_VAR_DIR", "/tmp")) / "deploy"),
            "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
            "SECRET_KEY": "k" * 20 + "Production-Key-!@#" + "z" * 20,
            "FERNET_KEYS": Fernet.generate_key().decode(),
            "ALLOWED_HOSTS": "datadog.example.com",
            "DEBUG": "false",
        }
    )
    env.update(extra)
    return env


def _manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=_production_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_passes_check_deploy_in_production() -> None:
    result = _manage(["check", "--deploy", "--fail-level", "WARNING"], {})
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_fails_check_deploy_with_debug_on() -> None:
    # The check is meaningful: DEBUG alone makes it fail.
    result = _manage(["check", "--deploy", "--fail-level", "WARNING"], {"DEBUG": "true"})
    assert result.returncode != 0
    assert "security.W018" in result.stdout + result.stderr


def test_it_refuses_to_start_without_a_secret_key_in_production() -> None:
    env = _production_env()
    env.pop("SECRET_KEY")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr
