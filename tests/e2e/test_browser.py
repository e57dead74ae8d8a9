"""The UI in a real browser (Debian's Chromium via Playwright) with a real worker.

Each test drives the live server like a person would and saves screenshots
of the pages it visits under tests/e2e/screenshots/ (git-ignored; a CI
artifact) so someone can look at them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from accounts.actor import Actor
from tests.e2e.conftest import BAD_DEFINITION, PHONE, SLOW_SQL, login, logout, shot

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_it_builds_runs_watches_and_shares_a_pipeline(
    page: Any, live_server: Any, workers: Callable[..., Any], team: dict[str, Any]
) -> None:
    from pipelines.models import Pipeline

    workers()
    base = live_server.url
    login(page, base, "dev1")
    shot(page, "dashboard-empty")

    # Editor: a typo in depends_on is reported at its path, as the user types.
    page.goto(f"{base}/pipelines/new")
    editor = page.get_by_label("Definition (YAML or JSON)")
    # The label names the CodeMirror editor (bundle/editor.js); every change
    # of its text runs the debounced check (tests/e2e/test_browser_editor.py types).
    editor.fill(BAD_DEFINITION[:-1])
    problem = page.locator('#problems li[data-path="tasks[1].depends_on[0]"]')
    problem.wait_for()
    assert "unknown task" in problem.inner_text()
    assert "line 14" in problem.inner_text()
    shot(page, "editor-error")

    editor.fill(BAD_DEFINITION.replace("[prepar]", "[prepare]"))
    editor.press("End")  # a keyup: the check runs again
    page.locator("#feedback .valid").wait_for()
    assert page.locator("#feedback svg [data-task=load]").count() == 1
    shot(page, "editor-valid")
    page.get_by_role("button", name="Create pipeline").click()
    page.wait_for_url(re.compile(r".*/pipelines/[0-9a-f-]{36}$"))
    pipeline = Pipeline.objects.get(name="orders_daily")
    assert pipeline.version == 1
    shot(page, "pipeline")

    # Run with a parameter; the run page turns to success by itself.
    page.get_by_label("min_amount").fill("250")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}$"))
    page.evaluate("window.__same_page = true")
    page.locator('#run-live[data-status="success"]').wait_for(timeout=60_000)
    assert page.evaluate("window.__same_page === true"), "the page reloaded"
    assert page.locator('#task-table tr[data-task="load"] .badge').inner_text() == "success"
    shot(page, "run-success")

    # The task log opens in the run page.
    page.locator('#task-table tr[data-task="load"] a.log-link').click()
    page.locator("#log-panel .log li").first.wait_for()
    assert "row(s) affected" in page.locator("#log-panel .log").inner_text()
    shot(page, "run-log")

    # Share with the viewer, who then sees the pipeline but no Run button.
    page.goto(f"{base}/pipelines/{pipeline.pk}")
    page.get_by_label("User name or group name").fill("view1")
    page.get_by_label("Level").select_option("view")
    page.get_by_role("button", name="Share", exact=True).click()
    page.locator("#sharing").get_by_text("view1").wait_for()
    shot(page, "pipeline-shared")
    logout(page)
    login(page, base, "view1")
    page.goto(f"{base}/pipelines/{pipeline.pk}")
    page.get_by_role("heading", name=re.compile("orders_daily")).wait_for()
    assert page.get_by_role("button", name="Run", exact=True).count() == 0
    assert page.get_by_role("link", name="Edit definition").count() == 0
    shot(page, "pipeline-as-viewer")


def test_it_cancels_a_long_run(
    page: Any, live_server: Any, workers: Callable[..., Any], team: dict[str, Any]
) -> None:
    from pipelines.services import pipeline_create

    pipeline = pipeline_create(
        data={
            "name": "slow",
            "tasks": [
                {"name": "spin", "type": "sql", "connection": "wh", "sql": SLOW_SQL},
                {
                    "name": "after",
                    "type": "sql",
                    "connection": "wh",
                    "sql": "SELECT 1",
                    "depends_on": ["spin"],
                },
            ],
        },
        actor=Actor.of(team["dev"]),
    )
    workers()
    base = live_server.url
    login(page, base, "dev1")
    page.goto(f"{base}/pipelines/{pipeline.pk}")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}$"))
    page.locator('#task-table tr[data-task="spin"] .badge.s-running').wait_for(timeout=60_000)
    page.locator('#task-table tr[data-task="spin"] a.log-link').click()
    page.locator("#log-panel .log .tail").wait_for()  # the log is being followed
    shot(page, "run-running")
    page.get_by_role("button", name="Cancel run").click()
    page.locator('#run-live[data-status="cancelled"]').wait_for(timeout=30_000)
    assert page.locator('#task-table tr[data-task="after"] .badge').inner_text() == "cancelled"
    assert page.get_by_role("button", name="Cancel run").count() == 0
    assert page.get_by_role("button", name="Rerun failed tasks").count() == 1
    shot(page, "run-cancelled")


def _seed(team: dict[str, Any]) -> list[Any]:
    """A few pipelines with runs in every state, so the pages have something to show."""
    from pipelines.services import pipeline_create
    from tests.factories import make_execution

    def sql(name: str, deps: list[str] | None = None) -> dict[str, Any]:
        task = {"name": name, "type": "sql", "connection": "wh", "sql": "SELECT 1"}
        return {**task, "depends_on": deps} if deps else task

    orders = pipeline_create(
        data={
            "name": "orders_daily",
            "description": "Clean orders into the warehouse",
            "schedule": "0 2 * * *",
            "tags": ["sales", "nightly"],
            "tasks": [
                sql("extract"),
                sql("clean", ["extract"]),
                sql("totals", ["clean"]),
                sql("check_totals", ["totals"]),
                sql("notify", ["clean"]),
            ],
        },
        actor=Actor.of(team["dev"]),
    )
    customers = pipeline_create(
        data={
            "name": "customers_sync",
            "description": "Customers from the shop",
            "tags": ["crm"],
            "schedule": "*/15 * * * *",
            "tasks": [sql("copy_customers"), sql("dedupe", ["copy_customers"])],
        },
        actor=Actor.of(team["dev"]),
    )
    pipeline_create(
        data={"name": "adhoc_report", "tasks": [sql("report")]}, actor=Actor.of(team["dev"])
    )
    for ago in (7200, 3600, 1800):
        make_execution(orders, "success", ago=ago)
    failed = make_execution(
        orders,
        "failed",
        ago=600,
        error="totals: no such table: staging_orders",
        tasks={
            "extract": "success",
            "clean": "success",
            "totals": "failed",
            "check_totals": "upstream_failed",
            "notify": "success",
        },
    )
    make_execution(customers, "running", ago=20, tasks={"copy_customers": "running"})
    make_execution(customers, "success", ago=900)
    return [orders, customers, failed]


def test_it_tests_a_connection_and_shows_every_page(
    page: Any, live_server: Any, team: dict[str, Any]
) -> None:
    orders, _, failed = _seed(team)
    base = live_server.url
    login(page, base, "dev1")
    shot(page, "dashboard")
    page.goto(f"{base}/pipelines/{orders.pk}")
    shot(page, "pipeline-with-runs")
    page.goto(f"{base}/runs/{failed.pk}")
    shot(page, "run-failed")
    page.goto(f"{base}/connections")
    page.get_by_role("link", name="wh").click()
    page.get_by_role("button", name="Test connection").click()
    result = page.locator("#test-result .alert-success")
    result.wait_for()
    assert re.search(r"Connected in [\d.]+ ms", result.inner_text())
    shot(page, "connection-tested")

    page.goto(f"{base}/connections/new?kind=postgresql")
    page.get_by_label("Kind").select_option("mysql")
    page.locator('#connection-form input[name="kind"][value="mysql"]').wait_for(state="attached")
    shot(page, "connection-new")
    page.goto(f"{base}/connections")
    shot(page, "connections")
    page.goto(f"{base}/pipelines")
    shot(page, "pipelines")
    logout(page)

    login(page, base, "admin1")
    page.goto(f"{base}/audit")
    shot(page, "audit")

    # Phone width: the same pages reflow into one column.
    page.set_viewport_size(PHONE)
    page.goto(f"{base}/")
    shot(page, "phone-dashboard")
    page.goto(f"{base}/runs/{failed.pk}")
    shot(page, "phone-run")
    page.goto(f"{base}/pipelines")
    shot(page, "phone-pipelines")
    page.goto(f"{base}/pipelines/{orders.pk}/edit")
    shot(page, "phone-editor")
    # Nothing is wider than the phone: no sideways scrolling of the page.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.goto(f"{base}/connections/{team['conn'].pk}")
    shot(page, "phone-connection")


def test_it_says_when_live_updates_cannot_work(
    page: Any, live_server: Any, team: dict[str, Any]
) -> None:
    """A missing htmx file and a failing live request each put up the banner."""
    base = live_server.url
    login(page, base, "dev1")
    banner = page.locator("#htmx-error")

    # The script a live page needs does not arrive (as without `npm ci`).
    page.route("**/vendor/htmx/htmx.min.js", lambda route: route.abort())
    page.goto(f"{base}/")
    banner.wait_for(state="visible")
    assert "Live updates are off" in banner.inner_text()
    shot(page, "live-updates-no-script")
    page.unroute("**/vendor/htmx/htmx.min.js")

    # The script is there, the dashboard's own poll fails.
    def refuse_polls(route: Any) -> None:
        if route.request.headers.get("hx-request"):
            route.fulfill(status=500, body="boom")
        else:
            route.continue_()

    page.route(f"{base}/", refuse_polls)
    page.goto(f"{base}/")
    assert banner.is_hidden()
    banner.wait_for(state="visible", timeout=60_000)
    assert "(500)" in banner.inner_text()
    shot(page, "live-updates-failing")
