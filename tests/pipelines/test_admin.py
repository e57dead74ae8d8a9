"""Django admin: every model listed, pipelines edited and deleted through the services.

The django-q2 admins are read-only for everyone: a schedule's ``func`` is
code the workers run.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.models import DELETION, LogEntry
from django.test import Client
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Failure, Schedule
from guardian.models import UserObjectPermission

from accounts.actor import Actor
from accounts.models import AuditEvent
from accounts.permissions import Level, Role
from accounts.services import sharing_set
from pipelines.models import Execution, Pipeline, PipelineVersion
from pipelines.services import execution_create
from tests.factories import share


@pytest.fixture
def staff_admin(admin_user: Any) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.mark.django_db
def test_it_lists_every_registered_model(
    staff_admin: Client, make_pipeline: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr("pipelines.engine.task_runs.enqueue_task_runs", lambda ids: None)
    execution_create(pipeline=make_pipeline())
    for model in admin.site._registry:
        meta = model._meta
        response = staff_admin.get(f"/admin/{meta.app_label}/{meta.model_name}/")
        assert response.status_code == 200, f"{meta.label}: {response.status_code}"


@pytest.mark.django_db
def test_it_keeps_history_read_only(
    staff_admin: Client, make_pipeline: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr("pipelines.engine.task_runs.enqueue_task_runs", lambda ids: None)
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
    sharing_set(
        obj=pipeline, users={other_developer: Level.EDIT}, groups={}, actor=Actor.of(developer)
    )
    client = Client()
    client.force_login(other_developer)
    task = "{name: t1, type: sql, connection: wh, sql: 'SELECT 1'}"
    text = f"name: shared\ndescription: changed\ntasks:\n  - {task}\n"
    url = f"/admin/pipelines/pipeline/{pipeline.pk}/change/"
    response = client.post(url, {"definition_text": text})
    assert response.status_code == 302, response.content.decode()[-2000:]
    pipeline.refresh_from_db()
    assert pipeline.version == 2 and pipeline.description == "changed"


def delete_selected(client: Client, model: str, *objects: Any, confirm: bool = True) -> Any:
    """Post the admin's "delete selected" action, as its changelist form does."""
    data = {"action": "delete_selected", "_selected_action": [str(o.pk) for o in objects]}
    if confirm:
        data["post"] = "yes"
    return client.post(f"/admin/{model}/", data)


def sharing_rows(obj: Any) -> int:
    return UserObjectPermission.objects.filter(
        content_type__model=obj._meta.model_name, object_pk=str(obj.pk)
    ).count()


@pytest.mark.django_db
def test_it_bulk_deletes_pipelines_through_the_service(
    staff_admin: Client, admin_user: Any, viewer: Any, make_pipeline: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr("pipelines.engine.task_runs.enqueue_task_runs", lambda ids: None)
    first, second = make_pipeline("first"), make_pipeline("second")
    execution_create(pipeline=first)
    share(first, viewer, Level.VIEW)
    assert sharing_rows(first) == 1
    # The confirmation page offers the delete: versions and runs go with the
    # pipeline although no admin may delete them alone.
    page = delete_selected(staff_admin, "pipelines/pipeline", first, second, confirm=False)
    assert page.status_code == 200
    assert "Are you sure" in page.content.decode()
    response = delete_selected(staff_admin, "pipelines/pipeline", first, second)
    assert response.status_code == 302
    assert not Pipeline.objects.exists() and not Execution.objects.exists()
    audited = AuditEvent.objects.filter(action="delete", object_type="pipeline", actor=admin_user)
    assert sorted(audited.values_list("object_repr", flat=True)) == ["first", "second"]
    assert sharing_rows(first) == 0
    assert LogEntry.objects.filter(action_flag=DELETION).count() == 2


@pytest.mark.django_db
def test_it_deletes_one_pipeline_through_the_service(
    staff_admin: Client, admin_user: Any, viewer: Any, make_pipeline: Any
) -> None:
    pipeline = make_pipeline("single")
    share(pipeline, viewer, Level.VIEW)
    response = staff_admin.post(f"/admin/pipelines/pipeline/{pipeline.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Pipeline.objects.filter(pk=pipeline.pk).exists()
    assert AuditEvent.objects.filter(action="delete", object_id=str(pipeline.pk)).count() == 1
    assert sharing_rows(pipeline) == 0


@pytest.mark.django_db
def test_it_refuses_a_bulk_delete_including_a_pipeline_shared_for_viewing(
    developer: Any, other_developer: Any, make_pipeline: Any
) -> None:
    mine = make_pipeline("mine", user=developer)
    theirs = make_pipeline("theirs")
    Pipeline.objects.filter(pk=theirs.pk).update(created_by=other_developer)
    share(theirs, developer, Level.VIEW)
    client = Client()
    client.force_login(developer)
    page = delete_selected(client, "pipelines/pipeline", mine, theirs, confirm=False)
    assert "Cannot delete" in page.content.decode()
    assert delete_selected(client, "pipelines/pipeline", mine, theirs).status_code == 403
    single = client.post(f"/admin/pipelines/pipeline/{theirs.pk}/delete/", {"post": "yes"})
    assert single.status_code == 403
    assert Pipeline.objects.count() == 2
    assert not AuditEvent.objects.filter(action="delete").exists()


@pytest.fixture
def maintain_schedule(db: Any) -> Schedule:
    return Schedule.objects.create(
        name="datadog-maintain", func="pipelines.tasks.maintain", schedule_type=Schedule.MINUTES
    )


@pytest.mark.django_db
@pytest.mark.parametrize("superuser", [False, True], ids=["admin-role", "superuser"])
def test_it_refuses_to_add_or_change_a_django_q_schedule(
    make_user: Any, maintain_schedule: Schedule, superuser: bool
) -> None:
    user = make_user("boss", Role.ADMIN, is_staff=True, is_superuser=superuser)
    client = Client()
    client.force_login(user)
    evil = {
        "name": "x",
        "func": "os.system",
        "args": "'touch /tmp/owned'",
        "schedule_type": "O",
        "repeats": "-1",
    }
    assert client.get("/admin/django_q/schedule/add/").status_code == 403
    assert client.post("/admin/django_q/schedule/add/", evil).status_code == 403
    change = f"/admin/django_q/schedule/{maintain_schedule.pk}/change/"
    page = client.get(change)
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.post(change, evil).status_code == 403
    delete = f"/admin/django_q/schedule/{maintain_schedule.pk}/delete/"
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert list(Schedule.objects.values_list("func", flat=True)) == ["pipelines.tasks.maintain"]


@pytest.mark.django_db
def test_it_offers_no_resubmit_of_stored_tasks(staff_admin: Client) -> None:
    now = timezone.now()
    failed = Failure.objects.create(
        id="a" * 32,
        name="t",
        func="os.system",
        args=("true",),
        started=now,
        stopped=now,
        success=False,
    )
    broker = get_broker()
    queued = broker.queue_size()
    changelist = staff_admin.get("/admin/django_q/failure/")
    assert changelist.status_code == 200 and b"resubmit_task" not in changelist.content
    response = staff_admin.post(
        "/admin/django_q/failure/", {"action": "resubmit_task", "_selected_action": [failed.pk]}
    )
    assert response.status_code == 200  # no action form: the list again
    assert broker.queue_size() == queued
    assert Failure.objects.filter(pk=failed.pk).exists()
