"""The token blacklist in the admin: nobody un-revokes, only superusers revoke.

And only superusers make or touch superusers, or the line would be one form away.

A refresh token revoked through the API (logout) must stay revoked whatever
an admin-role user does in the admin; the refresh endpoint is the proof.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.permissions import Role
from accounts.tokens import token_pair
from tests.factories import PASSWORD


@pytest.fixture
def revoked(developer: Any) -> dict[str, Any]:
    """A refresh token of ``developer``, revoked by a real logout."""
    tokens = token_pair(developer)
    response = APIClient().post(
        "/api/v1/auth/logout", {"refresh_token": tokens["refresh_token"]}, format="json"
    )
    assert response.status_code == 204
    return tokens


def refresh_works(tokens: dict[str, Any]) -> bool:
    response = APIClient().post(
        "/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]}, format="json"
    )
    return response.status_code == 200


def admin_client(make_user: Any, *, superuser: bool) -> Client:
    user = make_user("boss", Role.ADMIN, is_staff=True, is_superuser=superuser)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("superuser", [False, True], ids=["admin-role", "superuser"])
def test_it_never_unrevokes_a_token_in_the_admin(
    make_user: Any, developer: Any, revoked: dict[str, Any], superuser: bool
) -> None:
    client = admin_client(make_user, superuser=superuser)
    entry = BlacklistedToken.objects.get()
    other = OutstandingToken.objects.get(token=token_pair(developer)["refresh_token"])
    assert client.get("/admin/token_blacklist/blacklistedtoken/").status_code == 200
    delete = f"/admin/token_blacklist/blacklistedtoken/{entry.pk}/delete/"
    assert client.post(delete, {"post": "yes"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [str(entry.pk)], "post": "yes"}
    client.post("/admin/token_blacklist/blacklistedtoken/", bulk)
    # Re-pointing the entry at another token would un-revoke this one.
    change = f"/admin/token_blacklist/blacklistedtoken/{entry.pk}/change/"
    assert client.post(change, {"token": str(other.pk)}).status_code == 403
    outstanding = f"/admin/token_blacklist/outstandingtoken/{entry.token_id}/delete/"
    assert client.post(outstanding, {"post": "yes"}).status_code == 403
    entry.refresh_from_db()
    assert entry.token_id != other.pk and BlacklistedToken.objects.count() == 1
    assert not refresh_works(revoked)


@pytest.mark.django_db
def test_it_lets_only_superusers_revoke_a_token(make_user: Any, developer: Any) -> None:
    tokens = token_pair(developer)
    outstanding = OutstandingToken.objects.get(token=tokens["refresh_token"])
    add = "/admin/token_blacklist/blacklistedtoken/add/"

    admin_role = admin_client(make_user, superuser=False)
    assert admin_role.get(add).status_code == 403
    assert admin_role.post(add, {"token": str(outstanding.pk)}).status_code == 403
    assert not BlacklistedToken.objects.exists()

    superuser = make_user("root", Role.ADMIN, is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(superuser)
    assert client.post(add, {"token": str(outstanding.pk)}).status_code == 302
    assert BlacklistedToken.objects.filter(token=outstanding).exists()
    assert not refresh_works(tokens)


def promote(client: Client, user: Any) -> Any:
    """Post the user change form with "superuser status" ticked."""
    return client.post(
        f"/admin/auth/user/{user.pk}/change/",
        {
            "username": user.username,
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "groups": [str(g.pk) for g in user.groups.all()],
            "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        },
    )


@pytest.mark.django_db
def test_it_keeps_admin_role_users_from_making_superusers(make_user: Any) -> None:
    boss = make_user("boss", Role.ADMIN, is_staff=True)
    client = Client()
    client.force_login(boss)
    assert promote(client, boss).status_code == 302  # the rest of the form saves
    boss.refresh_from_db()
    assert not boss.is_superuser

    root = make_user("root", Role.ADMIN, is_staff=True, is_superuser=True)
    assert client.get(f"/admin/auth/user/{root.pk}/password/").status_code == 403
    taken = {"password1": "a-new-long-password-9", "password2": "a-new-long-password-9"}
    assert client.post(f"/admin/auth/user/{root.pk}/password/", taken).status_code == 403
    assert client.post(f"/admin/auth/user/{root.pk}/delete/", {"post": "yes"}).status_code == 403
    root.refresh_from_db()
    assert root.check_password(PASSWORD)

    # A superuser may (the same form, so the refusal above is the rule, not the form).
    superuser = Client()
    superuser.force_login(root)
    assert promote(superuser, boss).status_code == 302
    boss.refresh_from_db()
    assert boss.is_superuser
