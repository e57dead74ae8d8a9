"""Shared fixtures: users per role, connections and pipelines, API and UI clients, workers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.actor import Actor
from accounts.permissions import Role
from accounts.services import roles_setup
from accounts.tokens import token_pair
from pipelines.models import Execution, ExecutionStatus, Trigger
from tests import factories
from tests.factories import PASSWORD, sql_pipeline
from tests.workers import WorkerCluster


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


@pytest.fixture
def isolated_cache(settings: Any) -> None:
    """A cache key prefix per test: throttle and lockout counters start at zero.

    The cache itself is shared with other test runs (Redis, or the file cache
    of the var dir), so it is never cleared, only namespaced.
    """
    caches = {name: dict(conf) for name, conf in django_settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = (
        f"{caches['default'].get('KEY_PREFIX', '')}t{uuid.uuid4().hex[:8]}"
    )
    settings.CACHES = caches


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def api_client_for() -> Callable[[Any], APIClient]:
    """An APIClient sending a fresh bearer access token of ``user``."""

    def make(user: Any) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_pair(user)['access_token']}")
        return client

    return make


@pytest.fixture
def wh(sqlite_connection: Callable[..., Any], developer: Any) -> Any:
    """The SQLite connection ``wh`` that pipelines of ``tests.factories.sql_pipeline`` use."""
    return sqlite_connection("wh", "wh.sqlite", user=developer)


@pytest.fixture
def client_for() -> Callable[[Any], Client]:
    """A test client logged in as ``user``."""

    def make(user: Any) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def owned(developer: Any, make_pipeline: Callable[..., Any]) -> Any:
    """A pipeline owned by ``developer`` with two tasks (t1 → t2)."""
    return make_pipeline(
        "p1",
        tasks=[
            {"name": "t1", "type": "sql", "connection": "wh", "sql": "SELECT 1"},
            {
                "name": "t2",
                "type": "sql",
                "connection": "wh",
                "sql": "SELECT 2",
                "depends_on": ["t1"],
            },
        ],
        user=developer,
        parameters={"min_amount": 100},
        tags=["sales"],
        schedule="0 2 * * *",
    )


@pytest.fixture
def many_executions(owned: Any) -> list[Execution]:
    """1,000 executions of ``owned`` (the bound for query-count tests)."""
    now = timezone.now()
    version = owned.versions.first()
    statuses = [ExecutionStatus.SUCCESS, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED]
    rows = [
        Execution(
            pipeline=owned,
            version=version,
            status=statuses[i % 3],
            trigger=Trigger.SCHEDULE,
            data_interval_start=now - timedelta(hours=i + 1),
            started_at=now - timedelta(hours=i),
            ended_at=now - timedelta(hours=i) + timedelta(seconds=5),
            error="x" if i % 3 == 1 else "",
            metrics={"duration_seconds": 5.0},
        )
        for i in range(1000)
    ]
    return Execution.objects.bulk_create(rows)


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
