"""``manage.py demo``: the demo pipelines, and the drop-zone demo run end to end.

The drop-zone demo shows the task types a team migrating from Airflow looks
for, in one flow: a sensor waits for a file, a copy loads it, a python step
(``datadog_demo.jobs``) summarizes it and records an asset event, and that
event starts a second pipeline.
"""

from __future__ import annotations

import csv
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from pipelines.models import Execution, Pipeline, TaskRunStatus, Trigger
from pipelines.services import execution_create
from tests.workers import finished, wait_for

ALL = {"demo_orders_daily", "demo_export_csv", "demo_drop_zone", "demo_drop_export"}


def demo(*args: str) -> str:
    out = StringIO()
    call_command("demo", "--rows", "50", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_leaves_the_python_demo_out_naming_the_variable(settings: Any, tmp_path: Path) -> None:
    settings.DATA_ROOT = tmp_path
    settings.PYTHON_TASK_MODULES = []
    out = demo()
    assert "set PYTHON_TASK_MODULES=datadog_demo" in out
    assert set(Pipeline.objects.values_list("name", flat=True)) == ALL - {
        "demo_drop_zone",
        "demo_drop_export",
    }


@pytest.mark.django_db
def test_it_adds_the_drop_zone_demo_when_python_tasks_may_call_it(
    settings: Any, tmp_path: Path
) -> None:
    settings.DATA_ROOT = tmp_path
    settings.PYTHON_TASK_MODULES = ["datadog_demo"]
    demo()
    out = demo()  # idempotent
    assert "manage.py demo --drop" in out
    assert set(Pipeline.objects.values_list("name", flat=True)) == ALL
    export = Pipeline.objects.get(name="demo_drop_export")
    assert export.definition["schedule"] == {"assets": ["demo_warehouse.main.drop_summary"]}
    assert not (tmp_path / "demo" / "inbox" / "orders_drop.csv").exists()


@pytest.mark.worker
@pytest.mark.timeout(180)
def test_the_drop_zone_waits_loads_summarizes_and_triggers_the_export(
    settings: Any, tmp_path: Path, workers: Any
) -> None:
    settings.DATA_ROOT = tmp_path
    settings.PYTHON_TASK_MODULES = ["datadog_demo"]
    demo()
    workers(env={"PYTHON_TASK_MODULES": "datadog_demo"})
    run = execution_create(pipeline=Pipeline.objects.get(name="demo_drop_zone"))

    def sensor_waiting() -> bool:
        return run.tasks.get(task_name="orders_dropped").status == TaskRunStatus.WAITING

    wait_for(sensor_waiting, timeout=60, what="the sensor waiting for the file")
    assert demo("--drop").startswith("dropped")
    assert finished(run, timeout=90).status == "success", run.error
    summarize = run.tasks.get(task_name="summarize")
    assert summarize.output == {"rows": 20, "statuses": 2}

    export = Pipeline.objects.get(name="demo_drop_export")
    wait_for(
        lambda: Execution.objects.filter(pipeline=export).exists(),
        timeout=60,
        what="the asset-triggered export",
    )
    triggered = Execution.objects.get(pipeline=export)
    assert triggered.trigger == Trigger.ASSET
    assert finished(triggered, timeout=60).status == "success", triggered.error
    with (tmp_path / "demo" / "out" / "drop_summary.csv").open() as handle:
        rows = {row["status"]: row for row in csv.DictReader(handle)}
    assert {status: int(row["orders"]) for status, row in rows.items()} == {
        "paid": 10,
        "refunded": 10,
    }
