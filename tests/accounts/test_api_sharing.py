"""``GET/PUT /pipelines/{id}/permissions`` and ``/connections/{id}/permissions``."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group

from accounts.models import AuditEvent
from accounts.permissions import Level
from accounts.services import sharing_set
from tests.http import assert_error, url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache", "no_broker")]


@pytest.fixture
def pipeline(make_pipeline: Any, developer: Any, wh: Any) -> Any:
    return make_pipeline("p1", user=developer)


@pytest.fixture
def analysts(db: Any) -> Group:
    return Group.objects.create(name="analysts")


def test_it_shows_the_sharing(api_client_for: Any, developer: Any, pipeline: Any) -> None:
    body = api_client_for(developer).get(url(f"pipelines/{pipeline.pk}/permissions")).json()
    assert body == {"owner": "dev1", "users": {}, "groups": {}}


def test_it_replaces_users_and_groups(
    api_client_for: Any, developer: Any, viewer: Any, operator: Any, analysts: Group, pipeline: Any
) -> None:
    client = api_client_for(developer)
    path = url(f"pipelines/{pipeline.pk}/permissions")
    body = {"users": {"view1": "view", "op1": "operate"}, "groups": {"analysts": "edit"}}
    response = client.put(path, body, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"owner": "dev1", **body}
    assert client.get(path).json() == {"owner": "dev1", **body}
    assert api_client_for(viewer).get(url(f"pipelines/{pipeline.pk}")).status_code == 200
    event = AuditEvent.objects.get(action="share")
    assert event.actor == developer and event.details["users"] == body["users"]
    # PUT replaces: what is left out is no longer shared.
    response = client.put(path, {"users": {"op1": "view"}}, format="json")
    assert response.json() == {"owner": "dev1", "users": {"op1": "view"}, "groups": {}}
    assert_error(api_client_for(viewer).get(url(f"pipelines/{pipeline.pk}")), 404)
    assert_error(api_client_for(operator).post(url(f"pipelines/{pipeline.pk}/execute")), 403)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"users": {"nobody": "view"}}, "users.nobody"),
        ({"groups": {"nogroup": "view"}}, "groups.nogroup"),
        ({"users": {"view1": "admin"}}, "users.view1"),
        ({"users": ["view1"]}, "users"),
        ({"groups": "analysts"}, "groups"),
    ],
)
def test_it_answers_400_with_paths_for_bad_sharing(
    api_client_for: Any, developer: Any, viewer: Any, pipeline: Any, body: Any, path: str
) -> None:
    response = api_client_for(developer).put(
        url(f"pipelines/{pipeline.pk}/permissions"), body, format="json"
    )
    assert_error(response, 400, path)


def test_it_lets_only_the_owner_or_an_admin_share(
    api_client_for: Any,
    developer: Any,
    other_developer: Any,
    operator: Any,
    admin_user: Any,
    pipeline: Any,
) -> None:
    path = url(f"pipelines/{pipeline.pk}/permissions")
    assert_error(api_client_for(other_developer).put(path, {}, format="json"), 404)  # outsider
    sharing_set(
        obj=pipeline, users={other_developer: Level.EDIT, operator: Level.OPERATE}, groups={}
    )
    for user in (other_developer, operator):
        client = api_client_for(user)
        assert client.get(path).status_code == 200  # may see who it is shared with
        assert_error(client.put(path, {}, format="json"), 403)
    assert api_client_for(admin_user).put(path, {"users": {}}, format="json").status_code == 200


def test_it_shares_connections_the_same_way(
    api_client_for: Any, developer: Any, other_developer: Any, wh: Any, analysts: Group
) -> None:
    path = url(f"connections/{wh.pk}/permissions")
    client = api_client_for(developer)
    assert_error(api_client_for(other_developer).get(path), 404)
    body = {"users": {"dev2": "operate"}, "groups": {"analysts": "view"}}
    response = client.put(path, body, format="json")
    assert response.status_code == 200 and response.json() == {"owner": "dev1", **body}
    assert api_client_for(other_developer).get(path).json()["users"] == {"dev2": "operate"}
    assert_error(api_client_for(other_developer).put(path, {}, format="json"), 403)
    assert_error(client.put(path, {"users": {"dev2": "own"}}, format="json"), 400, "users.dev2")
