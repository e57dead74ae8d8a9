"""Creating, changing, deleting and testing connections."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from guardian.models import GroupObjectPermission, UserObjectPermission

from accounts.actor import SYSTEM, Actor
from accounts.permissions import Action, can
from accounts.services import audit_record
from connectors import crypto
from connectors.base import test_connection
from connectors.models import Connection
from connectors.paths import connection_path_problem, lock_paths
from connectors.registry import KINDS, connector_class
from connectors.signals import connection_renamed
from core.errors import Conflict, InvalidInput
from core.names import NAME_RE, NAME_RULE


def _validate(*, name: Any, kind: Any, config: Any, existing: Connection | None) -> None:
    problems: list[tuple[str, str]] = []
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        problems.append(("name", NAME_RULE))
    if kind not in KINDS:
        problems.append(("kind", f"unknown kind {kind!r}; one of {', '.join(KINDS)}"))
    elif not isinstance(config, dict):
        problems.append(("config", "must be an object"))
    else:
        cls = connector_class(kind)
        # On change, stored secrets count as given (they are never sent back),
        # but only while the endpoint stays: a new host, port, database, user
        # or kind drops them, and the kind's rules then judge the config
        # without them.
        merged = dict(config)
        if existing is not None and not existing.endpoint_changed(kind, config):
            # The stored values themselves: a kind may check their shape (http headers).
            for key, value in crypto.decrypt_json(existing.secrets).items():
                merged.setdefault(key, value)
        for key, message in cls.validate_config(merged):
            problems.append((f"config.{key}" if key else "config", message))
        if not any(path.startswith("config") for path, _ in problems):
            # Before anything touches the filesystem at a new path (SPEC §10).
            lock_paths()
            overlap = connection_path_problem(
                kind=kind, config=config, exclude=existing.pk if existing else None
            )
            if overlap:
                problems.append(("config.path", overlap))
    if problems:
        raise InvalidInput("invalid connection", problems)


@transaction.atomic
def connection_create(
    *,
    name: Any,
    kind: Any,
    config: Any,
    description: str = "",
    actor: Actor = SYSTEM,
) -> Connection:
    _validate(name=name, kind=kind, config=config, existing=None)
    if Connection.objects.filter(name=name).exists():
        raise Conflict("a connection with this name exists", [("name", "already exists")])
    conn = Connection(
        name=name,
        kind=kind,
        description=description or "",
        created_by=actor.user,
    )
    conn.set_config(config, keep_secrets=False)
    try:
        with transaction.atomic():
            conn.save()
    except IntegrityError:
        raise Conflict("a connection with this name exists", [("name", "already exists")]) from None
    audit_record(action="create", obj=conn, by=actor, details={"kind": kind})
    return conn


@transaction.atomic
def connection_update(
    *,
    connection: Connection,
    name: Any = None,
    kind: Any = None,
    config: Any = None,
    description: str | None = None,
    actor: Actor = SYSTEM,
) -> Connection:
    """Change a connection; secrets left out keep their stored values.

    Unless the endpoint changes: a new kind, host, port, database or user
    name drops the stored secrets that the request does not send again.
    """
    conn = Connection.objects.select_for_update().get(pk=connection.pk)
    new_name = conn.name if name is None else name
    new_kind = conn.kind if kind is None else kind
    new_config = conn.config if config is None else config
    _validate(name=new_name, kind=new_kind, config=new_config, existing=conn)
    renamed_from: str | None = None
    if new_name != conn.name:
        if Connection.objects.filter(name=new_name).exists():
            raise Conflict("a connection with this name exists", [("name", "already exists")])
        renamed_from = conn.name
    # Secrets belong to the endpoint they were given for (SPEC §10).
    keep = not conn.endpoint_changed(new_kind, new_config)
    stored_before = set(conn.secret_keys_set())
    conn.name, conn.kind = new_name, new_kind
    if description is not None:
        conn.description = description
    conn.set_config(new_config, keep_secrets=keep)
    dropped = sorted(stored_before - set(conn.secret_keys_set()))
    conn.save()
    audit_record(
        action="change",
        obj=conn,
        by=actor,
        details={"secrets_dropped": dropped} if dropped else None,
    )
    if renamed_from is not None:
        # Pipeline versions bind connections by id, so a rename breaks no run;
        # the pipelines app renames the connection in current definitions.
        connection_renamed.send(
            sender=Connection, connection=conn, old_name=renamed_from, actor=actor
        )
    return conn


def _in_use_by(connection: Connection, *, user: Any) -> str | None:
    """``"used by p1 and 2 pipelines you cannot see"``, or None when no pipeline uses it.

    A pipeline uses the connections its current version binds (by id: a
    connection of the same name made later is another one). Only pipelines
    ``user`` may see are named (all for a system call, ``user`` None).
    """
    bindings = connection.pipeline_bindings.filter(
        version__version=F("version__pipeline__version")
    ).select_related("version__pipeline")
    pipelines = {
        b.version.pipeline
        for b in bindings.defer("version__definition", "version__pipeline__definition")
    }
    if not pipelines:
        return None
    names = sorted(p.name for p in pipelines if user is None or can(user, Action.VIEW, p))
    hidden = len(pipelines) - len(names)
    if hidden:
        names.append(f"{hidden} pipeline{'s' if hidden > 1 else ''} you cannot see")
    return "used by " + (f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0])


@transaction.atomic
def connection_delete(*, connection: Connection, actor: Actor = SYSTEM) -> None:
    # Locked before looking for users: a pipeline change binding it at the
    # same time either commits first (and is found) or waits and finds it gone.
    locked = Connection.objects.select_for_update().filter(pk=connection.pk).first()
    if locked is None:
        return  # deleted meanwhile
    in_use = _in_use_by(locked, user=actor.user)
    if in_use:
        raise Conflict("connection is used by pipelines", [("", in_use)])
    audit_record(action="delete", obj=connection, by=actor)
    for model in (UserObjectPermission, GroupObjectPermission):
        model.objects.filter(
            content_type__app_label="connectors",
            content_type__model="connection",
            object_pk=str(connection.pk),
        ).delete()
    connection.delete()


def connection_test(*, connection: Connection, actor: Actor = SYSTEM) -> dict[str, Any]:
    """``{ok, latency_ms, error}``; the error names the host and cause, never a secret.

    Recorded in the audit trail (who tested which connection, and the
    outcome in the same words): a test opens a connection to a host the
    user chose, with the stored credentials.
    """
    result = _connection_try(connection)
    audit_record(
        action="test",
        obj=connection,
        by=actor,
        # The answer's fields as they are: none of them holds a secret.
        details={"kind": connection.kind, **result},
    )
    return result


def _connection_try(connection: Connection) -> dict[str, Any]:
    # A connection saved before paths were isolated may overlap another's:
    # answered without touching the path, so the test tells nothing about it.
    overlap = connection_path_problem(
        kind=connection.kind, config=connection.config, exclude=connection.pk
    )
    if overlap:
        return {"ok": False, "latency_ms": None, "error": f"config.path {overlap}"}
    return test_connection(connection.connector())


@transaction.atomic
def connection_secrets_rotate() -> int:
    """Re-encrypt every connection's secrets with the first FERNET_KEYS key; how many.

    All or nothing: a secret no key can read fails the whole rotation
    (SecretDecryptError) and nothing is changed. Audited with the counts
    only, never a key or a secret.
    """
    count = 0
    for conn in Connection.objects.select_for_update().exclude(secrets=""):
        conn.secrets = crypto.rotate(conn.secrets)
        conn.save(update_fields=["secrets"])
        count += 1
    audit_record(
        action="rotate_keys",
        details={"connections": count, "keys": len(settings.FERNET_KEYS)},
    )
    return count
