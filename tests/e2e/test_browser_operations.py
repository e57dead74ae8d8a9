"""Operations a click away, in Debian's Chromium with a real worker.

Backfill with its preview, a run's transition history, the connection
browser's sample rows and a bulk cancel with its confirmation. Screenshots at
1400x900 and at phone width go to a temporary folder (never committed).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from accounts.actor import Actor
from tests.e2e import conftest as shared
from tests.e2e.conftest import SLOW_SQL, UI_SHOTS, customers_table, login, serious_violations

pytestmark = [pytest.mark.browser, pytest.mark.worker]

SHOTS = UI_SHOTS / "operations"


def snap(page: Any, name: str) -> None:
    """The page at 1400x900 and at phone width, under ``SHOTS``."""
    shared.snap(page, name, SHOTS)


def wait_for(check: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _pipeline(team: dict[str, Any], name: str, sql: str, **extra: Any) -> Any:
    from pipelines.services import pipeline_create

    task = {"name": "step", "type": "sql", "connection": "wh", "sql": sql}
    return pipeline_create(
        data={"name": name, "tasks": [task], **extra}, actor=Actor.of(team["dev"])
    )


def test_backfill_with_a_preview_then_the_runs_history(
    page: Any, live_server: Any, workers: Callable[..., Any], team: dict[str, Any]
) -> None:
    from pipelines.models import Execution, Trigger

    pipeline = _pipeline(team, "nightly", "SELECT 1", schedule="0 2 * * *")
    workers()
    base = live_server.url
    login(page, base, "dev1")
    page.goto(f"{base}/pipelines/{pipeline.pk}")
    page.get_by_label("From").fill("2026-01-01")
    page.get_by_label("To (inclusive)").fill("2025-12-01")
    page.get_by_role("button", name="Preview").click()
    page.locator("#id_backfill-end_error").wait_for()
    assert "must not be before the start" in page.locator("#id_backfill-end_error").inner_text()
    page.get_by_label("To (inclusive)").fill("2026-01-03")
    page.get_by_role("button", name="Preview").click()
    intervals = page.locator("#backfill-intervals")
    intervals.wait_for()
    assert "3 intervals" in intervals.inner_text()
    assert intervals.locator("li").count() == 3
    assert not Execution.objects.filter(trigger=Trigger.BACKFILL).exists()
    snap(page, "backfill-preview")
    assert serious_violations(page) == []

    page.get_by_role("button", name="Create 3 runs").click()
    page.wait_for_url(re.compile(r".*/runs\?pipeline=nightly$"))
    assert "3 runs created" in page.locator("main").inner_text()
    runs = Execution.objects.filter(pipeline=pipeline, trigger=Trigger.BACKFILL)
    wait_for(lambda: runs.filter(status="success").count() == 3)
    first = runs.order_by("data_interval_start").first()
    assert first is not None

    # The run's history: every move with who made it; the attempt with its worker.
    page.goto(f"{base}/runs/{first.pk}")
    moves = page.locator("#transitions")
    moves.wait_for()
    text = moves.inner_text()
    assert "worker:" in text and "success" in text and "running" in text
    assert page.locator("#attempts tbody tr").count() == 1
    snap(page, "run-history")
    assert serious_violations(page) == []


def test_the_connection_browser_shows_sample_rows(
    page: Any, live_server: Any, team: dict[str, Any], settings: Any
) -> None:
    customers_table(Path(settings.DATA_ROOT) / "wh.sqlite", 40)
    base = live_server.url
    login(page, base, "dev1")
    page.goto(f"{base}/connections/{team['conn'].pk}")
    page.get_by_role("link", name="Browse data").click()
    page.locator('#browser a[data-table="customers"]').click()
    rows = page.locator("#sample-rows tbody tr")
    rows.first.wait_for()
    assert rows.count() == 20
    assert "customer 20" in page.locator("#sample-rows").inner_text()
    assert "customer 21" not in page.locator("#sample-rows").inner_text()
    snap(page, "connection-browser")
    assert serious_violations(page) == []

    # A viewer the connection is shared with sees it, but no browser.
    from accounts.permissions import Level
    from tests.factories import share

    share(team["conn"], team["viewer"], Level.VIEW)
    shared.logout(page)
    login(page, base, "view1")
    page.goto(f"{base}/connections/{team['conn'].pk}")
    page.get_by_role("heading", name=re.compile("wh")).wait_for()
    assert page.get_by_role("link", name="Browse data").count() == 0


def test_bulk_cancel_with_a_confirmation(
    page: Any, live_server: Any, workers: Callable[..., Any], team: dict[str, Any]
) -> None:
    from pipelines.models import Execution, Trigger
    from pipelines.services import execution_create

    slow = _pipeline(team, "slow", SLOW_SQL)
    quick = _pipeline(team, "quick", "SELECT 1")
    workers()
    # One after the other: both use the one SQLite file, whose write lock the slow task holds.
    done = execution_create(pipeline=quick, trigger=Trigger.MANUAL, actor=Actor.of(team["dev"]))
    wait_for(lambda: Execution.objects.get(pk=done.pk).status == "success")
    spinning = execution_create(pipeline=slow, trigger=Trigger.MANUAL, actor=Actor.of(team["dev"]))
    wait_for(lambda: spinning.tasks.filter(status="running").exists())
    base = live_server.url
    login(page, base, "dev1")
    page.goto(f"{base}/runs")
    for run in (spinning, done):
        page.locator(f'input.run-select[value="{run.pk}"]').check()
    page.get_by_label("With the selected runs").select_option("cancel")
    snap(page, "runs-selected")
    assert serious_violations(page) == []
    page.get_by_role("button", name="Review…").click()
    results = page.locator("#bulk-results")
    results.wait_for()
    assert results.locator(f'tr[data-run="{spinning.pk}"] .result').inner_text() == "will be done"
    assert (
        results.locator(f'tr[data-run="{done.pk}"] .result').inner_text()
        == "not in a state for that"
    )
    assert Execution.objects.get(pk=spinning.pk).status == "running"
    snap(page, "bulk-confirm")
    assert serious_violations(page) == []
    page.get_by_role("button", name="Cancel: 1 run").click()
    page.get_by_role("heading", name="Cancel: results").wait_for()
    assert results.locator(f'tr[data-run="{spinning.pk}"] .result').inner_text() == "done"
    wait_for(lambda: Execution.objects.get(pk=spinning.pk).status == "cancelled", 30)
    assert Execution.objects.get(pk=done.pk).status == "success"
    snap(page, "bulk-results")
    assert serious_violations(page) == []
