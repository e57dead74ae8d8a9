"""Django admin: every model listed, pipelines edited through the same validation."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.test import Client

from accounts.permissions import Level
from accounts.services import sharing_set
from pipelines.models import Execution, Pipeline, PipelineVersion
from pipelines.services import execution_create


@pytest.fixture
def staff_admin(admin_user: Any) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.mark.django_db
def test_it_lists_every_registered_model(
    staff_admin: Client, make_pipeline: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr("pipelines.services.task_run.enqueue_task_runs", lambda ids: None)
    execution_create(pipeline=make_pipeline())
    for model in admin.site._registry:
        meta = model._meta
        response = staff_admin.get(f"/admin/{meta.app_label}/{meta.model_name}/")
        assert response.status_code == 200, f"{meta.label}: {response.status_code}"


@pytest.mark.django_db
def test_it_keeps_history_read_only(
    staff_admin: Client, make_pipeline: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr("pipelines.services.task_run.enqueue_task_runs", lambda ids: None)
    execution = execution_create(pipeline=make_pipeline())
    url = f"/admin/pipelines/execution/{execution.pk}/change/"
    page = staff_admin.get(url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert staff_admin.post(url, {"status": "success"}).status_code == 403
    assert (
        staff_admin.post(
            f"/admin/pipelines/execution/{execution.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    execution.refresh_from_db()
    assert execution.status == "running"
    assert Execution.objects.count() == 1


@pytest.mark.django_db
def test_it_edits_a_pipeline_through_validation(staff_admin: Client, make_pipeline: Any) -> None:
    pipeline = make_pipeline("editable")
    url = f"/admin/pipelines/pipeline/{pipeline.pk}/change/"
    task = "{name: t1, type: sql, connection: wh, sql: 'SELECT 1', depends_on: [nope]}"
    bad = f"name: editable\ntasks:\n  - {task}\n"
    response = staff_admin.post(url, {"definition_text": bad})
    assert response.status_code == 200
    assert "tasks[0].depends_on[0]: unknown task" in response.content.decode()
    task = "{name: t1, type: sql, connection: wh, sql: 'SELECT 2'}"
    good = f"name: editable\ndescription: changed\ntasks:\n  - {task}\n"
    response = staff_admin.post(url, {"definition_text": good})
    assert response.status_code == 302
    pipeline.refresh_from_db()
    assert pipeline.version == 2 and pipeline.description == "changed"
    assert PipelineVersion.objects.filter(pipeline=pipeline).count() == 2


@pytest.mark.django_db
def test_it_shows_a_developer_only_their_pipelines(
    developer: Any, other_developer: Any, make_pipeline: Any
) -> None:
    mine = make_pipeline("mine", user=developer)
    theirs = make_pipeline("theirs")
    Pipeline.objects.filter(pk=theirs.pk).update(created_by=other_developer)
    client = Client()
    client.force_login(developer)
    listing = client.get("/admin/pipelines/pipeline/").content.decode()
    assert "mine" in listing and "theirs" not in listing
    assert client.get(f"/admin/pipelines/pipeline/{theirs.pk}/change/").status_code in {302, 404}
    assert client.get(f"/admin/pipelines/pipeline/{mine.pk}/change/").status_code == 200


@pytest.mark.django_db
def test_it_lets_an_edit_share_change_a_pipeline_on_the_owners_connections(
    developer: Any, other_developer: Any, make_pipeline: Any
) -> None:
    # dev2 may not use dev1's ``wh``; keeping it in a change needs no use right.
    pipeline = make_pipeline("shared", user=developer)
    sharing_set(obj=pipeline, users={other_developer: Level.EDIT}, groups={}, actor=developer)
    client = Client()
    client.force_login(other_developer)
    task = "{name: t1, type: sql, connection: wh, sql: 'SELECT 1'}"
    text = f"name: shared\ndescription: changed\ntasks:\n  - {task}\n"
    url = f"/admin/pipelines/pipeline/{pipeline.pk}/change/"
    response = client.post(url, {"definition_text": text})
    assert response.status_code == 302, response.content.decode()[-2000:]
    pipeline.refresh_from_db()
    assert pipeline.version == 2 and pipeline.description == "changed"
