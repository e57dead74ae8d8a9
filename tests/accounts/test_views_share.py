"""One sharing view (``accounts.views.share_view``) behind the pipeline and
connection pages' sharing forms: same answers through both URLs."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import resolve, reverse

from accounts.api import SharingView
from accounts.permissions import Level
from accounts.services import sharing_get
from accounts.views import share_view
from connectors.models import Connection
from tests.factories import share

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(owned: Any) -> dict[str, Any]:
    return {
        "pipeline": (owned, "pipeline_share", "pipeline_detail"),
        "connection": (Connection.objects.get(name="wh"), "connection_share", "connection_detail"),
    }


KINDS = ["pipeline", "connection"]


def test_both_urls_are_the_one_view(objects: dict[str, Any]) -> None:
    for obj, share_name, _ in objects.values():
        assert resolve(reverse(share_name, args=[obj.pk])).func is share_view
    # The API's too: one SharingView for both ``.../permissions``.
    for path in ("pipelines", "connections"):
        obj = objects[path[:-1]][0]
        view = resolve(f"/api/v1/{path}/{obj.pk}/permissions").func
        assert view.view_class is SharingView  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS)
def test_the_owner_shares_and_unshares(
    objects: dict[str, Any], kind: str, developer: Any, viewer: Any, client_for: Any
) -> None:
    obj, share_name, detail = objects[kind]
    client = client_for(developer)
    url = reverse(share_name, args=[obj.pk])
    response = client.post(url, {"principal_type": "user", "name": "view1", "level": "view"})
    assert response.status_code == 302
    assert response["Location"] == reverse(detail, args=[obj.pk]) + "#sharing"
    assert sharing_get(obj)["users"] == {viewer.get_username(): "view"}
    response = client.post(url, {"remove_user": viewer.get_username()})
    assert response.status_code == 302 and sharing_get(obj)["users"] == {}


@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_name_shows_the_page_with_the_error(
    objects: dict[str, Any], kind: str, developer: Any, client_for: Any
) -> None:
    obj, share_name, _ = objects[kind]
    response = client_for(developer).post(
        reverse(share_name, args=[obj.pk]), {"principal_type": "user", "name": "nobody"}
    )
    assert response.status_code == 400
    assert obj.name in response.content.decode()
    assert sharing_get(obj)["users"] == {}


@pytest.mark.parametrize("kind", KINDS)
def test_others_get_404_or_403(
    objects: dict[str, Any], kind: str, viewer: Any, other_developer: Any, client_for: Any
) -> None:
    obj, share_name, _ = objects[kind]
    url = reverse(share_name, args=[obj.pk])
    data = {"principal_type": "user", "name": "view1", "level": "view"}
    assert client_for(other_developer).post(url, data).status_code == 404
    share(obj, other_developer, Level.EDIT)
    assert client_for(other_developer).post(url, data).status_code == 403
    assert client_for(viewer).get(url).status_code == 405
