"""Connections in the admin are deleted through connection_delete (SPEC §10).

The single delete view and the "delete selected" action both write the
audit record, remove the sharing rows and refuse a connection that a
pipeline still uses, with a message instead of a 500.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.messages import get_messages
from django.test import Client
from guardian.models import UserObjectPermission

from accounts.models import AuditEvent
from accounts.permissions import Level
from connectors.models import Connection
from tests.factories import share


@pytest.fixture
def staff_admin(admin_user: Any) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def sharing_rows(connection: Connection) -> int:
    return UserObjectPermission.objects.filter(
        content_type__model="connection", object_pk=str(connection.pk)
    ).count()


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.mark.django_db
def test_it_bulk_deletes_through_the_service_and_keeps_a_used_connection(
    staff_admin: Client,
    admin_user: Any,
    viewer: Any,
    make_pipeline: Any,
    sqlite_connection: Any,
) -> None:
    make_pipeline("p1")  # uses "wh"
    used = Connection.objects.get(name="wh")
    spare = sqlite_connection("spare", "spare.sqlite")
    share(spare, viewer, Level.VIEW)
    share(used, viewer, Level.VIEW)
    selected = {"action": "delete_selected", "_selected_action": [str(used.pk), str(spare.pk)]}
    page = staff_admin.post("/admin/connectors/connection/", selected)
    assert page.status_code == 200 and "Are you sure" in page.content.decode()

    response = staff_admin.post("/admin/connectors/connection/", {**selected, "post": "yes"})

    assert response.status_code == 302
    said = messages_of(response)
    assert "wh was not deleted: used by p1" in said
    assert "Deleted 1 connection." in said
    assert list(Connection.objects.values_list("name", flat=True)) == ["wh"]
    deletes = AuditEvent.objects.filter(action="delete", object_type="connection")
    assert list(deletes.values_list("object_repr", "actor")) == [("spare", admin_user.pk)]
    assert sharing_rows(spare) == 0 and sharing_rows(used) == 1
    # The admin's own log names only what went.
    logged = LogEntry.objects.filter(action_flag=DELETION)
    assert list(logged.values_list("object_repr", flat=True)) == ["spare"]


@pytest.mark.django_db
def test_it_refuses_to_delete_a_used_connection_in_the_delete_view(
    staff_admin: Client, make_pipeline: Any
) -> None:
    make_pipeline("p1")
    used = Connection.objects.get(name="wh")
    url = f"/admin/connectors/connection/{used.pk}/delete/"
    assert staff_admin.get(url).status_code == 200

    response = staff_admin.post(url, {"post": "yes"})

    assert response.status_code == 302 and response["Location"] == url
    assert messages_of(response) == ["Not deleted: used by p1"]
    assert Connection.objects.filter(pk=used.pk).exists()
    assert not AuditEvent.objects.filter(action="delete").exists()
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


@pytest.mark.django_db
def test_it_deletes_an_unused_connection_in_the_delete_view(
    staff_admin: Client, admin_user: Any, viewer: Any, sqlite_connection: Any
) -> None:
    spare = sqlite_connection("spare", "spare.sqlite")
    share(spare, viewer, Level.OPERATE)
    response = staff_admin.post(f"/admin/connectors/connection/{spare.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Connection.objects.filter(pk=spare.pk).exists()
    audited = AuditEvent.objects.get(action="delete", object_type="connection")
    assert audited.actor == admin_user and audited.object_id == str(spare.pk)
    assert sharing_rows(spare) == 0


@pytest.mark.django_db
def test_it_refuses_a_developer_deleting_a_connection_shared_for_use(
    developer: Any, other_developer: Any, sqlite_connection: Any
) -> None:
    theirs = sqlite_connection("theirs", "theirs.sqlite", user=other_developer)
    share(theirs, developer, Level.OPERATE)
    client = Client()
    client.force_login(developer)
    selected = {"action": "delete_selected", "_selected_action": [str(theirs.pk)], "post": "yes"}
    assert client.post("/admin/connectors/connection/", selected).status_code == 403
    single = client.post(f"/admin/connectors/connection/{theirs.pk}/delete/", {"post": "yes"})
    assert single.status_code == 403
    assert Connection.objects.filter(pk=theirs.pk).exists()
    assert not AuditEvent.objects.filter(action="delete").exists()


@pytest.mark.django_db
def test_it_says_why_the_service_refused_a_connection_and_saves_nothing(
    staff_admin: Client, sqlite_connection: Any
) -> None:
    add = "/admin/connectors/connection/add/"
    listed = {"name": "meta", "kind": "postgresql", "description": ""}
    config = '{"host": "x.invalid,169.254.169.254", "database": "d", "username": "u"}'
    response = staff_admin.post(add, {**listed, "config_json": config})
    assert response.status_code == 302 and response["Location"] == add
    [said] = messages_of(response)
    assert said.startswith("Not saved: config.host:") and "one host only" in said
    assert not Connection.objects.filter(name="meta").exists()
    assert not AuditEvent.objects.filter(object_repr="meta").exists()

    wh = sqlite_connection("wh", "wh.sqlite")
    change = f"/admin/connectors/connection/{wh.pk}/change/"
    response = staff_admin.post(
        change,
        {"name": "wh", "kind": "sqlite", "description": "", "config_json": '{"path": "../x"}'},
    )
    assert response.status_code == 302 and response["Location"] == change
    assert messages_of(response)[-1].startswith("Not saved: config.path:")
    wh.refresh_from_db()
    assert wh.config == {"path": "wh.sqlite"}
