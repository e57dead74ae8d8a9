"""Writes for accounts: roles, sharing and the audit trail."""

from __future__ import annotations

import getpass
import logging
import os
import pwd
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Model, Q, QuerySet
from guardian.shortcuts import (
    assign_perm,
    get_groups_with_perms,
    get_users_with_perms,
    remove_perm,
)

from accounts.actor import SYSTEM, Actor
from accounts.models import ActorKind, AuditEvent
from accounts.permissions import (
    LEVEL_ORDER,
    Level,
    Role,
    is_admin,
    levels_up_to,
    perm_codename,
)
from core.batches import run_batches

logger = logging.getLogger(__name__)

# Model permissions per role group: what the admin site and model-level checks
# see. Object access is still decided per object by accounts.permissions.
ROLE_MODEL_PERMS: dict[Role, list[str]] = {
    Role.ADMIN: ["*"],
    Role.DEVELOPER: [
        "pipelines.add_pipeline",
        "pipelines.change_pipeline",
        "pipelines.delete_pipeline",
        "pipelines.view_pipeline",
        "pipelines.operate_pipeline",
        "pipelines.view_pipelineversion",
        "pipelines.view_execution",
        "pipelines.view_taskrun",
        "connectors.add_connection",
        "connectors.change_connection",
        "connectors.delete_connection",
        "connectors.view_connection",
        "connectors.use_connection",
    ],
    Role.OPERATOR: [
        "pipelines.view_pipeline",
        "pipelines.operate_pipeline",
        "pipelines.view_pipelineversion",
        "pipelines.view_execution",
        "pipelines.view_taskrun",
        "connectors.view_connection",
    ],
    Role.VIEWER: [
        "pipelines.view_pipeline",
        "pipelines.view_pipelineversion",
        "pipelines.view_execution",
        "pipelines.view_taskrun",
        "connectors.view_connection",
    ],
}


def roles_setup() -> list[Group]:
    """Create the four role groups with their model permissions (idempotent)."""
    groups = []
    for role, perms in ROLE_MODEL_PERMS.items():
        group, _ = Group.objects.get_or_create(name=role.value)
        if perms == ["*"]:
            wanted = list(Permission.objects.all())
        else:
            wanted = []
            for dotted in perms:
                app_label, codename = dotted.split(".")
                wanted.append(
                    Permission.objects.get(content_type__app_label=app_label, codename=codename)
                )
        group.permissions.set(wanted)
        groups.append(group)
    return groups


def user_set_role(*, user: Any, role: Role | None) -> None:
    """Put the user in exactly one role group (or none)."""
    role_groups = Group.objects.filter(name__in=[r.value for r in Role])
    user.groups.remove(*role_groups)
    if role is not None:
        group, _ = Group.objects.get_or_create(name=role.value)
        user.groups.add(group)
    for attr in ("_datadog_role", "_datadog_checker", "_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(attr, None)


# Who acts when no user is signed in: set around a management command
# (``audit_actor``), read by ``audit_record``. A context variable, so the
# services a command calls record the command's actor without each of them
# taking one more argument.
_cli_actor: ContextVar[str] = ContextVar("audit_cli_actor", default="")


def cli_actor_name() -> str:
    """``cli:<os user>``: the account running this process, as the audit trail names it.

    The name of the process's uid, not ``$USER``/``$LOGNAME`` (which anyone
    sets on the command line); ``getpass`` only when the uid has no passwd
    entry (a container run with an arbitrary uid), then the uid itself.
    """
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = str(uid)
    return f"cli:{name}"


@contextmanager
def audit_actor(name: str) -> Iterator[None]:
    """Audit events written inside without a user are by ``name`` (kind ``cli``)."""
    token = _cli_actor.set(name)
    try:
        yield
    finally:
        _cli_actor.reset(token)


def audit_cli_actor() -> str:
    """The command-line actor acting now (``cli:<os user>``), or ``""`` outside a command."""
    return _cli_actor.get()


def audit_record(
    *,
    action: str,
    obj: Model | None = None,
    details: dict[str, Any] | None = None,
    by: Actor = SYSTEM,
) -> AuditEvent:
    """Append one audit event by ``by``. Callers must never put a secret into ``details``.

    The actor recorded is, in this order: ``by.user`` (a signed-in user);
    someone not signed in (``by.anonymous``, or a ``by.name``: a failed
    login names the user name typed); the command line when a command runs
    (``audit_actor``); else the platform itself (``SYSTEM``).
    """
    actor, ip = by.user, by.ip
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    if actor is not None:
        kind, name = ActorKind.USER, actor.get_username()
    elif by.name or by.anonymous:
        kind, name = ActorKind.ANONYMOUS, by.name
    elif audit_cli_actor():
        kind, name = ActorKind.CLI, audit_cli_actor()
    else:
        kind, name = ActorKind.SYSTEM, ""
    event = AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_name=name[:150],
        actor_kind=kind,
        object_type=(obj._meta.model_name or "") if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        ip=ip,
        details=details or {},
    )
    logger.info("audit %s by %s on %s", action, name or "-", event.object_repr or "-")
    return event


def audit_prune(
    *, before: datetime, batch_size: int = 500, deadline: float | None = None, dry_run: bool = False
) -> tuple[int, bool]:
    """Delete audit events recorded before ``before``, oldest first (AUDIT_RETENTION_DAYS).

    ``batch_size`` events per statement and transaction, through the ``at``
    index, so the table is never locked for long. Returns the events
    deleted (or, with ``dry_run``, that would be) and whether none is left
    (False: ``deadline``, a ``time.monotonic()`` value, stopped it first).
    """
    old = AuditEvent.objects.filter(at__lt=before)
    if dry_run:
        return old.count(), True
    deleted = 0

    def step() -> int:
        nonlocal deleted
        ids = list(old.order_by("at", "id").values_list("pk", flat=True)[:batch_size])
        if ids:
            deleted += AuditEvent.objects.filter(pk__in=ids).delete()[0]
        return len(ids)

    complete = run_batches(step, batch_size=batch_size, deadline=deadline)
    return deleted, complete


# What the audit trail follows of an account: never its password (a
# password change is an event of its own, without the hash).
USER_AUDITED_FIELDS = ("username", "email", "is_active", "is_staff", "is_superuser")


def _perm_names(permissions: QuerySet[Permission]) -> list[str]:
    pairs = permissions.values_list("content_type__app_label", "codename")
    return sorted(f"{app}.{code}" for app, code in pairs)


def user_state(user: Any) -> dict[str, Any]:
    """The audited state of ``user``: its fields, groups (roles) and own permissions."""
    state: dict[str, Any] = {name: getattr(user, name) for name in USER_AUDITED_FIELDS}
    state["groups"] = sorted(user.groups.values_list("name", flat=True))
    state["user_permissions"] = _perm_names(user.user_permissions.all())
    return state


def group_state(group: Group) -> dict[str, Any]:
    """The audited state of a group (a role): its name and model permissions."""
    return {
        "name": group.name,
        "permissions": _perm_names(group.permissions.all()),
    }


def audit_state_change(
    *,
    obj: Model,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    actor: Actor = SYSTEM,
) -> AuditEvent | None:
    """Audit ``obj`` made (``before`` None: its state) or changed: each field as ``[old, new]``.

    Nothing is recorded for a save that changed nothing.
    """
    if before is None:
        return audit_record(action="create", obj=obj, by=actor, details={"state": after})
    changed = {
        key: [before.get(key), value] for key, value in after.items() if before.get(key) != value
    }
    if not changed:
        return None
    return audit_record(action="change", obj=obj, by=actor, details={"changed": changed})


def user_change_record(
    *, user: Any, before: dict[str, Any] | None, actor: Actor = SYSTEM
) -> AuditEvent | None:
    """Audit a user made (``before`` None) or changed (see ``audit_state_change``)."""
    return audit_state_change(obj=user, before=before, after=user_state(user), actor=actor)


def _level_of(perms: list[str], model_name: str) -> Level | None:
    for level in reversed(LEVEL_ORDER):
        if perm_codename(model_name, level) in perms:
            return level
    return None


# What users who cannot manage users are told about any name that cannot
# receive a share, whatever the reason: which user names exist is not theirs
# to learn (SPEC §10).
NOT_SHAREABLE = "no active user with a role has this name"


def sharing_users(
    names: Iterable[str], *, actor: Any, keep: Iterable[str] = ()
) -> tuple[dict[str, Any], dict[str, str]]:
    """``({name: user}, {name: why not})``: who ``names`` may be shared with.

    A share goes to an active user with a role; the names in ``keep`` (the
    object's current sharing, which the caller reads anyway) are accepted as
    they are. Admins, who manage users, are told why a name is refused;
    anyone else gets ``NOT_SHAREABLE`` for an unknown, inactive or role-less
    user alike (same answer, same queries).
    """
    user_model = get_user_model()
    wanted = list(dict.fromkeys(names))
    field = f"{user_model.USERNAME_FIELD}__in"
    existing = {u.get_username(): u for u in user_model.objects.filter(**{field: wanted})}
    roles = [role.value for role in Role]
    shareable = set(
        user_model.objects.filter(**{field: wanted}, is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__name__in=roles))
        .values_list(user_model.USERNAME_FIELD, flat=True)
    )
    shareable |= set(keep) & set(existing)
    told = is_admin(actor)
    users: dict[str, Any] = {}
    refused: dict[str, str] = {}
    for name in wanted:
        user = existing.get(name)
        if user is not None and name in shareable:
            users[name] = user
        elif not told:
            refused[name] = NOT_SHAREABLE
        elif user is None:
            refused[name] = "unknown user"
        else:
            refused[name] = "user is inactive" if not user.is_active else "user has no role"
    return users, refused


def sharing_get(obj: Model) -> dict[str, Any]:
    """``{"owner", "users": {username: level}, "groups": {name: level}}``."""
    model_name = obj._meta.model_name or ""
    # guardian is untyped: with attach_perms both are {object: [codename]}.
    users: Any = get_users_with_perms(obj, attach_perms=True, with_group_users=False)
    groups: Any = get_groups_with_perms(obj, attach_perms=True)
    owner = getattr(obj, "created_by", None)
    return {
        "owner": owner.get_username() if owner is not None else None,
        "users": {
            u.get_username(): lvl
            for u, perms in sorted(users.items(), key=lambda kv: kv[0].get_username())
            if (lvl := _level_of(perms, model_name))
        },
        "groups": {
            g.name: lvl
            for g, perms in sorted(groups.items(), key=lambda kv: kv[0].name)
            if (lvl := _level_of(perms, model_name))
        },
    }


@transaction.atomic
def sharing_set(
    *,
    obj: Model,
    users: dict[Any, Level],
    groups: dict[Group, Level],
    actor: Actor = SYSTEM,
) -> dict[str, Any]:
    """Replace who ``obj`` is shared with. ``users`` maps user objects to levels."""
    model_name = obj._meta.model_name or ""
    all_codes = [perm_codename(model_name, lvl) for lvl in LEVEL_ORDER]
    for user in get_users_with_perms(obj, with_group_users=False):
        for code in all_codes:
            remove_perm(code, user, obj)
    current_groups: Any = get_groups_with_perms(obj)
    for group in current_groups:
        for code in all_codes:
            remove_perm(code, group, obj)
    for user, level in users.items():
        for lvl in levels_up_to(Level(level)):
            assign_perm(perm_codename(model_name, lvl), user, obj)
    for group, level in groups.items():
        for lvl in levels_up_to(Level(level)):
            assign_perm(perm_codename(model_name, lvl), group, obj)
    result = sharing_get(obj)
    audit_record(
        action="share",
        obj=obj,
        by=actor,
        details={"users": result["users"], "groups": result["groups"]},
    )
    return result


def sharing_objects(obj: Model) -> tuple[dict[Any, Level], dict[Group, Level]]:
    """The current sharing of ``obj`` as ``sharing_set`` takes it (user and group objects)."""
    current = sharing_get(obj)
    user_model = get_user_model()
    users = {
        u: Level(current["users"][u.get_username()])
        for u in user_model.objects.filter(username__in=list(current["users"]))
    }
    groups = {
        g: Level(current["groups"][g.name])
        for g in Group.objects.filter(name__in=list(current["groups"]))
    }
    return users, groups


def sharing_add(
    *, obj: Model, principal: Any, level: Level, actor: Actor = SYSTEM
) -> dict[str, Any]:
    """Share ``obj`` with one user or group (``principal``) at ``level``, keeping the others."""
    users, groups = sharing_objects(obj)
    if isinstance(principal, Group):
        groups[principal] = level
    else:
        users[principal] = level
    return sharing_set(obj=obj, users=users, groups=groups, actor=actor)


def sharing_remove(
    *, obj: Model, user: str = "", group: str = "", actor: Actor = SYSTEM
) -> dict[str, Any]:
    """Stop sharing ``obj`` with the named user or group."""
    users, groups = sharing_objects(obj)
    users = {u: lvl for u, lvl in users.items() if u.get_username() != user}
    groups = {g: lvl for g, lvl in groups.items() if g.name != group}
    return sharing_set(obj=obj, users=users, groups=groups, actor=actor)
