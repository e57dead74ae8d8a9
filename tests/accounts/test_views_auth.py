"""Login, logout, the login redirect of every page, and the audit log."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client

from accounts.models import AuditEvent
from tests.factories import PASSWORD
from tests.http import HTMX

pytestmark = pytest.mark.django_db


def _client() -> Client:
    # A fresh address per test: lockout counters live in the shared cache and
    # count per address, so tests (and other suites) must not share one.
    return Client(REMOTE_ADDR=f"2001:db8::{uuid.uuid4().hex[:4]}")


def test_it_shows_the_login_page(db: Any) -> None:
    response = _client().get("/login")
    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b'autocomplete="current-password"' in response.content


def test_it_logs_in_and_follows_a_safe_next(make_user: Any) -> None:
    make_user("alice")
    client = _client()
    response = client.post(
        "/login", {"username": "alice", "password": PASSWORD, "next": "/pipelines"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/pipelines"
    assert client.get("/").status_code == 200
    assert AuditEvent.objects.filter(action="login", actor_name="alice").exists()


def test_it_ignores_a_next_to_another_site(make_user: Any) -> None:
    make_user("alice")
    response = _client().post(
        "/login", {"username": "alice", "password": PASSWORD, "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"


def test_it_refuses_bad_credentials_inline(make_user: Any) -> None:
    make_user("alice")
    response = _client().post("/login", {"username": "alice", "password": "nope"})
    assert response.status_code == 400
    assert b"alert" in response.content
    assert b"enter a correct username and password" in response.content.lower()


def test_it_locks_out_after_repeated_failures(make_user: Any, settings: Any) -> None:
    settings.LOGIN_LOCKOUT_FAILURES = 3
    name = f"u{uuid.uuid4().hex[:8]}"
    make_user(name)
    client = _client()
    for _ in range(3):
        client.post("/login", {"username": name, "password": "nope"})
    response = client.post("/login", {"username": name, "password": PASSWORD})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert b"Too many failed attempts" in response.content
    assert client.get("/").status_code == 302  # still logged out


def test_it_logs_out_on_post_only(make_user: Any, client_for: Any) -> None:
    client = client_for(make_user("alice"))
    assert client.get("/logout").status_code == 405
    response = client.post("/logout")
    assert response.status_code == 302
    assert client.get("/").status_code == 302


@pytest.mark.parametrize(
    "url", ["/", "/pipelines", "/runs", "/connections", "/audit", "/pipelines/new"]
)
def test_it_sends_anonymous_users_to_login(db: Any, url: str) -> None:
    response = _client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login?next=")


def test_it_redirects_an_expired_htmx_session_with_hx_redirect(db: Any) -> None:
    response = _client().get("/", HTTP_HX_CURRENT_URL="http://testserver/runs", **HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith("/login?next=")


def test_it_shows_the_audit_log_to_admins(admin_user: Any, developer: Any, client_for: Any) -> None:
    AuditEvent.objects.create(
        action="create",
        actor=developer,
        actor_name="dev1",
        object_type="pipeline",
        object_repr="p_audit",
    )
    AuditEvent.objects.create(
        action="delete",
        actor=admin_user,
        actor_name="admin1",
        object_type="connection",
        object_repr="c_audit",
    )
    client = client_for(admin_user)
    response = client.get("/audit")
    assert response.status_code == 200
    assert b"p_audit" in response.content and b"c_audit" in response.content

    filtered = client.get("/audit", {"action": "create", "actor": "dev1"})
    assert b"p_audit" in filtered.content and b"c_audit" not in filtered.content
    by_type = client.get("/audit", {"object_type": "connection"})
    assert b"c_audit" in by_type.content and b"p_audit" not in by_type.content

    fragment = client.get("/audit", {"action": "create"}, **HTMX)
    assert fragment.status_code == 200
    assert b"<html" not in fragment.content and b'id="audit-results"' in fragment.content


@pytest.mark.parametrize("role", ["developer", "operator", "viewer"])
def test_it_refuses_the_audit_log_to_non_admins(role: str, request: Any, client_for: Any) -> None:
    user = request.getfixturevalue(role)
    response = client_for(user).get("/audit")
    assert response.status_code == 403
    assert b"admins only" in response.content.lower()


def test_it_links_the_audit_log_for_admins_only(
    admin_user: Any, developer: Any, client_for: Any
) -> None:
    assert b'href="/audit"' in client_for(admin_user).get("/").content
    assert b'href="/audit"' not in client_for(developer).get("/").content


def test_it_puts_the_csrf_token_on_the_body(developer: Any, client_for: Any) -> None:
    content = client_for(developer).get("/").content.decode()
    assert '<body hx-headers=\'{"X-CSRFToken": "' in content
