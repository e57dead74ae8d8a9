"""The audit gaps of issue 15: connection tests, user changes in the admin, key rotation, CLI.

Each event is made the way an operator makes it: a real admin client posting
the admin's forms, ``call_command`` running the real command in this process
(whose OS account is asserted, whatever ``$USER`` says), the connection test
through the API against a fake server that echoes secrets back, and through
the HTML page against the real PostgreSQL. The rows are then read back
through the audit API, the audit page and the admin, and searched for every
secret the flow handled.
"""

from __future__ import annotations

import json
import os
import pwd
import re
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.actor import Actor
from accounts.models import ActorKind, AuditEvent
from accounts.permissions import Level, Role
from accounts.services import sharing_set
from accounts.tokens import token_pair
from connectors.crypto import SecretDecryptError
from connectors.models import Connection
from connectors.services import connection_create
from pipelines.engine.attempts import task_run_claim
from pipelines.models import Execution, TaskRun
from pipelines.services import execution_create
from tests.factories import PASSWORD, pg_config
from tests.fakeservers import FakeServer, pg_error
from tests.http import assert_error, url
from tests.services import need_postgres

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache")]

User = get_user_model()

SECRET = "Audit-Gap-pw-5519"
# The OS account of this process, from its uid (what the audit trail must say).
OS_USER = pwd.getpwuid(os.getuid()).pw_name
CLI = f"cli:{OS_USER}"


@pytest.fixture(autouse=True)
def spoofed_login_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with a login name that is not the process's account.

    ``$USER`` and ``$LOGNAME`` are whatever the caller typed; the audit
    trail must name the account the command really runs as.
    """
    for name in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "mallory")


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    # No worker runs here: the commands' runs are created, not executed.
    monkeypatch.setattr("pipelines.engine.task_runs.enqueue_task_runs", lambda ids: None)
    monkeypatch.setattr("pipelines.engine.reaper.enqueue_task_runs", lambda ids: None)


def run(*args: Any) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def api(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_pair(user)['access_token']}")
    return client


def browser(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rows_text() -> str:
    """Every audit row, every field, as one text: what a secret must never be in."""
    return json.dumps(list(AuditEvent.objects.values()), default=str)


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


# ------------------------------------------------------------------ commands


def test_it_names_the_os_account_of_a_command_not_its_login_name(settings: Any) -> None:
    settings.FERNET_KEYS = [Fernet.generate_key().decode(), *settings.FERNET_KEYS]
    run("rotate_fernet_keys")
    [event] = events("rotate_keys")
    assert event.actor_name == CLI and "mallory" not in event.actor_name
    assert event.actor_kind == ActorKind.CLI and event.actor is None


def test_it_audits_a_key_rotation_without_a_key_or_a_secret(
    settings: Any, admin_user: Any, developer: Any
) -> None:
    conn = connection_create(
        name="shop",
        kind="postgresql",
        config={"host": "127.0.0.1", "database": "shop", "username": "etl", "password": SECRET},
        actor=Actor.of(developer),
    )
    old_keys = list(settings.FERNET_KEYS)
    new_key = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new_key, *old_keys]
    before = Connection.objects.get(pk=conn.pk).secrets
    assert "re-encrypted 1 connection(s)" in run("rotate_fernet_keys")
    after = Connection.objects.get(pk=conn.pk).secrets

    [event] = events("rotate_keys")
    assert event.details == {"connections": 1, "keys": 2}
    text = rows_text()
    for secret in (SECRET, new_key, *old_keys, before, after):
        assert secret not in text
    # Read back as an admin does, filtered by the kind of actor.
    listed = api(admin_user).get(url("audit-events?actor_kind=cli")).json()["results"]
    assert [(e["action"], e["actor"], e["actor_kind"]) for e in listed] == [
        ("rotate_keys", CLI, "cli")
    ]


def test_it_audits_no_rotation_that_failed_and_changes_nothing(
    settings: Any, developer: Any
) -> None:
    config = {"host": "127.0.0.1", "database": "shop", "username": "etl", "password": SECRET}
    settings.FERNET_KEYS = [Fernet.generate_key().decode()]
    connection_create(name="lost", kind="postgresql", config=config, actor=Actor.of(developer))
    settings.FERNET_KEYS = [Fernet.generate_key().decode()]  # its key is gone
    stored = dict(Connection.objects.values_list("name", "secrets"))
    with pytest.raises(SecretDecryptError):
        run("rotate_fernet_keys")
    assert dict(Connection.objects.values_list("name", "secrets")) == stored
    assert events("rotate_keys") == []


def test_it_audits_run_pipeline_and_backfill_as_the_os_account(
    make_pipeline: Any, no_broker: None
) -> None:
    pipeline = make_pipeline("daily", schedule="0 2 * * *")
    run("run_pipeline", "daily")
    run("backfill", "daily", "--start", "2026-01-01", "--end", "2026-01-03")
    executed = events("execute")
    assert [(e.actor_name, e.actor_kind, e.object_id) for e in executed] == [
        (CLI, ActorKind.CLI, str(pipeline.pk))
    ] * 4
    assert [e.details["trigger"] for e in executed] == ["manual"] + ["backfill"] * 3
    assert {e.details["execution_id"] for e in executed} == {
        str(pk) for pk in Execution.objects.values_list("pk", flat=True)
    }
    # Once the command is over, a run nobody asked for (a schedule's) is the
    # platform's again and is not audited.
    execution_create(pipeline=pipeline)
    assert len(events("execute")) == 4


def test_it_audits_import_pipelines_as_the_os_account(make_pipeline: Any, tmp_path: Path) -> None:
    make_pipeline("seed")
    (tmp_path / "a.json").write_text(
        json.dumps(
            [
                {"name": "seed", "description": "changed", "tasks": _tasks()},
                {"name": "fresh", "tasks": _tasks()},
            ]
        )
    )
    AuditEvent.objects.all().delete()  # the fixture's own rows
    assert "1 created, 1 updated" in run("import_pipelines", str(tmp_path))
    rows = [(e.action, e.object_repr, e.actor_name, e.actor_kind) for e in events_all()]
    assert sorted(rows) == [
        ("change", "seed", CLI, ActorKind.CLI),
        ("create", "fresh", CLI, ActorKind.CLI),
    ]


def test_it_audits_what_demo_creates_as_the_os_account(settings: Any, tmp_path: Path) -> None:
    settings.DATA_ROOT = tmp_path
    run("demo", "--rows", "20")
    made = {(e.action, e.object_type, e.actor_name, e.actor_kind) for e in events_all()}
    assert made == {
        ("create", "connection", CLI, ActorKind.CLI),
        ("create", "pipeline", CLI, ActorKind.CLI),
    }
    # Four connections, two pipelines (the python demo is off without PYTHON_TASK_MODULES).
    assert len(events_all()) == 6


def _tasks() -> list[dict[str, Any]]:
    return [{"name": "t1", "type": "sql", "connection": "wh", "sql": "SELECT 1"}]


def events_all() -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("id"))


def test_it_audits_the_admin_that_bootstrap_creates_never_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATADOG_ADMIN_USER", "boss")
    monkeypatch.delenv("DATADOG_ADMIN_PASSWORD", raising=False)
    out = run("bootstrap", "--noinput")
    password = re.search(r"created with password: (\S+)", out)
    assert password is not None
    [event] = events("create")
    assert (event.actor_name, event.actor_kind, event.object_type) == (CLI, ActorKind.CLI, "user")
    assert event.object_repr == "boss"
    assert event.details["state"]["groups"] == [Role.ADMIN.value]
    assert event.details["state"]["is_superuser"] is True
    text = rows_text()
    assert password.group(1) not in text and User.objects.get(username="boss").password not in text
    run("bootstrap", "--noinput")  # the admin exists: nothing changed, nothing recorded
    assert len(events("create")) == 1


def test_it_audits_a_reaper_pass_by_hand_only_when_it_changed_runs(
    make_pipeline: Any, no_broker: None
) -> None:
    pipeline = make_pipeline()
    execution = execution_create(pipeline=pipeline)
    task_run = execution.tasks.get()
    assert task_run_claim(task_id=task_run.pk, worker="w-lost") is not None
    run("reap")  # the worker is alive: nothing to do
    assert events("reap") == []
    TaskRun.objects.filter(pk=task_run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    run("reap")
    [event] = events("reap")
    assert (event.actor_name, event.actor_kind) == (CLI, ActorKind.CLI)
    assert event.details["expired"] == [str(task_run.pk)]
    assert event.details["counts"]["expired"] == 1


# ------------------------------------------------------------ the admin


@pytest.fixture
def boss(make_user: Any) -> Any:
    """An admin-role user (not a superuser) who manages users in the admin."""
    return make_user("boss", Role.ADMIN, is_staff=True)


def user_form(user: Any, **changes: Any) -> dict[str, Any]:
    """The admin change form of ``user`` as the browser posts it, with ``changes``."""
    data: dict[str, Any] = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "groups": [str(pk) for pk in user.groups.values_list("pk", flat=True)],
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "last_login_0": "",
        "last_login_1": "",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value != ""}


def test_it_audits_a_user_made_in_the_admin_never_the_password(boss: Any) -> None:
    client = browser(boss)
    new_password = "Fresh-admin-pw-7712"
    response = client.post(
        "/admin/auth/user/add/",
        {
            "username": "carol",
            "usable_password": "true",
            "password1": new_password,
            "password2": new_password,
        },
    )
    assert response.status_code == 302, response.content
    carol = User.objects.get(username="carol")
    [event] = events("create")
    assert (event.actor, event.actor_kind, event.object_id) == (boss, ActorKind.USER, str(carol.pk))
    assert event.details["state"]["groups"] == [] and event.details["state"]["is_active"] is True
    assert event.ip == "127.0.0.1"
    text = rows_text()
    assert new_password not in text and carol.password not in text


def test_it_audits_role_and_active_changes_in_the_admin(boss: Any, make_user: Any) -> None:
    carol = make_user("carol", Role.VIEWER)
    operator = Group.objects.get(name=Role.OPERATOR.value)
    client = browser(boss)
    response = client.post(
        f"/admin/auth/user/{carol.pk}/change/",
        user_form(carol, groups=[str(operator.pk)], is_active=""),
    )
    assert response.status_code == 302, response.content
    carol.refresh_from_db()
    assert not carol.is_active and list(carol.groups.values_list("name", flat=True)) == ["operator"]
    [event] = events("change")
    assert event.actor == boss and event.object_repr == "carol"
    assert event.details == {
        "changed": {"is_active": [True, False], "groups": [["viewer"], ["operator"]]}
    }
    # The same form posted again changes nothing and records nothing.
    client.post(f"/admin/auth/user/{carol.pk}/change/", user_form(carol))
    assert len(events("change")) == 1


def test_it_audits_a_password_reset_without_the_password_or_hash(boss: Any, make_user: Any) -> None:
    carol = make_user("carol", Role.VIEWER)
    new_password = "Reset-by-admin-pw-3301"
    response = browser(boss).post(
        f"/admin/auth/user/{carol.pk}/password/",
        {"usable_password": "true", "password1": new_password, "password2": new_password},
    )
    assert response.status_code == 302, response.content
    carol.refresh_from_db()
    assert carol.check_password(new_password)
    [event] = events("password_reset")
    assert (event.actor, event.object_id, event.details) == (boss, str(carol.pk), {"usable": True})
    text = rows_text()
    assert new_password not in text and PASSWORD not in text and carol.password not in text
    # A form that does not validate changes nothing and records nothing.
    browser(boss).post(
        f"/admin/auth/user/{carol.pk}/password/",
        {"usable_password": "true", "password1": "a-1", "password2": "b-2"},
    )
    assert len(events("password_reset")) == 1


def test_it_audits_users_deleted_in_the_admin_one_by_one_and_in_bulk(
    boss: Any, make_user: Any
) -> None:
    carol, dave, erin = (make_user(name, Role.VIEWER) for name in ("carol", "dave", "erin"))
    client = browser(boss)
    response = client.post(f"/admin/auth/user/{carol.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    response = client.post(
        "/admin/auth/user/",
        {"action": "delete_selected", "_selected_action": [dave.pk, erin.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not User.objects.filter(username__in=["carol", "dave", "erin"]).exists()
    deleted = events("delete")
    assert sorted(e.object_repr for e in deleted) == ["carol", "dave", "erin"]
    assert all(e.actor == boss and e.details["state"]["groups"] == ["viewer"] for e in deleted)


def test_it_audits_a_role_whose_permissions_change_in_the_admin(boss: Any) -> None:
    viewer = Group.objects.get(name=Role.VIEWER.value)
    before = set(viewer.permissions.values_list("pk", flat=True))
    granted = Permission.objects.get(
        content_type__app_label="pipelines", codename="operate_pipeline"
    )
    client = browser(boss)
    response = client.post(
        f"/admin/auth/group/{viewer.pk}/change/",
        {"name": "viewer", "permissions": [str(pk) for pk in before | {granted.pk}]},
    )
    assert response.status_code == 302, response.content
    [event] = events("change")
    assert (event.actor, event.object_type, event.object_repr) == (boss, "group", "viewer")
    old, new = event.details["changed"]["permissions"]
    assert set(new) - set(old) == {"pipelines.operate_pipeline"} and set(old) <= set(new)
    assert list(event.details["changed"]) == ["permissions"]

    extra = Group.objects.create(name="contractors")
    response = client.post(f"/admin/auth/group/{extra.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    [event] = events("delete")
    assert (event.object_repr, event.details) == (
        "contractors",
        {"state": {"name": "contractors", "permissions": []}},
    )
    page = browser(boss).get(reverse("audit_log"), {"object_type": "group"})
    assert "contractors" in page.content.decode()


def test_it_keeps_superusers_out_of_reach_and_audits_nothing_refused(
    boss: Any, make_user: Any
) -> None:
    root = make_user("root", Role.ADMIN, is_staff=True, is_superuser=True)
    client = browser(boss)
    changed = client.post(f"/admin/auth/user/{root.pk}/change/", user_form(root, is_active=""))
    password = client.post(
        f"/admin/auth/user/{root.pk}/password/",
        {"usable_password": "true", "password1": "Taken-over-1x", "password2": "Taken-over-1x"},
    )
    deleted = client.post(f"/admin/auth/user/{root.pk}/delete/", {"post": "yes"})
    assert (changed.status_code, password.status_code, deleted.status_code) == (403, 403, 403)
    root.refresh_from_db()
    assert root.is_active and root.check_password(PASSWORD)
    assert not AuditEvent.objects.filter(object_type="user").exists()


# ------------------------------------------------------- connection tests


def test_it_audits_a_connection_test_through_the_api_without_the_servers_words(
    developer: Any, operator: Any, admin_user: Any
) -> None:
    # The server is the attacker's: it answers with the password and a
    # banner of its own, and neither may reach the trail.
    words = f"password {SECRET} rejected by BANNER-4471"
    with FakeServer(pg_error(words)) as server:
        config = {
            "host": "127.0.0.1",
            "port": server.port,
            "database": "shop",
            "username": "etl",
            "password": SECRET,
            "connect_timeout": 3,
        }
        conn = connection_create(
            name="shop", kind="postgresql", config=config, actor=Actor.of(developer)
        )
        sharing_set(obj=conn, users={operator: Level.OPERATE}, groups={})
        response = api(operator).post(url(f"connections/{conn.pk}/test"))
    assert response.status_code == 200 and response.json()["ok"] is False
    assert "startup" in server.events  # the test did reach the server
    [event] = events("test")
    assert (event.actor, event.actor_kind, event.object_id) == (operator, "user", str(conn.pk))
    assert event.details["ok"] is False and event.details["kind"] == "postgresql"
    assert event.details["error"] == response.json()["error"] and event.details["error"]
    text = rows_text()
    assert SECRET not in text and "BANNER-4471" not in text
    listed = api(admin_user).get(url(f"audit-events?action=test&object_id={conn.pk}")).json()
    assert [(e["actor"], e["actor_kind"]) for e in listed["results"]] == [("op1", "user")]


def test_it_audits_no_connection_test_that_was_refused(developer: Any, viewer: Any) -> None:
    conn = connection_create(
        name="shop",
        kind="postgresql",
        config={"host": "127.0.0.1", "database": "shop", "username": "etl", "password": SECRET},
        actor=Actor.of(developer),
    )
    sharing_set(obj=conn, users={viewer: Level.VIEW}, groups={})
    assert api(viewer).post(url(f"connections/{conn.pk}/test")).status_code == 403
    assert events("test") == []


def test_it_audits_a_connection_test_from_the_page_on_the_real_postgresql(
    developer: Any,
) -> None:
    config = {**pg_config(need_postgres()), "password": SECRET}
    conn = connection_create(
        name="warehouse", kind="postgresql", config=config, actor=Actor.of(developer)
    )
    response = browser(developer).post(reverse("connection_test", args=[conn.pk]))
    assert response.status_code == 200
    [event] = events("test")
    assert (event.actor, event.object_repr) == (developer, "warehouse")
    assert event.details["ok"] is True and event.details["error"] is None
    assert event.details["latency_ms"] >= 0
    assert SECRET not in rows_text()


# ------------------------------------------------------- reading the trail


def test_it_shows_and_filters_the_kind_of_actor_everywhere(admin_user: Any, settings: Any) -> None:
    settings.FERNET_KEYS = [Fernet.generate_key().decode(), *settings.FERNET_KEYS]
    run("rotate_fernet_keys")
    Client().post(reverse("login"), {"username": "ghost", "password": "nope"})
    kinds = set(AuditEvent.objects.values_list("actor_kind", flat=True))
    assert {"cli", "anonymous"} <= kinds

    client = api(admin_user)
    cli_rows = client.get(url("audit-events?actor_kind=cli")).json()["results"]
    assert {(e["actor"], e["actor_kind"]) for e in cli_rows} == {(CLI, "cli")}
    anonymous = client.get(url("audit-events?actor_kind=anonymous")).json()["results"]
    assert {(e["actor"], e["action"]) for e in anonymous} == {("ghost", "login_failed")}
    assert client.get(url(f"audit-events?actor={CLI}")).json()["count"] == len(cli_rows)
    assert_error(client.get(url("audit-events?actor_kind=robot")), 400, "actor_kind")

    page = browser(admin_user).get(reverse("audit_log"), {"actor_kind": "cli"})
    assert page.status_code == 200
    body = page.content.decode()
    assert CLI in body and "command line" in body and "ghost" not in body
    # The page filters by the whole name, as the API does (accounts.selectors).
    page = browser(admin_user).get(reverse("audit_log"), {"actor": CLI})
    assert CLI in page.content.decode()

    admin_page = browser(admin_user).get(
        "/admin/accounts/auditevent/", {"actor_kind__exact": "cli"}
    )
    assert admin_page.status_code == 200
    body = admin_page.content.decode()
    assert CLI in body and "ghost" not in body


@pytest.mark.django_db(transaction=True)
def test_it_gives_rows_written_before_actor_kind_theirs(make_user: Any) -> None:
    """The migration reads the kind the old rows only implied."""
    user = make_user("carol", Role.VIEWER)
    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", "0001_initial")])
    old = executor.loader.project_state([("accounts", "0001_initial")]).apps
    event = old.get_model("accounts", "AuditEvent")
    rows = {
        "by_user": event.objects.create(action="login", actor_id=user.pk, actor_name="carol"),
        "deleted_user": event.objects.create(action="create", actor_name="gone"),
        "failed_login": event.objects.create(action="login_failed", actor_name="ghost"),
        "summary": event.objects.create(action="login_failed", details={"more": 3}),
        "platform": event.objects.create(action="create"),
    }
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    kinds = {name: AuditEvent.objects.get(pk=row.pk).actor_kind for name, row in rows.items()}
    assert kinds == {
        "by_user": "user",
        "deleted_user": "user",
        "failed_login": "anonymous",
        "summary": "anonymous",
        "platform": "system",
    }
