"""``/pipelines/{id}/watermarks``: read with the view right, reset with the edit right."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import AuditEvent
from accounts.permissions import Level
from pipelines.models import Watermark
from tests.factories import share
from tests.http import assert_error, url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache", "no_broker")]


@pytest.fixture
def marks(owned: Any) -> Any:
    """What the engine commits when incremental copies succeed (pipelines.engine.attempts)."""
    Watermark.objects.create(
        pipeline=owned, task_name="t1", column="updated_at", value="2026-03-01 10:03:00+00:00"
    )
    Watermark.objects.create(pipeline=owned, task_name="t2", column="seq", value=30)
    return owned


def _path(pipeline: Any, task: str | None = None) -> str:
    base = f"pipelines/{pipeline.pk}/watermarks"
    return url(f"{base}/{task}" if task else base)


def test_it_lists_the_watermarks_of_a_pipeline(
    api_client_for: Any, developer: Any, marks: Any
) -> None:
    response = api_client_for(developer).get(_path(marks))
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"t1", "t2"}
    assert body["t1"]["column"] == "updated_at"
    assert body["t1"]["value"] == "2026-03-01 10:03:00+00:00"
    assert body["t2"] == {
        "column": "seq",
        "value": 30,
        "updated_at": body["t2"]["updated_at"],
    }
    assert body["t2"]["updated_at"].startswith("20")
    # The trailing slash is served the same.
    assert api_client_for(developer).get(_path(marks) + "/").json() == body


def test_it_answers_an_empty_map_for_a_pipeline_without_watermarks(
    api_client_for: Any, developer: Any, owned: Any
) -> None:
    response = api_client_for(developer).get(_path(owned))
    assert response.status_code == 200 and response.json() == {}


def test_it_resets_one_watermark_and_audits_it(
    api_client_for: Any, developer: Any, marks: Any
) -> None:
    client = api_client_for(developer)
    response = client.delete(_path(marks, "t1"))
    assert response.status_code == 204, response.content
    assert list(Watermark.objects.filter(pipeline=marks).values_list("task_name", flat=True)) == [
        "t2"
    ]
    assert set(client.get(_path(marks)).json()) == {"t2"}
    event = AuditEvent.objects.get(action="watermark_reset")
    assert event.actor_name == developer.username
    assert event.details == {
        "task": "t1",
        "column": "updated_at",
        "value": "2026-03-01 10:03:00+00:00",
    }


def test_it_answers_404_for_a_task_without_a_watermark(
    api_client_for: Any, developer: Any, marks: Any
) -> None:
    response = api_client_for(developer).delete(_path(marks, "nope"))
    body = assert_error(response, 404)
    assert "nope" in body["detail"]
    assert Watermark.objects.filter(pipeline=marks).count() == 2


def test_it_lets_a_viewer_read_but_not_reset(api_client_for: Any, viewer: Any, marks: Any) -> None:
    share(marks, viewer, Level.VIEW)
    client = api_client_for(viewer)
    assert client.get(_path(marks)).status_code == 200
    assert_error(client.delete(_path(marks, "t1")), 403)
    assert Watermark.objects.filter(pipeline=marks).count() == 2


def test_it_lets_a_developer_with_the_edit_share_reset(
    api_client_for: Any, other_developer: Any, marks: Any
) -> None:
    share(marks, other_developer, Level.OPERATE)
    assert_error(api_client_for(other_developer).delete(_path(marks, "t1")), 403)
    share(marks, other_developer, Level.EDIT)
    assert api_client_for(other_developer).delete(_path(marks, "t1")).status_code == 204


def test_it_hides_another_users_pipeline(
    api_client_for: Any, other_developer: Any, marks: Any
) -> None:
    client = api_client_for(other_developer)
    assert_error(client.get(_path(marks)), 404)
    assert_error(client.delete(_path(marks, "t1")), 404)
    assert_error(client.get(url("pipelines/not-a-uuid/watermarks")), 404)
    assert Watermark.objects.filter(pipeline=marks).count() == 2


def test_it_needs_a_login(anon: Any, marks: Any) -> None:
    assert anon.get(_path(marks)).status_code == 401
    assert anon.delete(_path(marks, "t1")).status_code == 401
