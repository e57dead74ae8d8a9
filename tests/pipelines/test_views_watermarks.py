"""The pipeline page's watermarks: shown to whoever sees the pipeline, reset with the edit right."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import AuditEvent
from accounts.permissions import Level
from pipelines.models import Watermark
from tests.factories import share

pytestmark = pytest.mark.django_db


@pytest.fixture
def marked(owned: Any) -> Any:
    """What the engine commits when an incremental copy succeeds."""
    Watermark.objects.create(
        pipeline=owned, task_name="t1", column="updated_at", value="2026-03-01 10:03:00"
    )
    return owned


def _reset(pipeline: Any, task: str = "t1") -> str:
    return f"/pipelines/{pipeline.pk}/watermarks/{task}/reset"


def test_it_shows_the_watermarks_with_a_reset_link(
    marked: Any, developer: Any, client_for: Any
) -> None:
    page = client_for(developer).get(f"/pipelines/{marked.pk}").content.decode()
    assert 'id="watermarks"' in page
    assert "<code>updated_at</code>" in page and "<code>2026-03-01 10:03:00</code>" in page
    assert f'href="{_reset(marked)}"' in page


def test_it_shows_no_watermark_section_without_watermarks(
    owned: Any, developer: Any, client_for: Any
) -> None:
    page = client_for(developer).get(f"/pipelines/{owned.pk}").content.decode()
    assert 'id="watermarks"' not in page


def test_it_resets_a_watermark_after_confirmation(
    marked: Any, developer: Any, client_for: Any
) -> None:
    client = client_for(developer)
    confirm = client.get(_reset(marked))
    assert confirm.status_code == 200
    assert b"copies every row of its source again" in confirm.content
    assert Watermark.objects.filter(pipeline=marked).exists()
    response = client.post(_reset(marked))
    assert response.status_code == 302 and response["Location"] == f"/pipelines/{marked.pk}"
    assert not Watermark.objects.filter(pipeline=marked).exists()
    assert AuditEvent.objects.get(action="watermark_reset").details["task"] == "t1"
    page = client.get(f"/pipelines/{marked.pk}").content.decode()
    assert "Watermark of t1 reset" in page and 'id="watermarks"' not in page


def test_it_shows_a_viewer_the_watermarks_without_a_reset(
    marked: Any, viewer: Any, client_for: Any
) -> None:
    share(marked, viewer, Level.VIEW)
    client = client_for(viewer)
    page = client.get(f"/pipelines/{marked.pk}").content.decode()
    assert "<code>2026-03-01 10:03:00</code>" in page and _reset(marked) not in page
    assert client.get(_reset(marked)).status_code == 403
    assert client.post(_reset(marked)).status_code == 403
    assert Watermark.objects.filter(pipeline=marked).exists()


def test_it_hides_another_users_pipeline(
    marked: Any, other_developer: Any, client_for: Any
) -> None:
    client = client_for(other_developer)
    assert client.get(_reset(marked)).status_code == 404
    assert client.post(_reset(marked)).status_code == 404
    assert Watermark.objects.filter(pipeline=marked).exists()


def test_it_answers_404_for_a_task_without_a_watermark(
    marked: Any, developer: Any, client_for: Any
) -> None:
    assert client_for(developer).get(_reset(marked, "t2")).status_code == 404
    assert client_for(developer).post(_reset(marked, "t2")).status_code == 404
