"""Sharing does not tell who exists (SPEC §10, issue 10 item 10).

A developer sharing a pipeline by user name gets the same answer (status,
message, body) for a name nobody has, a deactivated user and a user without
a role; only admins, who manage users anyway, are told which it is. Tried
through the API (``PUT .../permissions``) and the HTML share form.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from accounts.permissions import Level, Role
from accounts.services import NOT_SHAREABLE, sharing_set, user_set_role
from tests.http import url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]


@pytest.fixture
def pipeline(make_pipeline: Any, developer: Any) -> Any:
    return make_pipeline("p1", user=developer)


@pytest.fixture
def others(make_user: Any) -> dict[str, Any]:
    """Names that cannot receive a share, for three different reasons."""
    return {
        "ghost": None,  # no such user
        "retired": make_user("retired", Role.VIEWER, is_active=False),
        "norole": make_user("norole", None),
    }


def _put(client: Any, pipeline: Any, name: str) -> Any:
    path = url(f"pipelines/{pipeline.pk}/permissions")
    return client.put(path, {"users": {name: "view"}}, format="json")


def test_it_answers_a_developer_the_same_for_unknown_inactive_and_roleless_users(
    api_client_for: Any, developer: Any, pipeline: Any, others: dict[str, Any]
) -> None:
    client = api_client_for(developer)
    answers = {}
    for name in others:
        response = _put(client, pipeline, name)
        answers[name] = (response.status_code, response.content.decode().replace(name, "NAME"))
    assert len(set(answers.values())) == 1, answers
    status, body = answers["ghost"]
    assert status == 400
    assert json.loads(body)["errors"] == [{"path": "users.NAME", "message": NOT_SHAREABLE}]
    assert client.get(url(f"pipelines/{pipeline.pk}/permissions")).json()["users"] == {}


def test_it_tells_an_admin_why(
    api_client_for: Any, admin_user: Any, pipeline: Any, others: dict[str, Any]
) -> None:
    client = api_client_for(admin_user)
    messages = {name: _put(client, pipeline, name).json()["errors"] for name in others}
    assert messages == {
        "ghost": [{"path": "users.ghost", "message": "unknown user"}],
        "retired": [{"path": "users.retired", "message": "user is inactive"}],
        "norole": [{"path": "users.norole", "message": "user has no role"}],
    }


def test_it_keeps_a_share_of_a_user_who_lost_their_role_since(
    api_client_for: Any, developer: Any, viewer: Any, pipeline: Any
) -> None:
    # The sharing the owner reads back can always be written back.
    sharing_set(obj=pipeline, users={viewer: Level.VIEW}, groups={})
    user_set_role(user=viewer, role=None)
    client = api_client_for(developer)
    path = url(f"pipelines/{pipeline.pk}/permissions")
    current = client.get(path).json()
    assert current["users"] == {"view1": "view"}
    body = {"users": current["users"], "groups": current["groups"]}
    response = client.put(path, body, format="json")
    assert response.status_code == 200 and response.json()["users"] == {"view1": "view"}


def test_it_shares_with_an_active_user_with_a_role(
    api_client_for: Any, developer: Any, viewer: Any, pipeline: Any
) -> None:
    response = _put(api_client_for(developer), pipeline, "view1")
    assert response.status_code == 200 and response.json()["users"] == {"view1": "view"}


def test_it_answers_the_html_share_form_the_same_way(
    client: Any, developer: Any, pipeline: Any, others: dict[str, Any]
) -> None:
    client.force_login(developer)
    answers = {}
    for name in others:
        response = client.post(
            f"/pipelines/{pipeline.pk}/share",
            {"principal_type": "user", "name": name, "level": "view"},
        )
        # The page also echoes the name in the form field: mask it everywhere.
        answers[name] = (response.status_code, response.content.decode().replace(name, "NAME"))
    statuses = {status for status, _ in answers.values()}
    assert statuses == {400}
    errors = {
        name: body.split('class="errorlist', 1)[1].split("</ul>", 1)[0]
        for name, (_, body) in answers.items()
    }
    assert len(set(errors.values())) == 1, errors
    assert NOT_SHAREABLE in errors["ghost"]
