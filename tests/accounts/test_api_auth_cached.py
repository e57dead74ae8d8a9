"""Access tokens checked without reading the user row, and still refused when they must be."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts import tokens
from accounts.permissions import Role
from accounts.services import user_set_role
from accounts.tokens import CachedJWTAuthentication, token_pair
from tests.factories import PASSWORD
from tests.http import assert_error, url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]

PIPELINE = {
    "name": "p_new",
    "tasks": [{"name": "a", "type": "sql", "connection": "wh", "sql": "SELECT 1"}],
}


def bearer(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_pair(user)['access_token']}")
    return client


def user_queries(client: APIClient, path: str) -> list[str]:
    """The statements of one request that read the user's row or their role."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url(path))
    assert response.status_code == 200, response.content
    return [
        q["sql"]
        for q in queries
        if 'FROM "auth_user" WHERE' in q["sql"] or 'FROM "auth_group" INNER JOIN' in q["sql"]
    ]


def test_it_reads_no_user_row_once_the_user_is_known(admin_user: Any) -> None:
    client = bearer(admin_user)
    assert user_queries(client, "executions")  # the first request reads the user
    assert user_queries(client, "executions") == []
    assert user_queries(client, "pipelines") == []


def test_it_refuses_a_user_deactivated_after_their_token_was_checked(developer: Any) -> None:
    client = bearer(developer)
    assert client.get(url("pipelines")).status_code == 200
    developer.is_active = False
    developer.save()
    assert_error(client.get(url("pipelines")), 401)
    developer.is_active = True
    developer.save()
    assert client.get(url("pipelines")).status_code == 200


def test_it_refuses_a_deleted_user(developer: Any) -> None:
    client = bearer(developer)
    assert client.get(url("pipelines")).status_code == 200
    developer.delete()
    assert_error(client.get(url("pipelines")), 401)


def test_it_refuses_tokens_issued_before_a_password_change(developer: Any) -> None:
    client = bearer(developer)
    assert client.get(url("pipelines")).status_code == 200
    developer.set_password("another-long-password-42")
    developer.save()
    assert_error(client.get(url("pipelines")), 401)
    assert bearer(developer).get(url("pipelines")).status_code == 200  # a new token works


def test_it_refuses_a_blacklisted_refresh_token_with_a_warm_cache(developer: Any) -> None:
    anon = APIClient()
    tokens = anon.post(url("auth/token"), {"username": "dev1", "password": PASSWORD}).json()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert client.get(url("pipelines")).status_code == 200
    logout = anon.post(
        url("auth/logout"), {"refresh_token": tokens["refresh_token"]}, format="json"
    )
    assert logout.status_code == 204
    again = anon.post(
        url("auth/refresh"), {"refresh_token": tokens["refresh_token"]}, format="json"
    )
    assert_error(again, 401)


def test_it_applies_a_role_change_at_the_next_request(developer: Any, wh: Any) -> None:
    client = bearer(developer)
    assert client.get(url("pipelines")).status_code == 200  # cached as a developer
    user_set_role(user=developer, role=Role.VIEWER)
    assert_error(client.post(url("pipelines"), PIPELINE, format="json"), 403)
    user_set_role(user=developer, role=Role.DEVELOPER)
    created = client.post(url("pipelines"), PIPELINE, format="json")
    assert created.status_code == 201, created.content


def test_it_applies_group_membership_changed_from_the_group_side(viewer: Any) -> None:
    client = bearer(viewer)
    assert_error(client.get(url("audit-events")), 403)  # cached as a viewer
    viewer.groups.clear()
    Group.objects.get(name=Role.ADMIN).user_set.add(viewer)
    assert client.get(url("audit-events")).status_code == 200
    Group.objects.get(name=Role.ADMIN).delete()  # the role goes with its group
    assert_error(client.get(url("audit-events")), 403)


def test_the_user_it_builds_saves_only_what_it_loaded(developer: Any) -> None:
    developer.email = "dev1@example.com"
    developer.save()
    token = AccessToken(token_pair(developer)["access_token"])
    CachedJWTAuthentication().get_user(token)  # fills the cache
    user = CachedJWTAuthentication().get_user(token)
    assert user.pk == developer.pk and user.get_username() == "dev1" and user.is_active
    user.first_name = "Dev"
    user.save()  # writes the loaded fields only: the email and password stay
    developer.refresh_from_db()
    assert developer.email == "dev1@example.com" and developer.check_password(PASSWORD)
    assert user.email == "dev1@example.com"  # a field not cached loads on access


def test_a_token_verified_once_is_refused_when_it_expires(developer: Any) -> None:
    token = AccessToken.for_user(developer)
    token.set_exp(lifetime=timedelta(seconds=2))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get(url("pipelines")).status_code == 200
    assert str(token).encode() in tokens._verified  # not decoded again while valid
    assert client.get(url("pipelines")).status_code == 200
    time.sleep(max(0.0, token["exp"] - time.time()) + 0.1)
    assert_error(client.get(url("pipelines")), 401)
