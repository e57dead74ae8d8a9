"""accounts.permissions: the role × sharing table of SPEC §5, on real guardian rows.

Every case builds its users with real groups and shares with
``accounts.services.sharing_set`` (the service the UI, API and admin use), then
asks ``can`` / ``visible`` / ``require``: the same questions every view asks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.actor import Actor
from accounts.permissions import (
    Action,
    Level,
    Role,
    can,
    can_create,
    is_admin,
    levels_up_to,
    require,
    require_admin,
    require_create,
    role_of,
    share_level,
    share_levels_prefetch,
    visible,
)
from accounts.services import sharing_set, user_set_role
from connectors.models import Connection
from core.errors import Forbidden
from pipelines.models import Pipeline

pytestmark = pytest.mark.django_db


@pytest.fixture
def owned(make_pipeline: Callable[..., Any], developer: Any) -> Pipeline:
    """A pipeline owned by ``developer`` (dev1), on a connection dev1 owns too."""
    return make_pipeline("owned", user=developer)  # type: ignore[no-any-return]


def test_it_answers_each_action_of_an_owner_a_sharee_and_an_outsider(
    owned: Pipeline, developer: Any, other_developer: Any, operator: Any, viewer: Any
) -> None:
    # Owner (developer): everything; outsider developer: nothing.
    assert all(can(developer, action, owned) for action in Action)
    assert not any(can(other_developer, action, owned) for action in Action)
    sharing_set(
        obj=owned, users={other_developer: Level.EDIT}, groups={}, actor=Actor.of(developer)
    )
    fresh = type(other_developer).objects.get(pk=other_developer.pk)  # no cached checker
    assert can(fresh, Action.CHANGE, owned) and can(fresh, Action.OPERATE, owned)
    assert not can(fresh, Action.SHARE, owned)  # only owners and admins share
    # An operator with an edit share still may not change: the role caps the share.
    sharing_set(obj=owned, users={operator: Level.EDIT, viewer: Level.EDIT}, groups={})
    assert can(operator, Action.OPERATE, owned) and not can(operator, Action.CHANGE, owned)
    assert can(viewer, Action.VIEW, owned) and not can(viewer, Action.OPERATE, owned)


def test_it_needs_the_share_level_each_action_asks_for(
    owned: Pipeline, developer: Any, make_user: Callable[..., Any]
) -> None:
    by_level = {level: make_user(f"dev_{level}", Role.DEVELOPER) for level in Level}
    sharing_set(obj=owned, users=dict((u, lvl) for lvl, u in by_level.items()), groups={})
    answers = {
        level: {action.value for action in Action if can(user, action, owned)}
        for level, user in by_level.items()
    }
    assert answers == {
        Level.VIEW: {"view"},
        Level.OPERATE: {"view", "operate", "use"},
        Level.EDIT: {"view", "operate", "use", "change"},
    }
    assert share_level(by_level[Level.OPERATE], owned) == Level.OPERATE


def test_it_grants_through_a_group_share(
    owned: Pipeline, make_user: Callable[..., Any], developer: Any
) -> None:
    member = make_user("member", Role.OPERATOR)
    team = Group.objects.create(name="team-a")
    member.groups.add(team)
    assert not can(member, Action.VIEW, owned)
    sharing_set(obj=owned, users={}, groups={team: Level.OPERATE}, actor=Actor.of(developer))
    member = type(member).objects.get(pk=member.pk)
    assert share_level(member, owned) == Level.OPERATE
    assert can(member, Action.OPERATE, owned) and not can(member, Action.CHANGE, owned)
    assert list(visible(member, Pipeline.objects.all())) == [owned]


def test_it_gives_admins_everything_and_nobody_else_admin_rights(
    owned: Pipeline, admin_user: Any, developer: Any, make_user: Callable[..., Any]
) -> None:
    assert is_admin(admin_user) and all(can(admin_user, a, owned) for a in Action)
    require_admin(admin_user)
    with pytest.raises(Forbidden, match="admins only"):
        require_admin(developer)
    root = make_user("root", None, is_superuser=True)  # superuser with no group
    assert role_of(root) == Role.ADMIN
    assert list(visible(root, Pipeline.objects.all())) == [owned]


def test_it_refuses_users_without_a_usable_role(
    owned: Pipeline, make_user: Callable[..., Any], developer: Any
) -> None:
    nobody = make_user("nobody", None)
    inactive = make_user("gone", Role.ADMIN, is_active=False)
    for user in (nobody, inactive, AnonymousUser(), None):
        assert role_of(user) is None
        assert not can(user, Action.VIEW, owned)
        assert not can_create(user)
    sharing_set(obj=owned, users={nobody: Level.EDIT}, groups={}, actor=Actor.of(developer))
    assert not can(nobody, Action.VIEW, owned)  # a share without a role gives nothing
    assert visible(nobody, Pipeline.objects.all()).count() == 0


def test_it_takes_the_strongest_of_several_roles(make_user: Callable[..., Any]) -> None:
    user = make_user("both", Role.VIEWER)
    user.groups.add(Group.objects.get(name=Role.DEVELOPER))
    user = type(user).objects.get(pk=user.pk)
    assert role_of(user) == Role.DEVELOPER and can_create(user)
    user_set_role(user=user, role=Role.OPERATOR)
    user = type(user).objects.get(pk=user.pk)
    assert role_of(user) == Role.OPERATOR and not can_create(user)


def test_it_lists_only_what_the_action_allows(
    make_pipeline: Callable[..., Any], developer: Any, other_developer: Any, operator: Any
) -> None:
    mine = make_pipeline("mine", user=developer)
    # dev2 builds pipelines on dev1's connection, so it is shared for use first.
    sharing_set(
        obj=Connection.objects.get(name="wh"), users={other_developer: Level.OPERATE}, groups={}
    )
    theirs = make_pipeline("theirs", user=other_developer)
    viewed = make_pipeline("viewed", user=other_developer)
    sharing_set(obj=theirs, users={developer: Level.OPERATE, operator: Level.OPERATE}, groups={})
    sharing_set(obj=viewed, users={developer: Level.VIEW, operator: Level.VIEW}, groups={})
    names = lambda user, action: set(  # noqa: E731 - a one-line helper
        visible(user, Pipeline.objects.all(), action).values_list("name", flat=True)
    )
    assert names(developer, Action.VIEW) == {"mine", "theirs", "viewed"}
    assert names(developer, Action.OPERATE) == {"mine", "theirs"}
    assert names(developer, Action.CHANGE) == {"mine"}
    assert names(operator, Action.VIEW) == {"theirs", "viewed"}
    assert names(operator, Action.OPERATE) == {"theirs"}
    # A role that may never do the action sees an empty list, not an error.
    assert names(operator, Action.CHANGE) == set()
    assert names(operator, Action.SHARE) == set()
    assert mine.created_by == developer


def test_it_answers_connections_with_their_own_codenames(
    sqlite_connection: Callable[..., Any], developer: Any, other_developer: Any
) -> None:
    conn = sqlite_connection("src", "src.sqlite", user=other_developer)
    assert not can(developer, Action.USE, conn)
    sharing_set(obj=conn, users={developer: Level.OPERATE}, groups={})
    # The guardian checker is kept on the user object for the request: a new load sees the share.
    developer = type(developer).objects.get(pk=developer.pk)
    assert can(developer, Action.USE, conn) and not can(developer, Action.CHANGE, conn)
    assert list(visible(developer, Connection.objects.all(), Action.USE)) == [conn]


def test_it_raises_forbidden_naming_the_action_and_the_object(
    owned: Pipeline, viewer: Any, developer: Any
) -> None:
    sharing_set(obj=owned, users={viewer: Level.VIEW}, groups={}, actor=Actor.of(developer))
    require(viewer, Action.VIEW, owned)
    with pytest.raises(Forbidden, match="you may not operate this pipeline"):
        require(viewer, "operate", owned)
    with pytest.raises(Forbidden, match="may not create"):
        require_create(viewer)
    require_create(developer)
    with pytest.raises(ValueError):
        can(developer, "delete-everything", owned)  # unknown actions are not a silent "no"


def test_it_reads_the_shares_of_many_objects_in_one_query(
    sqlite_connection: Callable[..., Any], developer: Any, other_developer: Any
) -> None:
    conns = [sqlite_connection(f"c{i}", f"c{i}.sqlite", user=other_developer) for i in range(5)]
    sharing_set(obj=conns[0], users={developer: Level.OPERATE}, groups={})
    user = type(developer).objects.get(pk=developer.pk)
    role_of(user)  # the role is read (and kept) before counting
    share_levels_prefetch(user, conns)
    with CaptureQueriesContext(connection) as queries:
        answers = [can(user, Action.USE, c) for c in conns]
    assert answers == [True, False, False, False, False]
    assert len(queries) == 0


def test_it_orders_levels_so_each_includes_the_ones_before() -> None:
    assert levels_up_to(Level.VIEW) == [Level.VIEW]
    assert levels_up_to(Level.EDIT) == [Level.VIEW, Level.OPERATE, Level.EDIT]
