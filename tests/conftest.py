"""Shared fixtures: users per role, factories, real worker clusters."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from accounts.actor import Actor
from accounts.permissions import Role
from accounts.services import roles_setup
from tests import factories
from tests.workers import WorkerCluster

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def roles(db: Any) -> None:
    roles_setup()


@pytest.fixture
def make_user(roles: None) -> Callable[..., Any]:
    def make(username: str, role: Role | None = Role.DEVELOPER, **extra: Any) -> Any:
        return factories.user(username, role, password=PASSWORD, **extra)

    return make


@pytest.fixture
def admin_user(make_user: Callable[..., Any]) -> Any:
    return make_user("admin1", Role.ADMIN, is_staff=True)


@pytest.fixture
def developer(make_user: Callable[..., Any]) -> Any:
    return make_user("dev1", Role.DEVELOPER, is_staff=True)


@pytest.fixture
def other_developer(make_user: Callable[..., Any]) -> Any:
    return make_user("dev2", Role.DEVELOPER, is_staff=True)


@pytest.fixture
def operator(make_user: Callable[..., Any]) -> Any:
    return make_user("op1", Role.OPERATOR)


@pytest.fixture
def viewer(make_user: Callable[..., Any]) -> Any:
    return make_user("view1", Role.VIEWER)


@pytest.fixture
def sqlite_connection(db: Any, settings: Any, tmp_path: Any) -> Callable[..., Any]:
    """Factory for SQLite connections in a per-test DATA_ROOT."""
    settings.DATA_ROOT = tmp_path
    return factories.sqlite_connection


SQL_PIPELINE: dict[str, Any] = {
    "name": "p1",
    "tasks": [factories.sql_task("t1")],
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


@pytest.fixture
def make_pipeline(sqlite_connection: Callable[..., Any]) -> Callable[..., Any]:
    """Factory: a pipeline of SQL tasks on an SQLite connection named ``wh``."""
    from connectors.models import Connection
    from pipelines.services import pipeline_create

    def make(
        name: str = "p1", tasks: list[dict[str, Any]] | None = None, user: Any = None, **extra: Any
    ) -> Any:
        if not Connection.objects.filter(name="wh").exists():
            sqlite_connection("wh", "wh.sqlite", user=user)
        return pipeline_create(data=sql_pipeline(name, tasks, **extra), actor=Actor.of(user))

    return make


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record task runs sent to the broker instead of sending them (no worker runs here).

    The ids sent by the task-run moves and by the reaper's re-send, in order;
    a test runs them itself (``pipelines.runner.run_task``) or only checks them.
    """
    sent: list[Any] = []
    monkeypatch.setattr("pipelines.engine.task_runs.enqueue_task_runs", sent.extend)
    monkeypatch.setattr("pipelines.engine.reaper.enqueue_task_runs", sent.extend)
    return sent


@pytest.fixture
def workers(transactional_db: Any, settings: Any) -> Iterator[Callable[..., WorkerCluster]]:
    """Start real qcluster processes on the test database; stopped after the test."""
    from tests.services import need_redis

    if settings.REDIS_URL:
        need_redis()
    clusters: list[WorkerCluster] = []

    def start(**kwargs: Any) -> WorkerCluster:
        cluster = WorkerCluster(**kwargs)
        clusters.append(cluster)
        return cluster

    yield start
    for cluster in clusters:
        cluster.stop()


def pytest_runtest_makereport(item: Any, call: Any) -> None:
    # On failure, attach the workers' logs: the only record of what they did.
    if call.when == "call" and call.excinfo is not None:
        start = item.funcargs.get("workers") if hasattr(item, "funcargs") else None
        if start is not None:
            for cell in getattr(start, "__closure__", None) or []:
                clusters = cell.cell_contents
                if isinstance(clusters, list):
                    for cluster in clusters:
                        if isinstance(cluster, WorkerCluster):
                            item.add_report_section(
                                "call", "qcluster log", cluster.output()[-20000:]
                            )
