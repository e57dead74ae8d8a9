"""Every page of the UI in Debian's Chromium: axe-core, phone width, screenshots.

With a seeded platform (the drop-zone demo run by a real worker: a sensor
waiting, then a python task's output and an asset event that starts the
asset-triggered export; runs in every state; connections of several kinds;
a watermark; audit events) each page is visited as a user who may see it, at
1400x900 and at 390x844. axe-core must find no serious or critical
violation at either width, and at phone width the page must not scroll
sideways. Screenshots go to ``$TMPDIR/datadog-ui-shots/pages`` (never
committed); the path is printed.
"""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from accounts.actor import Actor
from tests.e2e.conftest import (
    PHONE,
    UI_SHOTS,
    WIDE,
    customers_table,
    login,
    logout,
    serious_violations,
    snap,
)
from tests.workers import finished, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.timeout(600)]

SHOTS = UI_SHOTS / "pages"


class Pages:
    """Checks each page it is shown; the problems are asserted at the end, all at once."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.problems: list[str] = []
        self.seen: list[str] = []

    def visit(self, path: str, name: str) -> None:
        self.page.goto(self.base + path)
        self.check(name)

    def check(self, name: str) -> None:
        page = self.page
        page.set_viewport_size(WIDE)
        snap(page, name, SHOTS)
        self.seen.append(name)
        self.problems += [f"{name} (wide): {v}" for v in serious_violations(page)]
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(150)
        self.problems += [f"{name} (phone): {v}" for v in serious_violations(page)]
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            self.problems.append(f"{name} (phone): the page scrolls sideways ({width}px)")
        page.set_viewport_size(WIDE)


def _seed(team: dict[str, Any], settings: Any) -> dict[str, Any]:
    """The demo pipelines and connections, dev1's pipeline with runs in every state."""
    from django.core.management import call_command

    from pipelines.models import Watermark
    from pipelines.services import pipeline_create
    from tests.factories import make_execution, postgresql_connection, sql_task

    settings.PYTHON_TASK_MODULES = ["datadog_demo"]
    call_command("demo", "--rows", "50", stdout=StringIO())
    postgresql_connection(
        "pg_reporting", "postgresql://report@127.0.0.1:5432/reporting", user=team["dev"]
    )
    customers_table(Path(settings.DATA_ROOT) / "wh.sqlite", 30)
    orders = pipeline_create(
        data={
            "name": "orders_daily",
            "description": "Clean orders into the warehouse",
            "schedule": "0 2 * * *",
            "tags": ["sales", "nightly"],
            "tasks": [
                sql_task("extract"),
                sql_task("clean", depends_on=["extract"]),
                sql_task("totals", depends_on=["clean"]),
            ],
        },
        actor=Actor.of(team["dev"]),
    )
    Watermark.objects.create(
        pipeline=orders, task_name="extract", column="updated_at", value="2026-03-01 10:03:00"
    )
    runs = {
        status: make_execution(orders, status, ago=ago)
        for status, ago in (
            ("success", 7200),
            ("cancelled", 5400),
            ("cancelling", 90),
            ("running", 60),
            ("queued", 30),
        )
    }
    runs["failed"] = make_execution(
        orders,
        "failed",
        ago=600,
        error="totals: no such table: staging_orders",
        tasks={"extract": "success", "clean": "failed", "totals": "upstream_failed"},
    )
    return {"orders": orders, "runs": runs}


def test_every_page_passes_axe_fits_a_phone_and_is_photographed(
    page: Any,
    live_server: Any,
    workers: Callable[..., Any],
    team: dict[str, Any],
    settings: Any,
) -> None:
    from django.core.management import call_command

    from pipelines.models import Execution, Pipeline, TaskRunStatus
    from pipelines.services import execution_create

    seeded = _seed(team, settings)
    orders, runs = seeded["orders"], seeded["runs"]
    base = live_server.url
    pages = Pages(page, base)

    pages.visit("/login", "login")
    login(page, base, "dev1")
    pages.check("dashboard")
    pages.visit("/pipelines", "pipelines")
    pages.visit(f"/pipelines/{orders.pk}", "pipeline")
    pages.visit("/pipelines/new", "editor-new")
    page.locator("#editor-form .cm-content").wait_for()
    pages.check("editor-new")
    pages.visit(f"/pipelines/{orders.pk}/edit", "editor-edit")
    pages.visit("/runs", "runs")
    pages.visit(f"/runs/{runs['failed'].pk}", "run-failed")
    page.locator('#task-table tr[data-task="clean"] a.log-link').click()
    page.locator("#log-panel").wait_for()
    pages.check("run-log-panel")
    pages.visit(f"/runs/{runs['running'].pk}", "run-running")
    pages.visit(f"/pipelines/{orders.pk}/watermarks/extract/reset", "watermark-reset")

    # Backfill: the preview of the intervals it will create.
    page.goto(f"{base}/pipelines/{orders.pk}")
    page.get_by_label("From").fill("2026-01-01")
    page.get_by_label("To (inclusive)").fill("2026-01-03")
    page.get_by_role("button", name="Preview").click()
    page.locator("#backfill-intervals").wait_for()
    pages.check("backfill-preview")

    # Bulk action: the confirmation of what it will do to each selected run.
    page.goto(f"{base}/runs")
    for run in (runs["running"], runs["success"]):
        page.locator(f'input.run-select[value="{run.pk}"]').check()
    page.get_by_label("With the selected runs").select_option("cancel")
    page.get_by_role("button", name="Review…").click()
    page.locator("#bulk-results").wait_for()
    pages.check("bulk-confirm")

    # Sharing: the form on the pipeline page, and its refusal of an unknown name.
    page.goto(f"{base}/pipelines/{orders.pk}")
    page.get_by_label("User name or group name").fill("nobody_here")
    page.get_by_label("Level").select_option("view")
    page.get_by_role("button", name="Share", exact=True).click()
    page.get_by_text("nobody_here").first.wait_for()
    pages.check("sharing-refused")

    pages.visit("/connections", "connections")
    pages.visit(f"/connections/{team['conn'].pk}", "connection")
    pages.visit("/connections/new?kind=postgresql", "connection-new")
    pages.visit(f"/connections/{team['conn'].pk}/browse", "connection-browser")
    page.locator('#browser a[data-table="customers"]').click()
    page.locator("#sample-rows tbody tr").first.wait_for()
    pages.check("connection-browser-rows")
    pages.visit("/pipelines/00000000-0000-0000-0000-000000000000", "not-found")
    logout(page)

    # A real worker runs the drop-zone demo (the seeded runs above stay as they are
    # until here: the worker's reaper would settle the fake running ones).
    workers(env={"PYTHON_TASK_MODULES": "datadog_demo"})
    drop = execution_create(
        pipeline=Pipeline.objects.get(name="demo_drop_zone"), actor=Actor.of(team["admin"])
    )
    wait_for(
        lambda: drop.tasks.get(task_name="orders_dropped").status == TaskRunStatus.WAITING,
        timeout=60,
        what="the sensor waiting for the file",
    )

    # The admin sees the demo objects (no owner) and the audit log.
    login(page, base, "admin1")
    pages.visit(f"/runs/{drop.pk}", "run-sensor-waiting")
    assert call_command("demo", "--drop", stdout=StringIO()) is None
    assert finished(drop, timeout=90).status == "success", drop.error
    export = Pipeline.objects.get(name="demo_drop_export")
    wait_for(
        lambda: Execution.objects.filter(pipeline=export).exists(),
        timeout=60,
        what="the asset-triggered export",
    )
    triggered = Execution.objects.get(pipeline=export)
    finished(triggered, timeout=60)
    pages.visit(f"/runs/{drop.pk}", "run-python-output")
    page.locator('#task-table tr[data-task="summarize"] a.log-link').click()
    page.locator("#log-panel .log li").first.wait_for()
    pages.check("run-python-log")
    pages.visit(f"/runs/{triggered.pk}", "run-asset-triggered")
    pages.visit(f"/pipelines/{export.pk}", "pipeline-asset-triggered")
    pages.visit("/assets", "assets")
    pages.visit("/assets/demo_warehouse.main.drop_summary", "asset")
    pages.visit("/connections", "connections-admin")
    pages.visit("/audit", "audit")
    pages.visit("/nope", "not-found-path")

    print(f"\nscreenshots of {len(pages.seen)} pages: {SHOTS}")
    assert not pages.problems, "\n".join(pages.problems)
