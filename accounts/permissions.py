"""The one answer to "may this user do X to this object" (SPEC §5).

A role (Django group) says what a user may do; sharing (guardian object
permissions) says to which objects. The UI, the API and the admin all call
``can`` and ``visible``; nothing else decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, cast

from django.core.exceptions import ValidationError
from django.db.models import Model, Q, QuerySet
from guardian.core import ObjectPermissionChecker
from guardian.shortcuts import get_objects_for_user

from core.errors import Forbidden, NotFound


class Role(StrEnum):
    ADMIN = "admin"
    DEVELOPER = "developer"
    OPERATOR = "operator"
    VIEWER = "viewer"


# Strongest first: a user in several groups has the strongest role.
ROLE_ORDER = [Role.ADMIN, Role.DEVELOPER, Role.OPERATOR, Role.VIEWER]


class Level(StrEnum):
    """Sharing levels; each includes the ones before it."""

    VIEW = "view"
    OPERATE = "operate"
    EDIT = "edit"


LEVEL_ORDER = [Level.VIEW, Level.OPERATE, Level.EDIT]


class Action(StrEnum):
    VIEW = "view"  # see the object, its runs and logs
    OPERATE = "operate"  # execute, cancel, rerun; for a connection: test it
    USE = "use"  # use a connection in a pipeline definition
    CHANGE = "change"  # change or delete
    SHARE = "share"  # change who the object is shared with


# guardian codenames per model and level. ``operate`` on a connection is the
# right to use and test it.
_PERMS: dict[str, dict[Level, str]] = {
    "pipeline": {
        Level.VIEW: "view_pipeline",
        Level.OPERATE: "operate_pipeline",
        Level.EDIT: "change_pipeline",
    },
    "connection": {
        Level.VIEW: "view_connection",
        Level.OPERATE: "use_connection",
        Level.EDIT: "change_connection",
    },
}

# The share level each role needs on a shared (not owned) object per action;
# None: the role may never do it. Owners who are developers may do everything.
_ROLE_NEEDS: dict[Role, dict[Action, Level | None]] = {
    Role.VIEWER: {
        Action.VIEW: Level.VIEW,
        Action.OPERATE: None,
        Action.USE: None,
        Action.CHANGE: None,
        Action.SHARE: None,
    },
    Role.OPERATOR: {
        Action.VIEW: Level.VIEW,
        Action.OPERATE: Level.OPERATE,
        Action.USE: None,
        Action.CHANGE: None,
        Action.SHARE: None,
    },
    Role.DEVELOPER: {
        Action.VIEW: Level.VIEW,
        Action.OPERATE: Level.OPERATE,
        Action.USE: Level.OPERATE,
        Action.CHANGE: Level.EDIT,
        Action.SHARE: None,  # only owners (and admins) share
    },
}


def perm_codename(model_name: str, level: Level) -> str:
    return _PERMS[model_name][level]


def levels_up_to(level: Level) -> list[Level]:
    return LEVEL_ORDER[: LEVEL_ORDER.index(level) + 1]


def role_of(user: Any) -> Role | None:
    """The user's strongest role, or None (inactive, anonymous or no group)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    cached: Role | None | bool = getattr(user, "_datadog_role", False)
    if cached is not False:
        return cast(Role | None, cached)
    names = set(user.groups.values_list("name", flat=True))
    role = next((r for r in ROLE_ORDER if r.value in names), None)
    user._datadog_role = role
    return role


def is_admin(user: Any) -> bool:
    return role_of(user) == Role.ADMIN


def can_create(user: Any) -> bool:
    """May the user create pipelines and connections?"""
    return role_of(user) in {Role.ADMIN, Role.DEVELOPER}


def _model_name(obj: Model) -> str:
    return obj._meta.model_name  # type: ignore[return-value]


def _is_owner(user: Any, obj: Model) -> bool:
    return getattr(obj, "created_by_id", None) == user.pk


def _checker(user: Any) -> ObjectPermissionChecker:
    """The user's guardian checker, kept on the user: it caches what it has read."""
    checker = getattr(user, "_datadog_checker", None)
    if checker is None:
        checker = ObjectPermissionChecker(user)
        user._datadog_checker = checker
    return checker


def share_levels_prefetch(user: Any, objs: Sequence[Model]) -> None:
    """Read the user's sharing of all ``objs`` (one model) at once.

    ``can`` on each of them then asks the database nothing: a definition may
    name thousands of connections, and one query each took seconds.
    """
    if objs and role_of(user) not in (None, Role.ADMIN):
        # Typed as a QuerySet, documented (and written) for any iterable of objects.
        _checker(user).prefetch_perms(cast(Any, objs))


def share_level(user: Any, obj: Model) -> Level | None:
    """The strongest level the object is shared with the user (directly or by group)."""
    perms = set(_checker(user).get_perms(obj))
    codes = _PERMS[_model_name(obj)]
    for level in reversed(LEVEL_ORDER):
        if codes[level] in perms:
            return level
    return None


def can(user: Any, action: Action | str, obj: Model) -> bool:
    """May ``user`` do ``action`` to ``obj`` (a Pipeline or Connection)?"""
    action = Action(action)
    role = role_of(user)
    if role is None:
        return False
    if role == Role.ADMIN:
        return True
    if role == Role.DEVELOPER and _is_owner(user, obj):
        return True
    needed = _ROLE_NEEDS[role][action]
    if needed is None:
        return False
    level = share_level(user, obj)
    return level is not None and LEVEL_ORDER.index(level) >= LEVEL_ORDER.index(needed)


def visible(
    user: Any, queryset: QuerySet[Any], action: Action | str = Action.VIEW
) -> QuerySet[Any]:
    """The objects of ``queryset`` on which ``user`` may do ``action``.

    Lists use this; it never raises, and a user with nothing shared gets an
    empty queryset.
    """
    action = Action(action)
    role = role_of(user)
    if role is None:
        return queryset.none()
    if role == Role.ADMIN:
        return queryset
    needed = _ROLE_NEEDS[role][action]
    condition = Q(created_by=user) if role == Role.DEVELOPER else Q(pk__in=[])
    if needed is not None:
        model_name = queryset.model._meta.model_name
        app_label = queryset.model._meta.app_label
        perms = [
            f"{app_label}.{_PERMS[model_name][lvl]}"
            for lvl in LEVEL_ORDER[LEVEL_ORDER.index(needed) :]
        ]
        shared = get_objects_for_user(
            user, perms, klass=queryset.model, any_perm=True, accept_global_perms=False
        ).values("pk")
        condition |= Q(pk__in=shared)
    return queryset.filter(condition)


def require(user: Any, action: Action | str, obj: Model) -> None:
    """Raise Forbidden (403) unless ``user`` may do ``action`` to ``obj``.

    Call it after fetching through ``visible`` (which gives 404 for objects
    the user may not see), so "exists but not yours to change" is a 403.
    """
    if not can(user, action, obj):
        raise Forbidden(f"you may not {Action(action).value} this {_model_name(obj)}")


def get_for(
    user: Any,
    queryset: QuerySet[Any],
    action: Action | str = Action.VIEW,
    *,
    via: str | None = None,
    **lookup: Any,
) -> Any:
    """The object of ``queryset`` matching ``lookup``, fetched for ``user`` to do ``action``.

    The one access path of the HTML views, the API (``accounts.api.ObjectView``)
    and the admin: NotFound (404) when it does not exist or the user may not
    see it, so a private object's existence never shows; Forbidden (403) when
    they may see it but not do ``action`` to it. ``via`` names the field of
    the object whose sharing decides (``"pipeline"`` for an execution). A
    malformed key (not a UUID, not a number) is a 404 like any unknown one.
    """
    model_name = queryset.model._meta.verbose_name
    if via is None:
        queryset = visible(user, queryset)
    elif not is_admin(user):
        # Admins see everything: no subquery for them.
        parents = queryset.model._meta.get_field(via).related_model._default_manager.all()
        queryset = queryset.filter(**{f"{via}__in": visible(user, parents)})
    try:
        obj = queryset.get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, TypeError, ValidationError):
        raise NotFound(f"{model_name} not found") from None
    require(user, action, getattr(obj, via) if via else obj)
    return obj


def require_create(user: Any) -> None:
    if not can_create(user):
        raise Forbidden("your role may not create pipelines or connections")


def require_admin(user: Any) -> None:
    if not is_admin(user):
        raise Forbidden("admins only")
