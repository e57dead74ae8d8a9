"""Cron scheduling: intervals, catchup, exactly one run per interval under races."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection, connections

from pipelines.models import Execution, Pipeline
from pipelines.services import schedule_tick
from pipelines.services.schedule import pipeline_backfill

T0 = datetime(2026, 3, 1, 0, 0, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    # Scheduling is about which executions exist; running them is tested with workers.
    monkeypatch.setattr("pipelines.engine.task_runs.enqueue_task_runs", lambda ids: None)


def intervals(pipeline: Pipeline) -> list[tuple[datetime, datetime]]:
    return sorted(
        Execution.objects.filter(pipeline=pipeline, trigger="schedule").values_list(
            "data_interval_start", "data_interval_end"
        )
    )


@pytest.mark.django_db(transaction=True)
def test_it_creates_a_run_when_an_interval_ends(make_pipeline: Any) -> None:
    pipeline = make_pipeline("every5", schedule="*/5 * * * *", max_active_runs=100)
    assert schedule_tick(now=T0) == 0  # first sight: remembers the current interval
    assert schedule_tick(now=T0 + timedelta(minutes=4)) == 0
    assert schedule_tick(now=T0 + timedelta(minutes=5)) == 1
    ((start, end),) = intervals(pipeline)
    assert (start, end) == (
        datetime(2026, 3, 1, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 0, 5, tzinfo=UTC),
    )
    execution = Execution.objects.get(pipeline=pipeline)
    assert execution.parameters["logical_date"] == start.isoformat()
    assert execution.parameters["data_interval_end"] == end.isoformat()


@pytest.mark.django_db(transaction=True)
def test_it_catches_up_missed_intervals_only_when_asked(make_pipeline: Any) -> None:
    eager = make_pipeline("eager", schedule="0 * * * *", catchup=True, max_active_runs=100)
    lazy = make_pipeline("lazy", schedule="0 * * * *", catchup=False, max_active_runs=100)
    schedule_tick(now=T0)
    schedule_tick(now=T0 + timedelta(hours=5))  # 5 hours of downtime
    assert len(intervals(eager)) == 5
    assert len(intervals(lazy)) == 1
    assert intervals(lazy)[0][0] == datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_it_makes_exactly_one_run_per_interval_with_racing_schedulers(make_pipeline: Any) -> None:
    if connection.vendor == "sqlite":
        pytest.skip("row locks and concurrent writers need PostgreSQL (DATABASE_URL)")
    pipeline = make_pipeline("raced", schedule="* * * * *", catchup=True, max_active_runs=1000)
    schedule_tick(now=T0)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def scheduler() -> None:
        try:
            barrier.wait()
            for minute in range(1, 41):
                schedule_tick(now=T0 + timedelta(minutes=minute))
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    starts = [start for start, _ in intervals(pipeline)]
    assert len(starts) == len(set(starts)) == 40


@pytest.mark.django_db(transaction=True)
def test_it_backfills_both_ends_inclusive(make_pipeline: Any) -> None:
    pipeline = make_pipeline("bf", schedule="0 0 * * *", max_active_runs=100)
    runs = pipeline_backfill(
        pipeline=pipeline,
        start=datetime(2026, 1, 1, tzinfo=UTC),
        end=datetime(2026, 1, 3, tzinfo=UTC),
    )
    assert [r.data_interval_start.day for r in runs] == [1, 2, 3]
    assert all(r.trigger == "backfill" for r in runs)
