"""Fixtures of the UI view tests: logged-in clients and run data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from pipelines.models import Execution, ExecutionStatus, Trigger

HTMX = {"HTTP_HX_REQUEST": "true"}


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
