"""``/auth/token``, ``/auth/refresh``, ``/auth/logout``: tokens, rotation, lockout, audit."""

from __future__ import annotations

import time
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from tests.factories import PASSWORD
from tests.http import assert_error, url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]


def login(client: APIClient, username: str, password: str = PASSWORD, *, form: bool = True) -> Any:
    data = {"username": username, "password": password}
    if form:
        return client.post(url("auth/token"), data)  # multipart form
    return client.post(url("auth/token"), data, format="json")


def urlencoded_login(client: APIClient, username: str, password: str = PASSWORD) -> Any:
    return client.post(
        url("auth/token"),
        f"username={username}&password={password}",
        content_type="application/x-www-form-urlencoded",
    )


def test_it_issues_tokens_for_form_data(anon: APIClient, developer: Any) -> None:
    response = urlencoded_login(anon, "dev1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900  # 15 minutes by default
    assert response["Cache-Control"] == "no-store"
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert me.get(url("pipelines")).status_code == 200


def test_it_issues_tokens_for_multipart_and_json(anon: APIClient, developer: Any) -> None:
    assert login(anon, "dev1", form=True).status_code == 200
    assert login(anon, "dev1", form=False).status_code == 200


def test_it_refuses_a_bad_password_with_401(anon: APIClient, developer: Any) -> None:
    response = login(anon, "dev1", "wrong")
    assert_error(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_an_unknown_user_like_a_bad_password(anon: APIClient, db: Any) -> None:
    assert_error(login(anon, "nobody", "wrong"), 401)


def test_it_refuses_an_inactive_user(anon: APIClient, make_user: Any) -> None:
    make_user("gone", is_active=False)
    assert_error(login(anon, "gone"), 401)


def test_it_answers_400_with_paths_for_missing_fields(anon: APIClient, db: Any) -> None:
    body = assert_error(anon.post(url("auth/token"), {}, format="json"), 400)
    assert {e["path"] for e in body["errors"]} == {"username", "password"}


def test_it_audits_logins_and_failures(anon: APIClient, developer: Any) -> None:
    login(anon, "dev1", "wrong")
    login(anon, "dev1")
    failed = AuditEvent.objects.get(action="login_failed")
    assert failed.actor_name == "dev1" and failed.actor is None
    assert failed.ip == "127.0.0.1"
    ok = AuditEvent.objects.get(action="login")
    assert ok.actor == developer


def test_it_locks_out_after_repeated_failures(
    anon: APIClient, developer: Any, settings: Any
) -> None:
    settings.LOGIN_LOCKOUT_FAILURES = 3
    for _ in range(3):
        assert login(anon, "dev1", "wrong").status_code == 401
    response = login(anon, "dev1")  # even the right password
    assert_error(response, 429)
    assert int(response["Retry-After"]) > 0
    assert AuditEvent.objects.filter(action="login_failed", details__reason="locked out").exists()
    # Another account from the same address is not locked by these failures.
    settings.LOGIN_LOCKOUT_IP_FAILURES = 100
    assert login(anon, "nobody", "x").status_code == 401


def test_it_locks_out_an_address_spraying_usernames(
    anon: APIClient, developer: Any, settings: Any
) -> None:
    settings.LOGIN_LOCKOUT_IP_FAILURES = 4
    for i in range(4):
        assert login(anon, f"user{i}", "wrong").status_code == 401
    assert_error(login(anon, "dev1"), 429)


def test_it_unlocks_after_the_lock_time(anon: APIClient, developer: Any, settings: Any) -> None:
    settings.LOGIN_LOCKOUT_FAILURES = 2
    settings.LOGIN_LOCKOUT_SECONDS = 1
    login(anon, "dev1", "wrong")
    login(anon, "dev1", "wrong")
    assert login(anon, "dev1").status_code == 429
    time.sleep(1.2)
    assert login(anon, "dev1").status_code == 200


def test_it_ignores_a_forged_x_forwarded_for(
    anon: APIClient, developer: Any, settings: Any
) -> None:
    settings.LOGIN_LOCKOUT_FAILURES = 2
    for i in range(2):
        anon.post(
            url("auth/token"),
            {"username": "dev1", "password": "wrong"},
            HTTP_X_FORWARDED_FOR=f"10.0.0.{i}",
        )
    response = anon.post(
        url("auth/token"),
        {"username": "dev1", "password": PASSWORD},
        HTTP_X_FORWARDED_FOR="10.9.9.9",
    )
    assert response.status_code == 429


def test_it_throttles_token_requests(anon: APIClient, developer: Any, settings: Any) -> None:
    rates = dict(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], login="3/min")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    for _ in range(3):
        assert login(anon, "dev1").status_code == 200
    response = login(anon, "dev1")
    assert_error(response, 429)
    assert int(response["Retry-After"]) > 0


def test_it_rotates_refresh_tokens(anon: APIClient, developer: Any) -> None:
    first = login(anon, "dev1").json()
    response = anon.post(
        url("auth/refresh"), {"refresh_token": first["refresh_token"]}, format="json"
    )
    assert response.status_code == 200, response.content
    second = response.json()
    assert set(second) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert second["refresh_token"] != first["refresh_token"]
    # The old one stops working; the new one works once.
    again = anon.post(url("auth/refresh"), {"refresh_token": first["refresh_token"]}, format="json")
    assert_error(again, 401)
    assert (
        anon.post(
            url("auth/refresh"), {"refresh_token": second["refresh_token"]}, format="json"
        ).status_code
        == 200
    )


def test_it_revokes_a_refresh_token_on_logout(anon: APIClient, developer: Any) -> None:
    tokens = login(anon, "dev1").json()
    response = anon.post(
        url("auth/logout"), {"refresh_token": tokens["refresh_token"]}, format="json"
    )
    assert response.status_code == 204
    again = anon.post(
        url("auth/refresh"), {"refresh_token": tokens["refresh_token"]}, format="json"
    )
    assert_error(again, 401)
    assert_error(
        anon.post(url("auth/logout"), {"refresh_token": tokens["refresh_token"]}, format="json"),
        401,
    )


def test_it_refuses_garbage_and_access_tokens_as_refresh(anon: APIClient, developer: Any) -> None:
    tokens = login(anon, "dev1").json()
    for bad in ["garbage", tokens["access_token"]]:
        assert_error(anon.post(url("auth/refresh"), {"refresh_token": bad}, format="json"), 401)
        assert_error(anon.post(url("auth/logout"), {"refresh_token": bad}, format="json"), 401)
    assert_error(anon.post(url("auth/refresh"), {}, format="json"), 400, "refresh_token")


def test_it_refuses_refresh_for_a_deactivated_or_deleted_user(
    anon: APIClient, developer: Any
) -> None:
    tokens = login(anon, "dev1").json()
    developer.is_active = False
    developer.save()
    assert_error(
        anon.post(url("auth/refresh"), {"refresh_token": tokens["refresh_token"]}, format="json"),
        401,
    )
    developer.delete()
    assert_error(
        anon.post(url("auth/refresh"), {"refresh_token": tokens["refresh_token"]}, format="json"),
        401,
    )


def test_it_revokes_tokens_when_the_password_changes(anon: APIClient, developer: Any) -> None:
    tokens = login(anon, "dev1").json()
    developer.set_password("another-long-password-42")
    developer.save()
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert_error(me.get(url("pipelines")), 401)
    assert_error(
        anon.post(url("auth/refresh"), {"refresh_token": tokens["refresh_token"]}, format="json"),
        401,
    )


def test_it_serves_the_token_path_with_and_without_a_trailing_slash(
    anon: APIClient, developer: Any
) -> None:
    for path in ["auth/token", "auth/token/"]:
        response = anon.post(url(path), {"username": "dev1", "password": PASSWORD})
        assert response.status_code == 200, path
