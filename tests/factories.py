"""Object builders shared by the fixtures and the tests.

Users with a role, connections, the tasks of a definition: plain functions,
so a fixture, a test or a helper module builds them the same way. The
fixtures of ``tests/conftest.py`` (``make_user``, ``sqlite_connection``) call
these and add only what pytest provides (the database, a DATA_ROOT per test).
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.actor import Actor
from accounts.permissions import Level, Role, levels_up_to, perm_codename
from accounts.services import user_set_role
from connectors.models import Connection
from connectors.services import connection_create
from pipelines.models import Execution, ExecutionStatus, TaskRun, TaskRunStatus, Trigger

PASSWORD = "correct-horse-battery-staple"


def user(
    username: str, role: Role | None = Role.DEVELOPER, *, password: str = PASSWORD, **extra: Any
) -> Any:
    """A user with ``password`` holding ``role`` (None: no role at all)."""
    made = get_user_model().objects.create_user(username=username, password=password, **extra)
    user_set_role(user=made, role=role)
    return made


def sqlite_connection(name: str = "wh", path: str = "wh.sqlite", user: Any = None) -> Connection:
    """An SQLite connection on ``path`` under DATA_ROOT, owned by ``user``."""
    return connection_create(name=name, kind="sqlite", config={"path": path}, actor=Actor.of(user))


def pg_config(url: str) -> dict[str, Any]:
    """A PostgreSQL connection's config for the database of ``url`` (no password)."""
    parsed = urlparse(url)
    return {
        "host": parsed.hostname,
        "port": parsed.port or 5432,
        "database": parsed.path.lstrip("/"),
        "username": parsed.username or "postgres",
    }


def postgresql_connection(name: str, url: str, *, user: Any = None, **config: Any) -> Connection:
    """A PostgreSQL connection to the database of ``url``; ``config`` adds or overrides keys."""
    return connection_create(
        name=name, kind="postgresql", config={**pg_config(url), **config}, actor=Actor.of(user)
    )


def sql_task(
    name: str, sql: str | list[str] = "SELECT 1", connection: str = "wh", **extra: Any
) -> dict[str, Any]:
    """A ``sql`` task of a definition (``depends_on=[...]`` and other keys in ``extra``)."""
    return {"name": name, "type": "sql", "connection": connection, "sql": sql, **extra}


def share(obj: Any, user: Any, level: Level) -> None:
    """Share ``obj`` with ``user`` at ``level`` (guardian, as sharing_set does)."""
    from guardian.shortcuts import assign_perm

    for lvl in levels_up_to(level):
        assign_perm(perm_codename(obj._meta.model_name, lvl), user, obj)


def make_execution(
    pipeline: Any,
    status: str = ExecutionStatus.SUCCESS,
    *,
    ago: float = 60,
    tasks: dict[str, str] | None = None,
    error: str = "",
) -> Execution:
    """An execution row with task runs in the given states (no engine involved)."""
    now = timezone.now()
    version = pipeline.versions.order_by("-version").first()
    execution = Execution.objects.create(
        pipeline=pipeline,
        version=version,
        status=status,
        trigger=Trigger.MANUAL,
        started_at=now - timedelta(seconds=ago),
        error=error,
        ended_at=None
        if status in {"queued", "running", "cancelling"}
        else now - timedelta(seconds=ago - 5),
    )
    Execution.objects.filter(pk=execution.pk).update(created_at=now - timedelta(seconds=ago))
    names = [t["name"] for t in pipeline.definition["tasks"]]
    deps = {t["name"]: t.get("depends_on", []) for t in pipeline.definition["tasks"]}
    statuses = tasks or {
        name: (TaskRunStatus.SUCCESS if status == "success" else TaskRunStatus.PENDING)
        for name in names
    }
    TaskRun.objects.bulk_create(
        [
            TaskRun(
                execution=execution,
                task_name=name,
                definition_task=name,
                task_type="sql",
                status=statuses.get(name, TaskRunStatus.PENDING),
                depends_on=deps[name],
                started_at=now - timedelta(seconds=ago - i)
                if statuses.get(name) not in (None, "pending")
                else None,
                ended_at=now - timedelta(seconds=ago - i - 1)
                if statuses.get(name) in ("success", "failed")
                else None,
                metrics={"rows_read": 3, "rows_written": 3}
                if statuses.get(name) == "success"
                else {},
                error="boom: no such table" if statuses.get(name) == "failed" else "",
            )
            for i, name in enumerate(names)
        ]
    )
    execution.refresh_from_db()
    return execution


SQL_PIPELINE: dict[str, Any] = {
    "name": "p1",
    "tasks": [sql_task("t1")],
}


def sql_pipeline(
    name: str = "p1", tasks: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    data = copy.deepcopy(SQL_PIPELINE)
    data["name"] = name
    if tasks is not None:
        data["tasks"] = tasks
    data.update(extra)
    return data
