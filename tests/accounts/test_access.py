"""The one access path: ``get_for`` (404 or 403 per role and sharing) and the
backend that makes ``user.has_perm(perm, obj)`` answer what ``can`` answers.

The subjects and the expected answers are the permissions matrix's: SPEC §5
as ``tests/accounts/test_permissions_matrix.py`` reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from accounts.backends import action_of
from accounts.permissions import Action, Level, can, get_for
from accounts.services import sharing_set
from connectors.models import Connection
from core.errors import Forbidden, NotFound
from pipelines.models import Execution, Pipeline
from tests.accounts.test_permissions_matrix import CELLS, expected, world

__all__ = ["world"]  # the fixture, shared with the matrix

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

ACTIONS = ["view", "operate", "use", "change", "share"]


def _answer(user: Any, queryset: Any, action: str, **lookup: Any) -> int:
    try:
        get_for(user, queryset, action, **lookup)
    except NotFound:
        return 404
    except Forbidden:
        return 403
    return 200


def _want(role: str, relation: str, action: str) -> int:
    if not expected("view", role, relation):
        return 404
    return 200 if expected(action, role, relation) else 403


@pytest.fixture(params=CELLS, ids=[f"{r}-{s}" for r, s in CELLS])
def cell(
    request: pytest.FixtureRequest, world: Callable[[str, str], dict[str, Any]]
) -> tuple[str, str, dict[str, Any]]:
    """One cell of the table: the role, the relation, and the world built for them."""
    role, relation = request.param
    return role, relation, world(role, relation)


def test_get_for_answers_404_when_invisible_and_403_when_refused(
    cell: tuple[str, str, dict[str, Any]],
) -> None:
    role, relation, w = cell
    user = w["subject"]
    pipelines, connections = Pipeline.objects.all(), Connection.objects.all()
    executions = Execution.objects.all()
    wrong = []
    for action in ACTIONS:
        want = _want(role, relation, action)
        got = {
            "pipeline": _answer(user, pipelines, action, pk=w["pipeline"].pk),
            "connection": _answer(user, connections, action, pk=w["connection"].pk),
            # An execution is seen and operated through its pipeline.
            "execution": _answer(user, executions, action, via="pipeline", pk=w["running"].pk),
        }
        wrong += [f"{kind} {action}: {got[kind]}" for kind in got if got[kind] != want]
    assert not wrong, f"{role} with {relation}, expected per action: {wrong}"


def test_get_for_returns_the_object(developer: Any, sqlite_connection: Any) -> None:
    connection = sqlite_connection("wh", "wh.sqlite", user=developer)
    got = get_for(developer, Connection.objects.all(), Action.CHANGE, pk=connection.pk)
    assert got == connection


@pytest.mark.parametrize("key", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", None])
def test_get_for_answers_404_for_a_malformed_or_unknown_key(admin_user: Any, key: Any) -> None:
    with pytest.raises(NotFound, match="pipeline not found"):
        get_for(admin_user, Pipeline.objects.all(), pk=key)


def test_get_for_says_what_was_refused(viewer: Any, developer: Any, sqlite_connection: Any) -> None:
    connection = sqlite_connection("wh", "wh.sqlite", user=developer)
    sharing_set(obj=connection, users={viewer: Level.EDIT}, groups={})
    with pytest.raises(Forbidden, match="you may not change this connection"):
        get_for(viewer, Connection.objects.all(), Action.CHANGE, pk=connection.pk)


def test_has_perm_answers_what_can_answers(cell: tuple[str, str, dict[str, Any]]) -> None:
    role, relation, w = cell
    user = w["subject"]
    perms = {
        "pipeline": ["view", "operate", "change", "delete"],
        "connection": ["view", "use", "change", "delete"],
    }
    wrong = []
    for kind, verbs in perms.items():
        obj = w[kind]
        for verb in verbs:
            perm = f"{obj._meta.app_label}.{verb}_{kind}"
            action = action_of(perm, obj)
            assert action is not None
            if user.has_perm(perm, obj) != can(user, action, obj):
                wrong.append(perm)
            if user.has_perm(perm, obj) != expected(action.value, role, relation):
                wrong.append(f"{perm} against the SPEC table")
    assert not wrong, f"{role} with {relation}: {wrong}"


def test_the_backend_has_no_opinion_on_other_objects_or_perms(
    developer: Any, sqlite_connection: Any
) -> None:
    connection = sqlite_connection("wh", "wh.sqlite", user=developer)
    assert action_of("pipelines.change_pipeline", connection) is None
    assert action_of("connectors.frobnicate_connection", connection) is None
    assert not developer.has_perm("pipelines.change_pipeline", connection)
    assert developer.has_perm("connectors.change_connection", connection)
    assert developer.has_perm("connectors.delete_connection", connection)
