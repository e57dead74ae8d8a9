"""Connections by identity over the API (SPEC §9): rename, shared edits, in-use answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from accounts.actor import Actor
from accounts.permissions import Level
from accounts.services import sharing_set
from connectors.models import Connection
from pipelines.models import ConnectionBinding, Pipeline
from pipelines.services import pipeline_create
from tests.http import assert_error, url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("isolated_cache", "no_broker")]


def sql_task(name: str, connection: str) -> dict[str, Any]:
    return {"name": name, "type": "sql", "connection": connection, "sql": "SELECT 1"}


@pytest.fixture
def p1(wh: Connection, developer: Any) -> Pipeline:
    """dev1's pipeline on dev1's connection ``wh``."""
    return pipeline_create(
        data={"name": "p1", "tasks": [sql_task("t1", "wh")]}, actor=Actor.of(developer)
    )


@pytest.fixture
def edit_shared(p1: Pipeline, developer: Any, other_developer: Any) -> Pipeline:
    """p1 shared for edit with dev2, who may not use (nor see) dev1's ``wh``."""
    sharing_set(obj=p1, users={other_developer: Level.EDIT}, groups={}, actor=Actor.of(developer))
    return p1


def bound(pipeline: Pipeline) -> dict[str, Any]:
    pipeline.refresh_from_db()
    return dict(
        ConnectionBinding.objects.filter(
            version__pipeline=pipeline, version__version=pipeline.version
        ).values_list("name", "connection")
    )


def test_it_renames_a_used_connection(
    api_client_for: Callable[[Any], Any], developer: Any, wh: Connection, p1: Pipeline
) -> None:
    client = api_client_for(developer)
    response = client.patch(url(f"connections/{wh.pk}"), {"name": "warehouse"}, format="json")
    assert response.status_code == 200, response.content
    body = client.get(url(f"pipelines/{p1.pk}")).json()
    assert body["version"] == 2
    assert body["tasks"][0]["connection"] == "warehouse"
    versions = client.get(url(f"pipelines/{p1.pk}/versions")).json()["results"]
    # Version 1 keeps the name it was made with; it still binds the same connection.
    assert [v["definition"]["tasks"][0]["connection"] for v in versions] == ["warehouse", "wh"]
    assert bound(p1) == {"warehouse": wh.pk}


def test_it_lets_an_edit_share_change_a_pipeline_on_the_owners_connections(
    api_client_for: Callable[[Any], Any],
    other_developer: Any,
    wh: Connection,
    edit_shared: Pipeline,
) -> None:
    response = api_client_for(other_developer).patch(
        url(f"pipelines/{edit_shared.pk}"), {"description": "nightly"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2
    assert bound(edit_shared) == {"wh": wh.pk}


@pytest.mark.parametrize(
    ("level", "message"),
    [
        (Level.VIEW, "not allowed to use connection 'added'"),  # seen, not usable
        (None, "unknown connection 'added'"),  # not even seen
    ],
)
def test_it_needs_the_use_right_on_an_added_connection(
    level: Level | None,
    message: str,
    api_client_for: Callable[[Any], Any],
    developer: Any,
    other_developer: Any,
    sqlite_connection: Callable[..., Any],
    edit_shared: Pipeline,
) -> None:
    added = sqlite_connection("added", "added.sqlite", user=developer)
    if level is not None:
        sharing_set(obj=added, users={other_developer: level}, groups={}, actor=Actor.of(developer))
    tasks = [sql_task("t1", "wh"), sql_task("t2", "added")]
    response = api_client_for(other_developer).patch(
        url(f"pipelines/{edit_shared.pk}"), {"tasks": tasks}, format="json"
    )
    body = assert_error(response, 400, "tasks[1].connection")
    assert body["errors"] == [{"path": "tasks[1].connection", "message": message}]
    assert bound(edit_shared) == {"wh": Connection.objects.get(name="wh").pk}


def test_it_lets_the_editor_add_a_connection_they_may_use(
    api_client_for: Callable[[Any], Any],
    other_developer: Any,
    sqlite_connection: Callable[..., Any],
    edit_shared: Pipeline,
) -> None:
    own = sqlite_connection("own", "own.sqlite", user=other_developer)
    tasks = [sql_task("t1", "wh"), sql_task("t2", "own")]
    response = api_client_for(other_developer).patch(
        url(f"pipelines/{edit_shared.pk}"), {"tasks": tasks}, format="json"
    )
    assert response.status_code == 200, response.content
    assert bound(edit_shared) == {"wh": Connection.objects.get(name="wh").pk, "own": own.pk}


def test_it_names_only_visible_pipelines_when_refusing_a_delete(
    api_client_for: Callable[[Any], Any],
    developer: Any,
    other_developer: Any,
    admin_user: Any,
    wh: Connection,
    p1: Pipeline,
) -> None:
    sharing_set(
        obj=wh, users={other_developer: Level.OPERATE}, groups={}, actor=Actor.of(developer)
    )
    for name in ("secret_a", "secret_b"):
        pipeline_create(
            data={"name": name, "tasks": [sql_task("t1", "wh")]}, actor=Actor.of(other_developer)
        )

    body = assert_error(api_client_for(developer).delete(url(f"connections/{wh.pk}")), 409)
    assert body["errors"] == [{"path": "", "message": "used by p1 and 2 pipelines you cannot see"}]
    assert "secret" not in str(body)
    body = assert_error(api_client_for(admin_user).delete(url(f"connections/{wh.pk}")), 409)
    assert body["errors"][0]["message"] == "used by p1, secret_a and secret_b"
    assert Connection.objects.filter(pk=wh.pk).exists()
