"""Role × action × sharing, generated from the SPEC §5 table.

Every cell is checked twice: through the API (404 when the user may not see
the object, 403 when they may see but not act, success otherwise) and
directly with ``accounts.permissions.can`` / ``visible``, so the API and the
one permission module agree with the SPEC and with each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group

from accounts.actor import Actor
from accounts.permissions import Action, Level, Role, can, visible
from accounts.services import sharing_set
from connectors.models import Connection
from pipelines.models import Execution, Pipeline
from pipelines.services import execution_cancel, execution_create
from tests.factories import sql_pipeline
from tests.http import url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache", "no_broker")]

# SPEC §5, as written: who may do what, per role.
SPEC_TABLE: dict[str, dict[str, str]] = {
    "view": {"viewer": "shared", "operator": "shared", "developer": "shared + own", "admin": "all"},
    "operate": {"viewer": "-", "operator": "shared", "developer": "shared + own", "admin": "all"},
    "change": {
        "viewer": "-",
        "operator": "-",
        "developer": "own + shared for edit",
        "admin": "all",
    },
    "use": {"viewer": "-", "operator": "-", "developer": "own + shared", "admin": "all"},
    # "Only owner/admin may share" (issue 5); the SPEC table has no row for it.
    "share": {"viewer": "-", "operator": "-", "developer": "own", "admin": "all"},
}
# The share level a "shared" cell needs. "operate" on a connection is the
# right to use it in a pipeline and to test it.
LEVEL_NEEDED = {
    "view": "view",
    "operate": "operate",
    "use": "operate",
    "change": "edit",
    "share": "-",
}
LEVELS = ["view", "operate", "edit"]

ROLES = ["viewer", "operator", "developer", "admin"]
# How the object relates to the user: they own it, it is not shared with
# them, or it is shared with them (or a group of theirs) at a level.
RELATIONS = ["own", "none"] + [f"{who}:{lvl}" for who in ("user", "group") for lvl in LEVELS]


def expected(action: str, role: str, relation: str) -> bool:
    """What SPEC §5 allows for this cell."""
    rule = SPEC_TABLE[action][role]
    if rule == "all":
        return True
    if rule == "-":
        return False
    if relation == "own":
        return "own" in rule
    if relation == "none" or "shared" not in rule:
        return False
    level = relation.split(":")[1]
    return LEVELS.index(level) >= LEVELS.index(LEVEL_NEEDED[action])


def test_it_reads_the_spec_table_as_intended() -> None:
    # A few cells spelled out, so a slip in ``expected`` cannot hide.
    assert expected("view", "viewer", "group:view")
    assert not expected("view", "viewer", "none")
    assert not expected("operate", "viewer", "user:edit")
    assert expected("operate", "operator", "user:operate")
    assert not expected("operate", "operator", "user:view")
    assert not expected("change", "developer", "user:operate")
    assert expected("change", "developer", "group:edit")
    assert expected("change", "developer", "own")
    assert not expected("share", "developer", "user:edit")
    assert expected("share", "admin", "none")


@pytest.fixture
def world(
    make_user: Callable[..., Any], sqlite_connection: Callable[..., Any]
) -> Callable[[str, str], dict[str, Any]]:
    """Build a subject with ``role`` and a connection + pipeline in ``relation`` to them."""

    def build(role: str, relation: str) -> dict[str, Any]:
        owner = make_user("owner", Role.DEVELOPER)
        subject = make_user("subject", Role(role))
        connection = sqlite_connection("wh", "wh.sqlite", user=owner)
        from pipelines.services import pipeline_create

        pipeline = pipeline_create(data=sql_pipeline("p1"), actor=Actor.of(owner))
        running = execution_create(pipeline=pipeline)
        finished = execution_cancel(execution=execution_create(pipeline=pipeline))
        if relation == "own":
            Pipeline.objects.filter(pk=pipeline.pk).update(created_by=subject)
            Connection.objects.filter(pk=connection.pk).update(created_by=subject)
        elif relation != "none":
            who, level = relation.split(":")
            if who == "user":
                users, groups = {subject: Level(level)}, {}
            else:
                team = Group.objects.create(name="team")
                subject.groups.add(team)
                users, groups = {}, {team: Level(level)}
            sharing_set(obj=pipeline, users=users, groups=groups)
            sharing_set(obj=connection, users=users, groups=groups)
        subject.refresh_from_db()
        return {
            "subject": subject,
            "pipeline": Pipeline.objects.get(pk=pipeline.pk),
            "connection": Connection.objects.get(pk=connection.pk),
            "running": running,
            "finished": Execution.objects.get(pk=finished.pk),
        }

    return build


def _outcome(allowed_view: bool, allowed: bool, ok: int) -> int:
    if not allowed_view:
        return 404
    return ok if allowed else 403


CELLS = [(role, relation) for role in ROLES for relation in RELATIONS]


@pytest.mark.parametrize(("role", "relation"), CELLS, ids=[f"{r}-{s}" for r, s in CELLS])
def test_it_applies_the_table_to_pipelines(
    world: Callable[[str, str], dict[str, Any]], api_client_for: Any, role: str, relation: str
) -> None:
    w = world(role, relation)
    user, pipeline = w["subject"], w["pipeline"]
    client = api_client_for(user)
    see = expected("view", role, relation)
    p, run, done = pipeline.pk, w["running"].pk, w["finished"].pk
    # (action of the SPEC table, request, status when allowed); delete last.
    cells: list[tuple[str, str, Callable[[], Any], int]] = [
        ("view", "GET pipeline", lambda: client.get(url(f"pipelines/{p}")), 200),
        ("view", "GET versions", lambda: client.get(url(f"pipelines/{p}/versions")), 200),
        ("view", "GET permissions", lambda: client.get(url(f"pipelines/{p}/permissions")), 200),
        ("view", "GET run", lambda: client.get(url(f"executions/{run}")), 200),
        ("view", "GET run status", lambda: client.get(url(f"executions/{run}/status")), 200),
        ("view", "GET logs", lambda: client.get(url(f"executions/{run}/tasks/t1/logs")), 200),
        ("operate", "execute", lambda: client.post(url(f"pipelines/{p}/execute")), 200),
        ("operate", "cancel", lambda: client.post(url(f"executions/{run}/cancel")), 200),
        ("operate", "rerun", lambda: client.post(url(f"executions/{done}/rerun")), 200),
        (
            "change",
            "PATCH",
            lambda: client.patch(url(f"pipelines/{p}"), {"description": "x"}, format="json"),
            200,
        ),
        (
            "share",
            "PUT permissions",
            lambda: client.put(url(f"pipelines/{p}/permissions"), {}, format="json"),
            200,
        ),
        ("change", "DELETE", lambda: client.delete(url(f"pipelines/{p}")), 204),
    ]
    wrong = []
    listed = {x["pipeline_id"] for x in client.get(url("pipelines")).json()["results"]}
    if listed != ({str(p)} if see else set()):
        wrong.append("list visibility")
    runs = {x["execution_id"] for x in client.get(url("executions")).json()["results"]}
    if (str(run) in runs) != see:
        wrong.append("executions list visibility")
    if visible(user, Pipeline.objects.all()).filter(pk=p).exists() != see:
        wrong.append("visible()")
    # A share that succeeds (owner or admin) clears the sharing, which only
    # ever granted these users less than they have, so later cells hold.
    for action, what, call, ok in cells:
        allowed = expected(action, role, relation)
        if can(user, Action(action), pipeline) != allowed:
            wrong.append(f"can({action}) is {not allowed}")
        want = _outcome(see, allowed, ok)
        status = call().status_code
        if status != want:
            wrong.append(f"{what}: {status}, expected {want}")
    assert not wrong, f"{role} with {relation}: {wrong}"


@pytest.mark.parametrize(("role", "relation"), CELLS, ids=[f"{r}-{s}" for r, s in CELLS])
def test_it_applies_the_table_to_connections(
    world: Callable[[str, str], dict[str, Any]], api_client_for: Any, role: str, relation: str
) -> None:
    w = world(role, relation)
    user, connection = w["subject"], w["connection"]
    client = api_client_for(user)
    see = expected("view", role, relation)
    c = connection.pk
    wrong = []
    if {x["id"] for x in client.get(url("connections")).json()["results"]} != (
        {str(c)} if see else set()
    ):
        wrong.append("list visibility")
    if visible(user, Connection.objects.all()).filter(pk=c).exists() != see:
        wrong.append("visible()")

    # use: a pipeline naming the connection. Roles that may not create get
    # 403; a connection the user may not use reads as unknown (400).
    may_use = expected("use", role, relation)
    if can(user, Action.USE, connection) != may_use:
        wrong.append(f"can(use) is {not may_use}")
    response = client.post(url("pipelines"), sql_pipeline("mine"), format="json")
    want = 201 if may_use else (403 if role in {"viewer", "operator"} else 400)
    if response.status_code != want:
        wrong.append(f"use in a pipeline: {response.status_code}, expected {want}")
    Pipeline.objects.filter(name="mine").delete()  # else the connection is in use

    cells: list[tuple[str, str, Callable[[], Any], int]] = [
        ("view", "GET", lambda: client.get(url(f"connections/{c}")), 200),
        ("view", "GET permissions", lambda: client.get(url(f"connections/{c}/permissions")), 200),
        ("operate", "test", lambda: client.post(url(f"connections/{c}/test")), 200),
        (
            "change",
            "PATCH",
            lambda: client.patch(url(f"connections/{c}"), {"description": "x"}, format="json"),
            200,
        ),
        (
            "share",
            "PUT permissions",
            lambda: client.put(url(f"connections/{c}/permissions"), {}, format="json"),
            200,
        ),
    ]
    # Delete last, once no pipeline uses the connection.
    cells.append(("change", "DELETE", lambda: client.delete(url(f"connections/{c}")), 204))
    for action, what, call, ok in cells:
        allowed = expected(action, role, relation)
        if can(user, Action(action), connection) != allowed:
            wrong.append(f"can({action}) is {not allowed}")
        if what == "DELETE":
            Pipeline.objects.filter(pk=w["pipeline"].pk).delete()
        want = _outcome(see, allowed, ok)
        status = call().status_code
        if status != want:
            wrong.append(f"{what}: {status}, expected {want}")
    assert not wrong, f"{role} with {relation}: {wrong}"
